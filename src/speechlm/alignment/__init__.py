"""Preference alignment (DPO) data: pairs from the grammar's stories and from the model itself.

The ``dpo`` objective (``speechlm.train.finetune``) trains on them; the ``slam`` recipe chains
pre-training, pair building and DPO.
"""
