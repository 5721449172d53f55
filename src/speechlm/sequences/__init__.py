"""The unified vocabulary, named-stream examples, and the formats that turn token rows into them."""

from speechlm.sequences.example import Example, delay, undelay
from speechlm.sequences.formats import FORMATS, FormatSpec, make_example, parse_formats
from speechlm.sequences.packing import pack
from speechlm.sequences.vocab import SpeechVocab

__all__ = ["FORMATS", "Example", "FormatSpec", "SpeechVocab", "delay", "make_example", "pack",
           "parse_formats", "undelay"]
