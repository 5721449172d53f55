"""Loading ``transformers`` checkpoints from a hub id or a local folder: safetensors only.

Every pretrained model speechlm reads (speech LMs, text LMs for warm starts, SSL encoders,
codecs) goes through :func:`load_pretrained`, so a folder that holds only pickled weights
(``pytorch_model.bin``) is refused instead of unpickled, and a missing, corrupt or unreachable
checkpoint becomes one line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError

PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5",
                "flax_model.msgpack", "model.ckpt.index")


def load_pretrained(cls: Any, ref: str | Path, what: str = "model", **kwargs: Any) -> Any:
    """``cls.from_pretrained(ref, use_safetensors=True, **kwargs)`` with one-line errors."""
    from safetensors import SafetensorError

    ref_s = str(ref)
    local = Path(ref_s)
    pickles = [f for f in PICKLE_FILES if (local / f).exists()] if local.is_dir() else []
    if pickles and not any(local.glob("*.safetensors")):
        raise ConfigError(
            f"{local}: holds only pickled weights ({', '.join(pickles)}); speechlm loads "
            "safetensors only and never unpickles a file it is given. Convert it "
            "once where you trust the file: from_pretrained(dir).save_pretrained(dir, "
            "safe_serialization=True)")
    try:
        return cls.from_pretrained(ref_s, use_safetensors=True, **kwargs)
    except SafetensorError as e:
        raise ConfigError(f"{ref_s}: corrupt safetensors weights ({e}); copy the {what} "
                          "again") from None
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = "" if local.exists() else " (not a local folder, and the hub is not reachable or " \
                                         "does not have it: pass a local folder)"
        raise ConfigError(f"{ref_s}: cannot load the {what}{hint}: {first}") from None


def load_tokenizer_files(ref: str | Path, what: str = "tokenizer") -> Any:
    """``AutoTokenizer.from_pretrained(ref)`` with one-line errors (tokenizers hold no pickle)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(ref))
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"{ref}: cannot load the {what}: {first}") from None
