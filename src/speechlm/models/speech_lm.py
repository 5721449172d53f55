"""A single-stream speech LM model directory: write it, load it, and turn audio into its inputs.

Directory layout (docs/contracts.md): HF causal-LM files, HF tokenizer files +
``speech_vocab.json``,
``speechlm.json`` (vocab layout, init, formats), ``speech_tokenizer/`` (copy of the speech
tokenizer it was trained on), and optionally ``vocoder/``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.sequences.vocab import SpeechVocab

META_FILE = "speechlm.json"


def save_model_dir(out_dir: str | Path, model, vocab: SpeechVocab, meta: dict[str, Any],
                   speech_tokenizer_dir: str | Path | None) -> Path:
    """Write a complete model directory (weights as safetensors, everything else JSON)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    return write_model_meta(out, vocab, meta, speech_tokenizer_dir)


def write_model_meta(out_dir: str | Path, vocab: SpeechVocab, meta: dict[str, Any],
                     speech_tokenizer_dir: str | Path | None) -> Path:
    """Write everything of a model directory except the weights (vocabulary, meta, tokenizer)."""
    out = Path(out_dir)
    vocab.save(out)
    meta = {"vocab": asdict(vocab.layout), **meta}
    (out / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    if speech_tokenizer_dir is not None:
        dst = out / "speech_tokenizer"
        if Path(speech_tokenizer_dir).resolve() != dst.resolve():
            shutil.copytree(speech_tokenizer_dir, dst, dirs_exist_ok=True)
    return out


@dataclass
class SpeechLM:
    """A loaded model directory: the HF model, its vocabulary and its speech tokenizer."""

    model: Any
    vocab: SpeechVocab
    dir: Path
    meta: dict = field(default_factory=dict)
    _speech_tokenizer: Any = None

    @property
    def speech_tokenizer(self):
        """The speech tokenizer in ``dir/speech_tokenizer`` (loaded on first use)."""
        if self._speech_tokenizer is None:
            from speechlm.tokenizers import load_tokenizer

            path = self.dir / "speech_tokenizer"
            if not path.is_dir():
                raise ConfigError(f"{path} not found: the model directory has no speech tokenizer")
            self._speech_tokenizer = load_tokenizer(path)
        return self._speech_tokenizer

    def speech_ids(self, streams) -> list[int]:
        """Speech-only input ids of one utterance as in training: BOS, [SPEECH], units (no EOS)."""
        units = streams.units if hasattr(streams, "units") else streams
        return [self.vocab.bos_id, self.vocab.speech_id,
                *self.vocab.units_to_ids(np.asarray(units)).tolist()]

    def encode_audio(self, waveforms: list[np.ndarray], sample_rate: int) -> list[list[int]]:
        """Waveforms -> speech-only input ids, through the model's own speech tokenizer."""
        return [self.speech_ids(s) for s in self.speech_tokenizer.encode(waveforms, sample_rate)]


def load_speech_lm(model_dir: str | Path, device: str = "cpu") -> SpeechLM:
    """Load a model directory written by ``speechlm train`` (eval mode, on ``device``)."""
    from transformers import AutoModelForCausalLM

    d = Path(model_dir)
    if not (d / META_FILE).is_file():
        raise ConfigError(f"{d / META_FILE} not found: {d} is not a speechlm model directory "
                          "(train one with `speechlm train`)")
    model = AutoModelForCausalLM.from_pretrained(d, attn_implementation="sdpa").to(device).eval()
    meta = json.loads((d / META_FILE).read_text())
    return SpeechLM(model=model, vocab=SpeechVocab.load(d), dir=d, meta=meta)
