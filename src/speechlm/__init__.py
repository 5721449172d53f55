"""speechlm: the training recipes of Speech Language Models, end to end."""

__version__ = "0.1.0"
