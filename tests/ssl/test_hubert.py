"""HuBERT pre-training: the masked loss, the span masker, label alignment, the saved model
(loaded by the ``hubert`` tokenizer kind), crash + resume, and the command's one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.errors import ConfigError, ManifestError
from speechlm.sequences.example import IGNORE
from speechlm.ssl import SSLTrainConfig, train_ssl
from speechlm.ssl.masking import masked_prediction_loss, span_mask
from speechlm.ssl.targets import FrameGrid, align_labels
from speechlm.train.trainer import SimulatedCrash, StopAfterSave

TINY_HUBERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "conv_dim": [16] * 7, "num_conv_pos_embeddings": 16,
               "num_conv_pos_embedding_groups": 2}
# a few seconds on a CPU; fp32 so that the resume check is exact on any machine
TINY_RUN = ["--steps", "4", "--batch-size", "4", "--lr", "1e-3", "--seed", "0", "final_dim=16",
            "save_steps=2", "logging_steps=1", "warmup_steps=1", "crop_seconds=1",
            "min_seconds=0.5", "precision=fp32", "progress=false"]


def ssl_train(*args: str):
    return CliRunner().invoke(app, ["ssl", "train", *args])


@pytest.fixture(scope="session")
def tiny_model_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("ssl_cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_HUBERT))
    return path


@pytest.fixture(scope="session")
def iteration1(tiny_corpus, tiny_tokenizer, tiny_model_config, tmp_path_factory):
    """4 steps of HuBERT on the tiny corpus against the MFCC tokenizer, through the command."""
    out = tmp_path_factory.mktemp("hubert_it1")
    r = ssl_train("--manifest", str(tiny_corpus / "manifest.jsonl"), "--targets",
                  str(tiny_tokenizer), "--out", str(out), "--model-config",
                  str(tiny_model_config), *TINY_RUN)
    assert r.exit_code == 0, r.output
    return out


# ---- the objective ---------------------------------------------------------------------------
def test_loss_is_cross_entropy_over_masked_frames_only():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 4)  # (B, T, K)
    labels = torch.tensor([[0, 1, 2, 3, 0], [3, 2, IGNORE, 0, 1]])
    mask = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 0, 1]], dtype=torch.bool)
    # by hand: -log softmax of the label at each masked frame with a label
    frames = [(0, 0), (0, 2), (1, 1), (1, 4)]  # (1, 2) is masked but has no label
    expected = sum(-torch.log_softmax(logits[b, t], -1)[labels[b, t]] for b, t in frames) / 4
    loss = masked_prediction_loss(logits, labels, mask)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)

    changed = logits.clone()
    changed[0, 1] = torch.tensor([9.0, -9.0, 9.0, -9.0])  # unmasked frame
    changed[1, 2] = torch.tensor([-9.0, 9.0, 9.0, -9.0])  # masked, no label
    assert masked_prediction_loss(changed, labels, mask).item() == loss.item()
    changed[1, 4] += torch.tensor([5.0, 0, 0, 0])  # a frame that counts
    assert masked_prediction_loss(changed, labels, mask).item() != loss.item()


def test_span_mask_share_spans_and_seed():
    numpy_state = np.random.get_state()[1].copy()
    mask = span_mask((8, 500), mask_prob=0.8, mask_length=10, seed=3).numpy()
    assert mask.shape == (8, 500) and mask.dtype == bool
    # ~40 random starts of 10 frames each: overlaps leave about 57% of the frames masked
    assert 0.5 < mask.mean() < 0.65
    for row in mask:  # in spans: every run of masked frames is at least one span long
        edges = np.flatnonzero(np.diff(np.r_[0, row.astype(int), 0]))
        runs = edges[1::2] - edges[::2]
        assert len(runs) > 0 and runs.min() >= 10
    assert np.array_equal(span_mask((8, 500), 0.8, 10, seed=3).numpy(), mask)
    assert not np.array_equal(span_mask((8, 500), 0.8, 10, seed=4).numpy(), mask)
    assert np.array_equal(np.random.get_state()[1], numpy_state)  # the global stream is untouched


def test_labels_align_by_frame_centre(tmp_path):
    from transformers import HubertConfig, HubertModel

    from speechlm.tokenizers.encoders import SSLEncoder, conv_frame_offset
    from speechlm.tokenizers.features import SpectralFeatures

    HubertModel(HubertConfig(**TINY_HUBERT)).save_pretrained(tmp_path)
    # HuBERT frame t is centred 199.5 samples in (its 400-sample receptive field)
    hubert = SSLEncoder("hubert", str(tmp_path), layer=1)
    assert hubert.frame_offset == conv_frame_offset((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2),
                                                    16000) == 199.5 / 16000
    frames = FrameGrid(hubert.frame_rate, hubert.frame_offset)
    mfcc = FrameGrid(50.0, SpectralFeatures.frame_offset)
    labels = np.arange(10) * 10
    # centred-STFT MFCC frame t + 1 is the nearest to HuBERT frame t (7.5 ms vs 12.5 ms)
    assert align_labels(labels, mfcc, frames, 2, 5).tolist() == [30, 40, 50, 60, 70]
    assert align_labels(labels, frames, frames, 2, 5).tolist() == [20, 30, 40, 50, 60]
    # frames past the labels take no loss
    assert align_labels(labels, mfcc, frames, 7, 4).tolist() == [80, 90, IGNORE, IGNORE]


# ---- a tiny run ------------------------------------------------------------------------------
def test_tiny_run_is_a_hubert_the_tokenizer_loads(iteration1, tiny_corpus, tmp_path):
    from transformers import HubertModel

    from speechlm.corpus.manifest import read_manifest, write_manifest
    from speechlm.tokenizers import fit_tokenizer, load_tokenizer
    from speechlm.tokenizers.reading import read_utterance

    metrics = json.loads((iteration1 / "metrics.json").read_text())
    assert metrics["steps"] == 4 and metrics["n_units"] == 20
    assert all(np.isfinite(loss) for _, loss in metrics["train_loss"])
    assert not list(iteration1.rglob("*.bin"))  # no pickled training arguments

    utts = read_manifest(tiny_corpus / "manifest.jsonl")[:8]  # enough for 8 units, and quick
    write_manifest(tmp_path / "some.jsonl", utts)
    # the same path as `speechlm tokenizer fit --kind hubert --model OUT --layer 1`
    tok_dir = fit_tokenizer(tmp_path / "some.jsonl", "hubert", 8, tmp_path / "tok",
                            model=str(iteration1), layer=1)
    assert sorted(p.name for p in (tok_dir / "encoder").iterdir()) == [
        "config.json", "metrics.json", "model.safetensors", "preprocessor_config.json",
        "train_config.json"]  # the model, without checkpoints/ or labels/
    tok = load_tokenizer(tok_dir)
    by_hand = HubertModel.from_pretrained(iteration1, use_safetensors=True).eval()
    wavs = [read_utterance(u, 16000) for u in utts[:2]]
    for wav in wavs:
        with torch.no_grad():
            want = by_hand(torch.from_numpy(wav)[None], output_hidden_states=True
                           ).hidden_states[1][0]
        got = tok.frontend([wav])[0]
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
    assert len(tok.encode([wavs[0]], 16000)[0].units) > 0

    # iteration 2: the same objective against units of the iteration-1 model
    cfg = SSLTrainConfig.from_dict({
        **json.loads((iteration1 / "train_config.json").read_text()),
        "manifest": str(tmp_path / "some.jsonl"), "targets": str(tok_dir),
        "output_dir": str(tmp_path / "it2"), "max_steps": 2})
    it2 = train_ssl(cfg)
    assert it2["n_units"] == 8 and it2["steps"] == 2
    assert HubertModel.from_pretrained(tmp_path / "it2", use_safetensors=True).config.hidden_size \
        == TINY_HUBERT["hidden_size"]


def test_crash_then_resume_matches_uninterrupted(iteration1, tmp_path):
    ref = json.loads((iteration1 / "metrics.json").read_text())
    cfg = SSLTrainConfig.from_dict({
        **json.loads((iteration1 / "train_config.json").read_text()),
        "output_dir": str(tmp_path / "crash")})
    with pytest.raises(SimulatedCrash, match="crash after checkpoint 2"):
        train_ssl(cfg, callbacks=[StopAfterSave(2, in_process=True)])
    assert not (tmp_path / "crash" / "model.safetensors").exists()

    resumed = train_ssl(cfg)
    assert resumed["resumed_from"].endswith("checkpoint-2")
    assert [s for s, _ in resumed["train_loss"]] == [1, 2, 3, 4]
    for (s, a), (_, b) in zip(ref["train_loss"], resumed["train_loss"], strict=True):
        assert a == pytest.approx(b, abs=1e-6), f"step {s}"

    again = train_ssl(cfg)  # a finished run is not trained further
    assert again["steps"] == 4 and again["train_loss"] == resumed["train_loss"]
    assert not (tmp_path / "crash" / "checkpoints" / "checkpoint-5").exists()

    changed = SSLTrainConfig.from_dict({**cfg.to_dict(), "mask_prob": 0.5})
    with pytest.raises(ConfigError, match=r"other settings \(mask_prob: 0.8 -> 0.5\)"):
        train_ssl(changed)


# ---- errors ----------------------------------------------------------------------------------
def test_bad_inputs_are_one_line_errors(tiny_corpus, tiny_model_config, tmp_path):
    manifest = str(tiny_corpus / "manifest.jsonl")
    r = ssl_train("--manifest", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o"),
                  "--model-config", str(tiny_model_config))
    assert isinstance(r.exception, ManifestError)
    assert str(r.exception) == f"{tmp_path / 'none.jsonl'}: manifest not found"

    r = ssl_train("--manifest", manifest, "--targets", str(tmp_path), "--out",
                  str(tmp_path / "o"), "--model-config", str(tiny_model_config))
    assert isinstance(r.exception, ConfigError) and "\n" not in str(r.exception)
    assert str(r.exception).startswith(f"{tmp_path / 'tokenizer.json'}: not found; "
                                       f"'{tmp_path}' is not a tokenizer directory")

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**TINY_HUBERT, "hidden_sise": 32}))
    r = ssl_train("--manifest", manifest, "--out", str(tmp_path / "o"), "--model-config",
                  str(bad))
    assert isinstance(r.exception, ConfigError) and "\n" not in str(r.exception)
    assert str(r.exception).startswith(f"{bad}: model.hidden_sise: unknown key for model_type "
                                       "hubert; valid keys: ")
    assert not (tmp_path / "o").exists()
