"""Speech tokenizers (semantic units, prosody, codec tokens, continuous features) and the job.

``fit_tokenizer(manifest, kind, n_units, out_dir, **opts)`` builds one; ``load_tokenizer(dir)``
rebuilds it exactly; every tokenizer has ``encode(waveforms, sample_rate) -> list[Streams]``.
"""

from __future__ import annotations

from pathlib import Path

from speechlm.tokenizers.base import Tokenizer, read_spec
from speechlm.tokenizers.fitting import ALL_KINDS, fit_tokenizer
from speechlm.tokenizers.streams import Streams

__all__ = ["ALL_KINDS", "Streams", "Tokenizer", "fit_tokenizer", "load_tokenizer"]


# tokenizer.json "class" -> (module, class name); imported on demand (codecs pull in more)
_CLASSES = {
    "units": ("speechlm.tokenizers.units", "UnitTokenizer"),
    "codec": ("speechlm.tokenizers.codecs", "CodecTokenizer"),
    "continuous": ("speechlm.tokenizers.continuous", "ContinuousTokenizer"),
}


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Rebuild the tokenizer saved in ``directory`` (``tokenizer.json`` + safetensors)."""
    directory = Path(directory).resolve()
    spec = read_spec(directory)
    where = _CLASSES.get(spec.get("class"))
    if where is None:
        from speechlm.errors import ConfigError

        raise ConfigError(f"{directory}/tokenizer.json: 'class' is '{spec.get('class')}'; "
                          f"valid: {', '.join(_CLASSES)}")
    import importlib

    cls = getattr(importlib.import_module(where[0]), where[1])
    return cls.from_spec(spec, directory)
