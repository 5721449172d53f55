"""The envelope vocoder: a convolutional network over units predicts source-filter parameters.

``model.py`` (config, network), ``train.py`` (``train_envelope``), ``vocoder.py``
(``EnvelopeVocoder``, kind ``envelope`` in ``load_vocoder``).
"""
