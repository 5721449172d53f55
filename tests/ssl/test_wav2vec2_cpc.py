"""wav2vec 2.0 and CPC pre-training: the Gumbel schedule, the distractors, CPC's InfoNCE and
causality, and tiny runs whose saved encoders the ``wav2vec2`` / ``cpc`` tokenizer kinds load
with the same features, resuming exactly after a crash."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.errors import ConfigError
from speechlm.ssl import SSLTrainConfig, train_ssl
from speechlm.ssl.cpc import CPCConfig, CPCForPreTraining, CPCModel
from speechlm.ssl.masking import negative_indices, span_mask
from speechlm.ssl.wav2vec2 import gumbel_temperature
from speechlm.train.trainer import SimulatedCrash, StopAfterSave

TINY = {
    "wav2vec2": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 64, "conv_dim": [16] * 7, "num_conv_pos_embeddings": 16,
                 "num_conv_pos_embedding_groups": 2, "num_codevectors_per_group": 8,
                 "codevector_dim": 16, "proj_codevector_dim": 16, "num_negatives": 5},
    "cpc": {"hidden_size": 16, "num_hidden_layers": 2, "prediction_steps": 3,
            "num_negatives": 5},
}
RUN = ["--steps", "4", "--batch-size", "4", "--lr", "1e-3", "--seed", "0", "save_steps=2",
       "logging_steps=1", "warmup_steps=1", "crop_seconds=1", "min_seconds=0.5",
       "precision=fp32", "progress=false"]


@pytest.fixture(scope="session", params=["wav2vec2", "cpc"])
def trained(request, tiny_corpus, tmp_path_factory):
    """(objective, output folder) of 4 steps through ``speechlm ssl train --objective``."""
    objective = request.param
    tmp = tmp_path_factory.mktemp(f"ssl_{objective}")
    (tmp / "model.yaml").write_text(yaml.safe_dump(TINY[objective]))
    out = tmp / "out"
    r = CliRunner().invoke(app, ["ssl", "train", "--objective", objective, "--manifest",
                                 str(tiny_corpus / "manifest.jsonl"), "--out", str(out),
                                 "--model-config", str(tmp / "model.yaml"), *RUN])
    assert r.exit_code == 0, r.output
    return objective, out


# ---- the objectives --------------------------------------------------------------------------
def test_gumbel_temperature_anneals_to_its_floor_at_70_percent():
    assert gumbel_temperature(0, 1000, 2.0, 0.5) == 2.0
    assert gumbel_temperature(350, 1000, 2.0, 0.5) == pytest.approx(1.0)  # halfway, geometric
    assert gumbel_temperature(700, 1000, 2.0, 0.5) == pytest.approx(0.5)
    assert gumbel_temperature(1000, 1000, 2.0, 0.5) == 0.5


def test_distractors_are_other_masked_frames_of_the_same_row():
    state = np.random.get_state()[1].copy()
    mask = span_mask((3, 60), 0.65, 10, seed=1)
    idx = negative_indices(mask, 7, seed=2)  # (B, T, N) flat indices b * T + t
    assert idx.shape == (3, 60, 7)
    for b in range(3):
        for t in np.flatnonzero(mask[b].numpy()):
            rows, frames = np.divmod(idx[b, t].numpy(), 60)
            assert (rows == b).all() and mask[b, frames].all() and (frames != t).all()
    assert torch.equal(negative_indices(mask, 7, seed=2), idx)
    assert np.array_equal(np.random.get_state()[1], state)  # the global stream is untouched


def test_cpc_infonce_by_hand_and_a_drawn_positive_is_no_negative():
    torch.manual_seed(0)
    model = CPCForPreTraining(CPCConfig(hidden_size=8, num_hidden_layers=1, prediction_steps=1,
                                        num_negatives=4)).eval()
    wav = torch.randn(2, 1600)
    with torch.no_grad():
        got = model(wav, negative_seed=torch.tensor(5)).loss
        out = model.cpc(wav, output_hidden_states=True)
        z, c = out.hidden_states[0], out.last_hidden_state
        b, t, _ = z.shape
        idx = torch.randint(0, t, (b, t - 1, 4), generator=torch.Generator().manual_seed(5))
        pred = model.predictors[0](c[:, :-1])  # c_t predicts z_{t+1}
        total = 0.0
        for i in range(b):
            for s in range(t - 1):
                cand = [pred[i, s] @ z[i, s + 1]] + [
                    pred[i, s] @ z[i, j] if j != s + 1 else torch.tensor(-1e4)
                    for j in idx[i, s].tolist()]
                total += -torch.log_softmax(torch.stack(cand), 0)[0]
    assert got.item() == pytest.approx(total.item() / (b * (t - 1)), rel=1e-5)
    assert (idx == torch.arange(1, t)[:, None]).any()  # the case the mask is there for occurs


def test_cpc_frames_do_not_see_padding_or_the_future():
    torch.manual_seed(0)
    model = CPCModel(CPCConfig(hidden_size=8, num_hidden_layers=2)).eval()
    wav = torch.randn(1, 3200)
    with torch.no_grad():
        full = model(wav, output_hidden_states=True).hidden_states
        padded = model(torch.cat([wav, torch.zeros(1, 800)], 1), output_hidden_states=True)
        early = model(wav[:, :1600], output_hidden_states=True).hidden_states
    n = int(model._get_feat_extract_output_lengths(3200))
    assert full[0].shape[1] == n == 18  # 100 Hz frames of 0.2 s, less the unpadded convs
    for layer in range(3):
        assert torch.allclose(padded.hidden_states[layer][:, :n], full[layer], atol=1e-6)
        m = early[layer].shape[1]
        assert torch.allclose(early[layer], full[layer][:, :m], atol=1e-6)  # causal


# ---- tiny runs -------------------------------------------------------------------------------
def test_saved_encoder_loads_through_its_tokenizer_kind(trained, tiny_corpus, tmp_path):
    from transformers import AutoModel

    from speechlm.corpus.manifest import read_manifest, write_manifest
    from speechlm.tokenizers import fit_tokenizer, load_tokenizer
    from speechlm.tokenizers.reading import read_utterance

    objective, out = trained
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["objective"] == objective and metrics["steps"] == 4
    assert all(np.isfinite(loss) for _, loss in metrics["train_loss"])
    assert not list(out.rglob("*.bin"))  # no pickled training arguments

    utts = read_manifest(tiny_corpus / "manifest.jsonl")[:8]
    write_manifest(tmp_path / "some.jsonl", utts)
    tok = load_tokenizer(fit_tokenizer(tmp_path / "some.jsonl", objective, 8, tmp_path / "tok",
                                       model=str(out), layer=1))
    by_hand = AutoModel.from_pretrained(out, use_safetensors=True).eval()
    assert type(by_hand).__name__ == {"wav2vec2": "Wav2Vec2Model", "cpc": "CPCModel"}[objective]
    assert tok.frame_rate == {"wav2vec2": 50.0, "cpc": 100.0}[objective]
    wav = read_utterance(utts[0], 16000)
    with torch.no_grad():
        want = by_hand(torch.from_numpy(wav)[None], output_hidden_states=True).hidden_states[1][0]
    got = tok.frontend([wav])[0]
    assert got.shape == want.shape and torch.allclose(got, want, atol=1e-5)
    assert len(tok.encode([wav], 16000)[0].units) > 0


def test_crash_then_resume_matches_uninterrupted(trained, tmp_path):
    _, out = trained
    ref = json.loads((out / "metrics.json").read_text())
    cfg = SSLTrainConfig.from_dict({**json.loads((out / "train_config.json").read_text()),
                                    "output_dir": str(tmp_path / "crash")})
    with pytest.raises(SimulatedCrash):
        train_ssl(cfg, callbacks=[StopAfterSave(2, in_process=True)])
    resumed = train_ssl(cfg)
    assert resumed["resumed_from"].endswith("checkpoint-2")
    for (s, a), (_, b) in zip(ref["train_loss"], resumed["train_loss"], strict=True):
        assert a == pytest.approx(b, abs=1e-6), f"step {s}"


def test_settings_an_objective_does_not_take_are_named(tiny_corpus, tmp_path):
    base = {"manifest": str(tiny_corpus / "manifest.jsonl"), "output_dir": str(tmp_path)}
    with pytest.raises(ConfigError, match="mask_prob: the cpc objective masks nothing"):
        SSLTrainConfig.from_dict({**base, "objective": "cpc", "mask_prob": 0.5})
    with pytest.raises(ConfigError, match="targets: only the hubert objective has targets"):
        SSLTrainConfig.from_dict({**base, "objective": "wav2vec2", "targets": str(tmp_path)})
    with pytest.raises(ConfigError, match=r"model.hidden_sise: unknown key for model_type "
                                          r"speechlm_cpc"):
        SSLTrainConfig.from_dict({**base, "objective": "cpc", "model": {"hidden_sise": 8}})
    assert SSLTrainConfig.from_dict({**base, "objective": "wav2vec2"}).mask_prob == 0.65


def test_wav2vec2_loss_is_the_hf_loss_per_masked_frame():
    from transformers import Wav2Vec2Config, Wav2Vec2ForPreTraining

    from speechlm.ssl.wav2vec2 import Wav2Vec2Objective

    torch.manual_seed(0)
    config = Wav2Vec2Config(**TINY["wav2vec2"])
    # training mode: Gumbel sampling and dropout draw the same numbers in the same order
    ours = Wav2Vec2Objective(config).train()
    stock = Wav2Vec2ForPreTraining(config).train()
    stock.load_state_dict(ours.state_dict())
    wav = torch.randn(3, 16000)
    t = int(ours.wav2vec2._get_feat_extract_output_lengths(16000))
    mask = span_mask((3, t), 0.65, 10, seed=0)
    negatives = negative_indices(mask, 5, seed=1)
    for model in (ours, stock):  # the same Gumbel noise in both
        model.set_gumbel_temperature(2.0)
    torch.manual_seed(3)
    got = ours(wav, mask_time_indices=mask, sampled_negative_indices=negatives)
    torch.manual_seed(3)
    want = stock(wav, mask_time_indices=mask, sampled_negative_indices=negatives)
    n = int(mask.sum())
    assert got.contrastive_loss.item() == pytest.approx(want.contrastive_loss.item() / n, rel=1e-5)
    assert got.loss.item() == pytest.approx(want.loss.item() / n, rel=1e-5)
