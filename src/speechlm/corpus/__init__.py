"""Speech data: manifests, importers, synthetic espeak-ng corpora and benchmark sets.

Submodules: ``manifest`` (JSONL utterance lists), ``importers`` (LibriSpeech / folder / HF ->
manifest), ``espeak`` (libespeak-ng through ctypes, with alignments), ``lexicon`` and
``grammar`` (the synthetic language), ``synth`` (training corpora), ``benchmarks`` (sWUGGY,
sBLIMP and StoryCloze-style sets and the readers of their published layouts). Import the
submodule you need; this package imports nothing heavy.
"""
