"""The shared ``tiny_model`` fixture (real corpus -> tokenizer -> tokens -> training) loads and
encodes audio exactly as the speech-only training format does."""

from __future__ import annotations

import json

import numpy as np
import torch

from speechlm.audio import load_audio
from speechlm.corpus.manifest import read_manifest
from speechlm.models import load_speech_lm
from speechlm.tokenizers.job import load_token_dataset


def test_tiny_model_encodes_audio_like_training(tiny_model, tiny_corpus, tiny_tokens):
    lm = load_speech_lm(tiny_model)
    assert (tiny_model / "speech_tokenizer").is_dir()
    assert json.loads((tiny_model / "metrics.json").read_text())["steps"] == 10
    utt = read_manifest(tiny_corpus / "manifest.jsonl")[0]
    ids = lm.encode_audio([load_audio(utt.audio)], 16000)[0]
    row = next(r for r in load_token_dataset(tiny_tokens) if r["id"] == utt.id)
    assert ids == [lm.vocab.bos_id, lm.vocab.speech_id,
                   *(np.asarray(row["units"]) + lm.vocab.unit_offset).tolist()]
    with torch.no_grad():
        logits = lm.model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), lm.vocab.size) and torch.isfinite(logits).all()
