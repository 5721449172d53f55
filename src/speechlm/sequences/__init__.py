"""The unified vocabulary and the sequence formats that turn token rows into model inputs."""

from speechlm.sequences.formats import FORMATS, Sequence, make_sequence
from speechlm.sequences.packing import pack
from speechlm.sequences.vocab import SpeechVocab

__all__ = ["FORMATS", "Sequence", "SpeechVocab", "make_sequence", "pack"]
