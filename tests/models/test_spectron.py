"""Spectron's spectrogram head: shapes, losses on the frames only, padding, save / load, a
known-answer overfit that also stops at the right length, and Griffin-Lim on a sine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_text import TINY, text_vocab
from transformers import AutoModel, LlamaConfig, LlamaForCausalLM

from speechlm.errors import ConfigError
from speechlm.generate.spectron import continue_spectrogram, griffin_lim
from speechlm.models.modeling_spectron import (
    MARKERS,
    SPEC,
    SpectronConfig,
    SpectronLM,
    frame_losses,
    mel_stats,
    spectron_collate,
    spectron_example,
)
from speechlm.pretrained import load_pretrained
from speechlm.sequences.example import IGNORE
from speechlm.sequences.vocab import SpeechVocab

M = 16


@pytest.fixture(scope="module")
def vocab() -> SpeechVocab:
    return text_vocab(MARKERS)


def _pattern(n: int, phase: float = 0.0) -> np.ndarray:
    """A smooth moving log-mel-like pattern (n, M) with a level around -3."""
    t = np.arange(n)[:, None]
    m = np.arange(M)[None]
    return (np.sin(2 * np.pi * t / 10 + m / 3 + phase) - 3.0).astype(np.float32)


def _model(vocab: SpeechVocab, frames: list[np.ndarray] | None = None, seed: int = 0,
           **kw) -> SpectronLM:
    torch.manual_seed(seed)
    backbone = LlamaForCausalLM(LlamaConfig(vocab_size=vocab.size, **TINY))
    mean, std = mel_stats(frames) if frames else (None, None)
    args = dict(prenet_dim=32) | kw
    return SpectronLM.from_backbone(backbone, M, vocab.marker(SPEC), mean, std, seed=seed,
                                    **args)


def _batch(vocab: SpeechVocab) -> dict[str, torch.Tensor]:
    return spectron_collate(vocab.pad_id)([
        spectron_example(vocab, "the dog sees a cat .", "the cat runs .", _pattern(7)),
        spectron_example(vocab, "a cat .", "the cat .", _pattern(4, 1.0))])


def test_config_refuses_bad_values(vocab):
    backbone = {"model_type": "llama", "vocab_size": 10, **TINY}
    with pytest.raises(ConfigError, match="mel_std"):
        SpectronConfig(backbone=backbone, n_mels=M, mel_std=[1.0] * (M - 1))
    with pytest.raises(ConfigError, match="prenet_dropout"):
        _model(vocab, prenet_dropout=1.0)
    with pytest.raises(ConfigError, match="spec_token_id"):
        SpectronConfig(backbone=backbone, spec_token_id=10)


def test_example_labels_the_text_after_bos_and_collate_left_pads(vocab):
    ex = spectron_example(vocab, "a cat .", "the cat .", _pattern(4))
    text = vocab.text_to_ids("a cat .") + vocab.text_to_ids("the cat .")
    assert ex["input_ids"] == [vocab.bos_id, *text, vocab.marker(SPEC)]
    assert ex["labels"] == [IGNORE, *ex["input_ids"][1:]]
    batch = _batch(vocab)
    assert (batch["input_ids"][:, -1] == vocab.marker(SPEC)).all()  # SPEC in one column
    assert batch["frame_mask"].sum(1).tolist() == [7, 4]
    assert batch["attention_mask"][1, 0] == 0 and batch["input_ids"][1, 0] == vocab.pad_id


def test_shapes_and_finite_losses(vocab):
    batch = _batch(vocab)
    model = _model(vocab, [_pattern(7)]).eval()
    out = model(**batch)
    b, n = batch["input_ids"].shape
    assert out.logits.shape == (b, n, vocab.size)
    assert out.mel.shape == (b, 7, M) and out.stop_logits.shape == (b, 7)
    assert out.hidden.shape == (b, n + 6, 32)  # the last frame is predicted, never read
    for loss in (out.loss, out.text_loss, out.frame_loss, out.stop_loss):
        assert torch.isfinite(loss)
    torch.testing.assert_close(out.loss, out.text_loss + out.frame_loss + out.stop_loss)
    # text only: no frame loss at all
    text_only = model(batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert text_only.frame_loss is None and text_only.mel is None
    torch.testing.assert_close(text_only.loss, out.text_loss)


def test_frame_loss_is_taken_on_real_frames_only(vocab):
    batch = _batch(vocab)
    model = _model(vocab, [_pattern(7)]).eval()
    out = model(**batch)
    # manual: L1 + L2 + delta L1 over each row's real frames, in the normalised scale
    pred, tgt = model.normalize(out.mel), model.normalize(batch["frames"])
    mask = batch["frame_mask"]
    err = (pred - tgt)[mask]
    deltas = torch.cat([(pred - tgt)[i, : int(mask[i].sum())].diff(dim=0) for i in range(2)])
    manual = err.abs().mean() + err.square().mean() + deltas.abs().mean()
    torch.testing.assert_close(out.frame_loss, manual)
    # the padded frames of row 1 change nothing: neither its inputs nor the loss
    garbage = dict(batch, frames=torch.where(mask[..., None], batch["frames"], 123.0))
    again = model(**garbage)
    torch.testing.assert_close(again.frame_loss, out.frame_loss)
    torch.testing.assert_close(again.stop_loss, out.stop_loss)
    # the frame loss reaches no text prediction: the LM head gets no gradient from it
    out.frame_loss.backward()
    assert model.lm.get_output_embeddings().weight.grad is None or not bool(
        model.lm.get_output_embeddings().weight.grad.any())
    # and the stop target is the last real frame of each row
    _, stop = frame_losses(torch.zeros(1, 3, M), torch.tensor([[-9.0, -9.0, 9.0]]),
                           torch.zeros(1, 3, M), torch.ones(1, 3, dtype=torch.bool))
    assert float(stop) < 1e-3


def test_a_row_gives_what_it_gives_alone(vocab):
    batch = _batch(vocab)
    model = _model(vocab, [_pattern(7)]).eval()
    out = model(**batch)
    alone = spectron_collate(vocab.pad_id)([spectron_example(vocab, "a cat .", "the cat .",
                                                             _pattern(4, 1.0))])
    one = model(**alone)
    torch.testing.assert_close(one.mel[0], out.mel[1, :4], atol=1e-5, rtol=1e-5)
    n = alone["input_ids"].shape[1]
    torch.testing.assert_close(one.logits[0], out.logits[1, -n:], atol=1e-5, rtol=1e-5)


def test_save_load_round_trip(vocab, tmp_path):
    batch = _batch(vocab)
    model = _model(vocab, [_pattern(7)]).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = load_pretrained(AutoModel, tmp_path).eval()
    assert isinstance(loaded, SpectronLM) and loaded.config.mel_mean == model.config.mel_mean
    a, b = model(**batch), loaded(**batch)
    # same weights bit for bit; outputs to the last float bit only up to SIMD paths, which
    # depend on how the memory-mapped tensors happen to be aligned (seen: 1.5e-8 apart)
    for key in ("logits", "mel", "stop_logits", "loss"):
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)
    for name, w in model.state_dict().items():
        assert torch.equal(w, loaded.state_dict()[name]), name


def test_overfit_predicts_the_frames_and_stops_at_their_length(vocab):
    frames = _pattern(20)
    ex = spectron_example(vocab, "the dog sees a cat .", "the cat runs .", frames)
    batch = spectron_collate(vocab.pad_id)([ex])
    model = _model(vocab, [frames], seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(50):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    model.eval()
    out = model(**batch)
    l1 = (model.normalize(out.mel) - model.normalize(batch["frames"])).abs().mean().item()
    assert l1 < 0.2, l1  # the targets have unit scale
    gen = continue_spectrogram(model, ex["input_ids"], max_frames=40)
    assert gen.shape[1] == M and abs(len(gen) - 20) <= 2, len(gen)
    assert np.abs(gen[:10] - frames[:10]).mean() < 0.3


def test_continue_from_prompt_frames_and_max_frames(vocab):
    model = _model(vocab, [_pattern(7)]).eval()
    ids = [vocab.bos_id, *vocab.text_to_ids("a cat .")]  # SPEC appended
    gen = continue_spectrogram(model, ids, prompt_frames=_pattern(3), max_frames=5,
                               stop_threshold=1.0)
    assert gen.shape == (5, M) and np.isfinite(gen).all()
    # the cache path matches one teacher-forced pass over the same frames
    full = np.concatenate([_pattern(3), gen])
    ex = spectron_example(vocab, "a cat .", "", full)
    out = model(**spectron_collate(vocab.pad_id)([ex]))
    np.testing.assert_allclose(out.mel[0, 3:].detach().numpy(), gen, atol=1e-4, rtol=1e-4)


def test_griffin_lim_recovers_a_sine():
    from speechlm.tokenizers.frontends import make_frontend

    sr = 16000
    t = np.arange(sr) / sr  # 1 s
    wav = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    mel = make_frontend("logmel", {"n_mels": 80, "normalize": False})([wav])[0].numpy()
    assert mel.shape == (51, 80)  # 50 Hz
    audio = griffin_lim(mel, sample_rate=sr)
    assert audio.dtype == np.float32 and abs(len(audio) - len(wav)) <= 320
    spectrum = np.abs(np.fft.rfft(audio))
    peak = np.fft.rfftfreq(len(audio), 1 / sr)[spectrum.argmax()]
    assert abs(peak - 440) < 20, peak
