"""A speech LM model directory: write it, load it, and turn audio into its inputs.

Layout (all paths inside are relative, so a moved directory still loads)::

    MODEL/
      speechlm.json        architecture, sub-model and tokenizer roles, vocabulary layout,
                           formats, frame rate, training config
      config.json, model.safetensors, tokenizer files, speech_vocab.json
                           the "main" sub-model and the vocabulary (a plain HF checkpoint for
                           the causal_lm architecture)
      <role>/              further sub-models (e.g. "nar" for VALL-E), each an HF directory
      speech_tokenizer/    the speech tokenizer the model was trained on (role "speech")
      <role>_tokenizer/    further speech tokenizers (e.g. "acoustic" for AudioLM)
      vocoder/             optional: what speaks the model's tokens

Weights load from safetensors only; nothing is unpickled.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.models.architecture import MAIN, Architecture, get_architecture
from speechlm.sequences.vocab import SpeechVocab

META_FILE = "speechlm.json"
FORMAT = "speechlm-model"
VERSION = 2
SPEECH = "speech"  # role of the speech tokenizer the model reads and writes


def tokenizer_dirname(role: str) -> str:
    """Folder of the speech tokenizer with ``role`` inside a model directory."""
    return "speech_tokenizer" if role == SPEECH else f"{role}_tokenizer"


def save_model_dir(out_dir: str | Path, model: Any, vocab: SpeechVocab, meta: dict[str, Any],
                   speech_tokenizer_dir: str | Path | dict[str, str | Path] | None,
                   architecture: str = "causal_lm") -> Path:
    """Write a complete model directory; ``model`` is one module or ``{role: module}``.

    ``speech_tokenizer_dir`` is one tokenizer directory (role ``speech``) or ``{role: dir}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    submodels = model if isinstance(model, dict) else {MAIN: model}
    for role, module in submodels.items():
        module.save_pretrained(out if role == MAIN else out / role)
    return write_model_meta(out, vocab, meta, speech_tokenizer_dir, architecture,
                            roles=list(submodels))


def write_model_meta(out_dir: str | Path, vocab: SpeechVocab, meta: dict[str, Any],
                     speech_tokenizer_dir: str | Path | dict[str, str | Path] | None,
                     architecture: str = "causal_lm", roles: list[str] | None = None) -> Path:
    """Write everything of a model directory except the weights (vocabulary, meta, tokenizers)."""
    out = Path(out_dir)
    vocab.save(out)
    tokenizers = (speech_tokenizer_dir if isinstance(speech_tokenizer_dir, dict)
                  else {} if speech_tokenizer_dir is None else {SPEECH: speech_tokenizer_dir})
    for role, src in tokenizers.items():
        dst = out / tokenizer_dirname(role)
        if Path(src).resolve() != dst.resolve():
            shutil.copytree(src, dst, dirs_exist_ok=True)
    meta = {
        "format": FORMAT, "version": VERSION, "architecture": architecture,
        "submodels": {r: "." if r == MAIN else r for r in (roles or [MAIN])},
        "tokenizers": {r: tokenizer_dirname(r) for r in tokenizers},
        "vocab": asdict(vocab.layout), **meta,
    }
    (out / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    return out


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """``speechlm.json`` with defaults for directories written before architectures existed."""
    from speechlm.config import load_json

    d = Path(model_dir)
    meta = load_json(d / META_FILE, f"{d} is not a speechlm model directory (train one with "
                                    "`speechlm train`)")
    meta.setdefault("architecture", "causal_lm")
    meta.setdefault("submodels", {MAIN: "."})
    if "tokenizers" not in meta:
        meta["tokenizers"] = {SPEECH: "speech_tokenizer"} if (d / "speech_tokenizer").is_dir() \
            else {}
    return meta


@dataclass
class SpeechLM:
    """A loaded model directory: its sub-models, vocabulary, tokenizers and architecture."""

    model: Any  # the main sub-model
    vocab: SpeechVocab
    dir: Path
    meta: dict = field(default_factory=dict)
    architecture: Architecture | None = None
    submodels: dict[str, Any] = field(default_factory=dict)
    _tokenizers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture is None:
            self.architecture = get_architecture(self.meta.get("architecture", "causal_lm"))
        self.submodels.setdefault(MAIN, self.model)

    def tokenizer(self, role: str = SPEECH):
        """The speech tokenizer with ``role`` (loaded on first use)."""
        if role not in self._tokenizers:
            from speechlm.tokenizers import load_tokenizer

            rel = self.meta.get("tokenizers", {}).get(role)
            if rel is None or not (self.dir / rel).is_dir():
                roles = ", ".join(self.meta.get("tokenizers", {})) or "none"
                raise ConfigError(f"{self.dir}: the model directory has no '{role}' speech "
                                  f"tokenizer (it has: {roles})")
            self._tokenizers[role] = load_tokenizer(self.dir / rel)
        return self._tokenizers[role]

    @property
    def speech_tokenizer(self):
        """The speech tokenizer the model reads and writes (role ``speech``)."""
        return self.tokenizer(SPEECH)

    def speech_example(self, streams, eos: bool = False):
        """One utterance's streams (or bare units) as the model's speech example (a prompt)."""
        if not hasattr(streams, "names"):
            from speechlm.tokenizers.streams import Streams

            streams = Streams(0.0, units=np.asarray(streams))
        return self.architecture.prompt(self, streams, eos=eos)

    def speech_ids(self, streams) -> list[int]:
        """Speech-only input ids of one utterance as in training: BOS, [SPEECH], units (no EOS)."""
        return self.speech_example(streams).input_ids

    def encode_examples(self, waveforms: list[np.ndarray], sample_rate: int) -> list:
        """Waveforms -> speech-only examples, through the model's own speech tokenizer."""
        return [self.speech_example(s) for s in self.speech_tokenizer.encode(waveforms,
                                                                              sample_rate)]

    def encode_audio(self, waveforms: list[np.ndarray], sample_rate: int) -> list[list[int]]:
        """Waveforms -> speech-only input ids (single-stream models)."""
        return [e.input_ids for e in self.encode_examples(waveforms, sample_rate)]

    def score(self, examples, batch_size: int = 32, progress: bool = False) -> np.ndarray:
        """Summed and mean log-probability of each example: (N, 2) (see ``Architecture``)."""
        return self.architecture.score(self, examples, batch_size=batch_size, progress=progress)

    def generate(self, prompts, sampling, max_new, min_new=None):
        """Continuations of prompt streams (see ``Architecture.generate``)."""
        return self.architecture.generate(self, prompts, sampling, max_new, min_new)

    def streaming(self, batch_size: int = 1):
        """The architecture's streaming stepper, as a context manager."""
        return self.architecture.streaming(self, batch_size)


def load_speech_lm(model_dir: str | Path, device: str = "cpu") -> SpeechLM:
    """Load a model directory (every sub-model, eval mode, on ``device``)."""
    d = Path(model_dir)
    meta = read_meta(d)
    arch = get_architecture(meta["architecture"], key=f"{d / META_FILE}: architecture")
    submodels = {role: arch.load(d / rel, device) for role, rel in meta["submodels"].items()}
    if MAIN not in submodels:
        raise ConfigError(f"{d / META_FILE}: submodels must include '{MAIN}'")
    return SpeechLM(model=submodels[MAIN], vocab=SpeechVocab.load(d), dir=d, meta=meta,
                    architecture=arch, submodels=submodels)
