"""The ``duplex`` architecture: a frame-synchronous full-duplex speech LM (LSLM, Moshi, VITA).

The model (``modeling_duplex.DuplexLM``) listens to the user's units, speaks its own and writes
a text/control stream at every frame (``speechlm.sequences.duplex``). Its config in a recipe is a
llama backbone's keys plus a ``duplex`` mapping (:data:`DUPLEX_KEYS`)::

    model: {model_type: llama, hidden_size: 128, ..., duplex: {fusion: middle}}

It is trained by the ``duplex`` objective (``speechlm.train.duplex``), which sizes it from the
data (units, text vocabulary), and run live by ``speechlm.realtime.engine``. It scores no
benchmark pairs and continues no prompts offline: it is driven frame by frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError
from speechlm.models.architecture import ARCHITECTURES, Architecture

SECTION = "duplex"
DUPLEX_KEYS = ("fusion", "text_weight", "listen_encoder", "transcript_weight")
FUSIONS = ("early", "middle", "late")


def duplex_settings(model_cfg: dict[str, Any], key: str = "model"
                    ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(backbone keys, duplex keys with defaults) of a duplex model config, every key checked."""
    from speechlm.config import check_hf_config
    from speechlm.models.dialogue import split_model_config

    backbone, own = split_model_config(model_cfg, key, SECTION, DUPLEX_KEYS)
    if backbone.get("model_type") != "llama":
        raise ConfigError(f"{key}.model_type: the duplex model's backbone is a llama model; "
                          f"give model_type: llama, got {backbone.get('model_type')!r}")
    check_hf_config(backbone, key)
    # the listening channel through a causal GRU before it is fused (LSLM feeds every fusion
    # from a streaming encoder); "none": the bare unit embedding
    # transcript_weight: the transcript head's loss weight, when the data has a transcript
    own = {"fusion": "middle", "text_weight": 1.0, "listen_encoder": "gru",
           "transcript_weight": 1.0, **own}
    if own["fusion"] not in FUSIONS:
        raise ConfigError(f"{key}.{SECTION}.fusion: {own['fusion']!r} is not one of "
                          f"{', '.join(FUSIONS)}")
    for w in ("text_weight", "transcript_weight"):
        if isinstance(own[w], bool) or not isinstance(own[w], int | float) or own[w] < 0:
            raise ConfigError(f"{key}.{SECTION}.{w}: expected a number >= 0, got {own[w]!r}")
    if own["listen_encoder"] not in ("none", "gru"):
        raise ConfigError(f"{key}.{SECTION}.listen_encoder: {own['listen_encoder']!r} is not "
                          "one of none, gru")
    return backbone, own


def build_duplex(model_cfg: dict[str, Any], n_units: int, text_vocab: Sequence[str],
                 seed: int = 0, transcript_vocab: Sequence[str] | None = None) -> Any:
    """A randomly initialised ``DuplexLM`` for ``n_units`` units and ``text_vocab`` (and a
    transcript head over ``transcript_vocab`` when one is given)."""
    import torch

    from speechlm.models.modeling_duplex import DuplexConfig, DuplexLM
    from speechlm.sequences.duplex import BOS

    backbone, own = duplex_settings(model_cfg)
    backbone = {k: v for k, v in backbone.items() if k != "model_type"}
    torch.manual_seed(seed)
    return DuplexLM(DuplexConfig(n_units=n_units, n_text=len(text_vocab),
                                 text_vocab=list(text_vocab), backbone=backbone,
                                 fusion=own["fusion"], text_weight=float(own["text_weight"]),
                                 listen_encoder=own["listen_encoder"],
                                 text_bos_id=list(text_vocab).index(BOS),
                                 n_transcript=len(transcript_vocab or []),
                                 transcript_vocab=(list(transcript_vocab)
                                                   if transcript_vocab else None),
                                 transcript_weight=float(own["transcript_weight"])))


class Duplex(Architecture):
    name = "duplex"
    objective = "duplex"
    speech_format = None  # trains on the duplex scenarios' own streams, not a format

    def check_config(self, model_cfg: dict[str, Any], key: str = "model") -> None:
        duplex_settings(model_cfg, key)

    def build(self, model_cfg: dict[str, Any], vocab, seed: int = 0) -> Any:
        """Sized from ``vocab``'s units and the special text tokens only (what a plan counts):
        training sizes the text vocabulary from its data (``speechlm.train.duplex``)."""
        from speechlm.sequences.duplex import SPECIALS

        return build_duplex(model_cfg, vocab.range("units")[1], list(SPECIALS), seed)

    def load(self, path: Path, device: str = "cpu") -> Any:
        from speechlm.models.modeling_duplex import DuplexLM
        from speechlm.pretrained import load_pretrained

        return load_pretrained(DuplexLM, path, "duplex model").to(device).eval()

    def _refuse(self, what: str):
        raise ConfigError(f"a duplex model runs live, frame by frame (speechlm serve, speechlm "
                          f"eval duplex); it does no {what}")

    def prompt(self, lm, streams, eos: bool = False):
        self._refuse("offline prompting")

    def score(self, lm, examples, batch_size: int = 32, progress: bool = False):
        self._refuse("likelihood scoring")

    def generate(self, lm, prompts, sampling, max_new, min_new=None):
        self._refuse("offline continuation")


ARCHITECTURES.add("duplex", Duplex())
