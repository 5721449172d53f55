"""The duplex engine on a real causal tokenizer and a tiny DuplexLM: the live path equals the
offline one, and a model taught to yield stops within the frames it was taught."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.models.duplex import build_duplex
from speechlm.realtime.engine import DuplexEngine, EngineSettings
from speechlm.realtime.events import EventKind
from speechlm.sequences.duplex import IRQ, SPECIALS, shifted
from speechlm.tokenizers import fit_tokenizer, load_tokenizer
from speechlm.tokenizers.streaming import frame_units

SR, FR = 16000, 50.0
ONSET = 1.0  # s: the user starts speaking
STOP_AFTER = 5  # frames: the taught reaction time (0.1 s)
MODEL = {"model_type": "llama", "hidden_size": 48, "intermediate_size": 96,
         "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2,
         "max_position_embeddings": 256}


def _mic(seconds: float = 2.4) -> np.ndarray:
    """Silence, then a buzzy tone from ONSET on: the user cutting in."""
    t = np.arange(int(seconds * SR)) / SR
    wav = 0.3 * np.sign(np.sin(2 * np.pi * 180 * t)) * (t >= ONSET)
    return (wav + np.random.default_rng(0).normal(0, 1e-3, len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    from speechlm.audio import save_audio
    from speechlm.corpus.manifest import Utterance, write_manifest

    d = tmp_path_factory.mktemp("mic")
    for i in range(3):
        save_audio(d / f"{i}.wav", np.roll(_mic(), i * 4000), SR)
    write_manifest(d / "m.jsonl", [Utterance(id=str(i), audio=f"{i}.wav", duration=2.4,
                                             sample_rate=SR) for i in range(3)])
    return load_tokenizer(fit_tokenizer(d / "m.jsonl", "mfcc", 6, d / "tok", causal=True,
                                        n_iter=10))


@pytest.fixture(scope="module")
def taught(tok):
    """A model overfitted on one scenario: it speaks (units cycling 1..3) until STOP_AFTER
    frames after the user's onset, writes <irq> there, then is silent (unit 0)."""
    listen = frame_units(tok, _mic(), SR)
    n, cut = len(listen), int(ONSET * FR) + STOP_AFTER
    speak = np.where(np.arange(n) < cut, 1 + np.arange(n) % 3, 0)
    vocab = list(SPECIALS)
    text = np.zeros(n, dtype=np.int64)
    text[cut] = vocab.index(IRQ)
    model = build_duplex({**MODEL, "duplex": {"fusion": "early"}}, tok.n_units, vocab, seed=0)
    model.config.silence_unit = 0
    batch = {k: torch.as_tensor(v)[None] for k, v in shifted(
        {"listen": listen, "speak": speak, "text": text}, tok.n_units, 1).items()}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(300):
        loss = model(**batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    return model.eval(), cut


def test_live_units_and_logits_equal_the_offline_path(tok, taught):
    model, _ = taught
    engine = DuplexEngine(model, tok, None, EngineSettings(vocode=False, seed=3))
    session = engine.session()
    wav = _mic()
    outputs = [o for i in range(0, len(wav), 777) for o in session.push(wav[i:i + 777])]
    log = session.log
    assert len(outputs) == len(wav) // 320 == len(log.listen)
    np.testing.assert_array_equal(log.listen, frame_units(tok, wav, SR))
    # what the session sampled, replayed through one offline forward, gives the same logits
    row = {"listen": log.listen, "speak": log.speak, "text": log.text}
    batch = {k: torch.as_tensor(v)[None] for k, v in shifted(row, tok.n_units, 1).items()
             if k in ("listen", "speak_in", "text_in")}
    with torch.inference_mode():
        offline = model(**batch).speak_logits[0]
        again = DuplexEngine(model, tok, None, EngineSettings(vocode=False, seed=3)).session()
        live = []
        for u, s, t in zip(batch["listen"][0], batch["speak_in"][0], batch["text_in"][0],
                           strict=True):
            live.append(model.step(again.state, u[None], s[None], t[None])[0][0])
    torch.testing.assert_close(torch.stack(live), offline, atol=1e-4, rtol=0)
    session.close()


def test_the_interrupt_token_stops_speech_within_the_taught_frames(tok, taught):
    model, cut = taught
    engine = DuplexEngine(model, tok, None, EngineSettings(vocode=False, temperature=0.05,
                                                           text_temperature=0.05))
    session = engine.session()
    outputs = session.push(_mic())
    speaking = np.array([o.speaking for o in outputs])
    onset = int(ONSET * FR)
    assert speaking[:onset].all()  # it talks while the user is silent
    irq = [i for i, o in enumerate(outputs) for e in o.events
           if e.kind == EventKind.INTERRUPTED]
    assert irq == [cut]  # the interrupt token, once, where it was taught
    assert not speaking[cut:].any()  # silent from the interrupt token on
    assert outputs[cut].events[0].time == pytest.approx((cut + 1) / FR)
    session.close()


class _KeepsTalking:
    """The taught model with its silence unit forbidden: its own units never stop."""

    def __init__(self, model):
        self.model, self.config = model, model.config

    def streaming(self, batch: int):
        return self.model.streaming(batch)

    def step(self, state, listen, speak, text):
        speak_logits, text_logits = self.model.step(state, listen, speak, text)
        return speak_logits.clone().index_fill_(-1, torch.tensor([0]), -1e9), text_logits


@pytest.mark.parametrize("stop_on_irq", [True, False])
def test_the_interrupt_token_itself_ends_the_turn(tok, taught, stop_on_irq):
    """LSLM: <irq> stops the speech even when the model's units would go on."""
    model, cut = taught
    engine = DuplexEngine(_KeepsTalking(model), tok, None, EngineSettings(
        vocode=False, temperature=0.05, text_temperature=0.05, stop_on_irq=stop_on_irq))
    session = engine.session()
    outputs = session.push(_mic())
    speaking = np.array([o.speaking for o in outputs])
    assert [i for i, o in enumerate(outputs) for e in o.events
            if e.kind == EventKind.INTERRUPTED][:1] == [cut]
    assert speaking[:cut].all()
    if stop_on_irq:  # silent from <irq> on, and read back as silent
        assert not speaking[cut:].any() and set(session.log.speak[cut:]) == {0}
    else:
        assert speaking[cut:].all()
    session.close()


def test_vocoded_audio_keeps_the_frame_clock(tok, taught):
    """Every frame returns frame_samples samples; speech is vocoded one chunk late, silence
    stays digital silence."""
    from speechlm.tokenizers.streams import Streams
    from speechlm.vocoders.fallback import fit_from_pairs

    model, cut = taught
    frames = frame_units(tok, _mic(), SR)
    vocoder = fit_from_pairs([(_mic(), Streams(FR, units=frames,
                                               durations=np.ones_like(frames)))],
                             tok.n_units, FR, SR)
    engine = DuplexEngine(model, tok, vocoder, EngineSettings(temperature=0.05,
                                                              text_temperature=0.05))
    outputs = engine.session().push(_mic())
    audio = np.concatenate([o.audio for o in outputs])
    assert all(len(o.audio) == engine.frame_samples for o in outputs)
    lag = (engine.settings.chunk_frames - 1) * engine.frame_samples
    assert np.abs(audio[:lag]).max() == 0  # the first chunk is still being said
    assert np.abs(audio[lag:lag + engine.frame_samples]).max() > 0  # then it is heard
    # silence from the interrupt on, once the last chunk with speech has been played
    assert np.abs(audio[(cut + 2 * engine.settings.chunk_frames) * 320:]).max() == 0


def test_a_non_causal_tokenizer_is_refused(tmp_path, tok, taught):
    from speechlm.tokenizers.features import SpectralFeatures, SpectralSpec
    from speechlm.tokenizers.units import UnitTokenizer

    offline = UnitTokenizer(SpectralFeatures(SpectralSpec()), tok.quantizer)
    with pytest.raises(ConfigError, match="causal"):
        DuplexEngine(taught[0], offline, None)
