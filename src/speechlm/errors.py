"""Exceptions whose messages are shown to users as the one-line cause of a failed command."""


class SpeechLMError(Exception):
    """Base class: the CLI prints the message and exits non-zero, with no traceback."""


class AudioError(SpeechLMError):
    """An audio file cannot be used; the message names the file and the cause."""


class ManifestError(SpeechLMError):
    """A manifest line is invalid; the message names the file, line number and field."""


class ConfigError(SpeechLMError):
    """A configuration key or value is invalid; the message names the key."""
