"""Zero-shot evaluation: likelihood scoring, ZeroSpeech 2021, StoryCloze, ABX, generation metrics.

Heavy modules (torch, transformers) are imported by the functions that need them, so importing
``speechlm.evaluate`` stays cheap.
"""
