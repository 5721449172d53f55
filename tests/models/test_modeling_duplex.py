"""The full-duplex LM: streaming steps equal the training forward for each fusion and listening
encoder, where each lets the user's unit reach (known answers), the listening GRU by hand, the
re-prefill of an unbounded stream (the GRU does not restart), save / load (old configs load
without the encoder), an overfit reproduced by greedy streaming, ignored frames in the loss, and
config errors."""

from __future__ import annotations

import json
import math
import time

import pytest
import torch
import torch.nn.functional as F

from speechlm.errors import ConfigError
from speechlm.models.modeling_duplex import (
    FUSIONS,
    LISTEN_ENCODERS,
    DuplexConfig,
    DuplexLM,
    shift_right,
)
from speechlm.models.modeling_valle import _mean_ce
from speechlm.pretrained import load_pretrained

N_UNITS, N_TEXT = 8, 5
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=2, max_position_embeddings=64)


def _model(fusion: str = "early", encoder: str = "gru", seed: int = 0, **kw) -> DuplexLM:
    torch.manual_seed(seed)
    backbone = TINY | kw.pop("backbone", {})
    return DuplexLM(DuplexConfig(backbone=backbone, n_units=N_UNITS, n_text=N_TEXT,
                                 fusion=fusion, listen_encoder=encoder, **kw)).eval()


def _streams(b: int, t: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Random listen, speak_in, text_in (B, T), BOS at t = 0 on the model's own streams."""
    g = torch.Generator().manual_seed(seed)
    listen = torch.randint(0, N_UNITS + 1, (b, t), generator=g)
    speak = shift_right(torch.randint(0, N_UNITS, (b, t), generator=g), N_UNITS)
    text = shift_right(torch.randint(0, N_TEXT, (b, t), generator=g), 1)
    return listen, speak, text


def _stream(model: DuplexLM, listen, speak, text) -> tuple[torch.Tensor, torch.Tensor]:
    """Step the model frame by frame over (B, T) streams: logits (B, T, n_units), (B, T, n_text)."""
    with model.streaming(listen.shape[0]) as state:
        out = [model.step(state, listen[:, t], speak[:, t], text[:, t])
               for t in range(listen.shape[1])]
    return torch.stack([o[0] for o in out], 1), torch.stack([o[1] for o in out], 1)


def test_shift_right_puts_bos_first():
    x = torch.tensor([[4, 5, 6]])
    assert shift_right(x, 9).tolist() == [[9, 4, 5]]


@pytest.mark.parametrize("encoder", LISTEN_ENCODERS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_streaming_steps_equal_the_full_forward(fusion, encoder):
    model = _model(fusion, encoder).train()
    if encoder == "gru":  # so that a GRU state lost between steps shows in the logits
        _long_memory(model)
    streams = _streams(2, 20)
    with torch.no_grad():
        model.eval()
        full = model(*streams)
        model.train()
    speak, text = _stream(model, *streams)
    assert model.training  # streaming() restores the mode it found
    assert speak.shape == (2, 20, N_UNITS) and text.shape == (2, 20, N_TEXT)
    torch.testing.assert_close(speak, full.speak_logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(text, full.text_logits, atol=1e-4, rtol=0)


# where changing listen[t0] changes the outputs: before t0 never (causal, the GRU too); at t0
# always; after t0 when the listening channel goes through the blocks (early, middle) or through
# the GRU (the user's past reaches even the late fusion), not when a bare embedding is added at
# the end (none + late)
@pytest.mark.parametrize("fusion,encoder,reaches_later", [
    ("early", "none", True), ("middle", "none", True), ("late", "none", False),
    ("early", "gru", True), ("middle", "gru", True), ("late", "gru", True)])
def test_listen_reaches_the_frames_each_fusion_says(fusion, encoder, reaches_later):
    model, t0 = _model(fusion, encoder), 5
    if encoder == "gru":
        _long_memory(model)
    listen, speak, text = _streams(2, 12)
    other = listen.clone()
    other[:, t0] = (listen[:, t0] + 1) % (N_UNITS + 1)
    with torch.no_grad():
        a, b = model(listen, speak, text), model(other, speak, text)
    diff = torch.maximum((a.speak_logits - b.speak_logits).abs().amax(-1),
                         (a.text_logits - b.text_logits).abs().amax(-1))  # (B, T)
    assert diff[:, :t0].max() == 0  # causal
    assert diff[:, t0].min() > 1e-4
    if reaches_later:
        assert diff[:, t0 + 1:].min() > 1e-6
    else:
        assert diff[:, t0 + 1:].max() == 0


def _long_memory(model: DuplexLM) -> DuplexLM:
    """The listening GRU as training can make it: its update gate's bias at 3 (z ~ 0.95: it keeps
    most of its state for ~20 frames) and its candidate's input weights 50 times their init (a
    state of order 0.1, not 0.005). At init the effect of a frame halves every frame and stays
    small, too small to tell a lost or restarted GRU state from a kept one at atol 1e-4 (late
    fusion) or after a few frames."""
    hidden = model.config.backbone.hidden_size
    with torch.no_grad():  # gates are ordered r, z, n
        model.listen_gru.bias_hh_l0[hidden:2 * hidden] = 3.0
        model.listen_gru.weight_ih_l0[2 * hidden:] *= 50
    return model


def _gru_by_hand(gru: torch.nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """torch's GRU equations (gates r, z, n), one frame at a time from a zero state: (B, T, H)."""
    w_ih, w_hh, b_ih, b_hh = gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0
    h, out = torch.zeros(x.shape[0], w_hh.shape[1]), []
    for t in range(x.shape[1]):
        gi, gh = x[:, t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        (ir, iz, i_n), (hr, hz, hn) = gi.chunk(3, -1), gh.chunk(3, -1)
        r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
        h = (1 - z) * torch.tanh(i_n + r * hn) + z * h
        out.append(h)
    return torch.stack(out, 1)


def test_listen_features_are_the_embeddings_plus_the_gru_over_them():
    """Known answers: gru: e + GRU(e) (the GRU by hand); none: e; a GRU zeroed outputs 0, so a
    gru model with the same seed (every other weight equal: the GRU is initialised last) and a
    zeroed GRU gives exactly the none model's logits."""
    gru, none = _model("late", "gru"), _model("late", "none")
    listen, speak, text = _streams(2, 10)
    with torch.no_grad():
        e = gru.listen_embed(listen)
        got, hidden = gru.listen_features(listen)
        torch.testing.assert_close(got, e + _gru_by_hand(gru.listen_gru, e), atol=1e-6, rtol=0)
        torch.testing.assert_close(hidden[0], (got - e)[:, -1], atol=1e-7, rtol=0)
        assert (got - e).abs().max() < e.abs().max()  # small init: close to the embeddings
        assert none.listen_gru is None and none.listen_features(listen)[1] is None
        assert torch.equal(none.listen_features(listen)[0], none.listen_embed(listen))
        shared = none.state_dict()
        assert all(torch.equal(v, shared[k]) for k, v in gru.state_dict().items()
                   if not k.startswith("listen_gru."))
        for p in gru.listen_gru.parameters():
            p.zero_()
        a, b = gru(listen, speak, text), none(listen, speak, text)
    assert torch.equal(a.speak_logits, b.speak_logits)
    assert torch.equal(a.text_logits, b.text_logits)


@pytest.mark.parametrize("encoder", LISTEN_ENCODERS)
def test_middle_fusion_adds_listen_to_every_block_input(encoder):
    """Known answer: the stock layers run by hand, the listen features added before each, give
    middle's logits; early fusion with the same weights (same seed) differs."""
    middle, early = _model("middle", encoder), _model("early", encoder)
    listen, speak, text = _streams(2, 10)
    bb = middle.backbone
    with torch.no_grad():
        heard = middle.listen_features(listen)[0]
        h = middle.speak_embed(speak) + middle.text_embed(text)
        rotary = bb.rotary_emb(h, torch.arange(10)[None])
        for layer in bb.layers:  # forward() skips the module's hooks: the fusion is done here
            h = layer.forward(h + heard, position_embeddings=rotary)
        want = middle.speak_head(bb.norm(h))
        got, other = middle(listen, speak, text), early(listen, speak, text)
    torch.testing.assert_close(got.speak_logits, want, atol=1e-5, rtol=0)
    assert (got.speak_logits - other.speak_logits).abs().max() > 1e-4


@pytest.mark.parametrize("encoder", LISTEN_ENCODERS)
@pytest.mark.parametrize("fusion", ["middle", "late"])
def test_unbounded_stream_re_prefills_the_most_recent_half(fusion, encoder):
    """After a re-prefill the backbone sees the window alone, from position 0, while the
    listening channel sees the whole stream: the logits are fused_logits over the window fed the
    window's slice of the features of the GRU run from frame 0 (it does not restart). With none
    that is the plain forward over the window; with gru the forward over the window (a GRU
    restarted at the window) differs."""
    m = 16  # max_position_embeddings: the cache is re-prefilled with 8 frames when full
    model = _model(fusion, encoder, backbone={"max_position_embeddings": m})
    if encoder == "gru":
        _long_memory(model)
    listen, speak, text = _streams(2, 45, seed=1)
    with torch.no_grad():
        heard, hidden = model.listen_features(listen)  # causal: [:, :t+1] is frame t's
    start, refills = 0, []
    with model.streaming(2) as state:
        for t in range(45):
            got = model.step(state, listen[:, t], speak[:, t], text[:, t])
            if t - start == m:  # the cache was full: the window restarts at position 0
                start = t - (m // 2 - 1)
                refills.append(t)
                assert state.length == m // 2
            window = slice(start, t + 1)
            with torch.no_grad():
                want = model.fused_logits(heard[:, window], speak[:, window], text[:, window])
                alone = model(listen[:, window], speak[:, window], text[:, window])
            torch.testing.assert_close(got[0], want[0][:, -1], atol=1e-4, rtol=0)
            torch.testing.assert_close(got[1], want[1][:, -1], atol=1e-4, rtol=0)
            if encoder == "none" or start == 0:  # no GRU, or it started with the window
                torch.testing.assert_close(got[0], alone.speak_logits[:, -1], atol=1e-4, rtol=0)
            else:  # the GRU's state carries the frames before the window
                assert (got[0] - alone.speak_logits[:, -1]).abs().max() > 1e-4
        if encoder == "gru":  # the GRU stepped on through every re-prefill
            torch.testing.assert_close(state.listen_hidden, hidden, atol=1e-5, rtol=0)
        else:
            assert state.listen_hidden is None
    assert refills == [16, 25, 34, 43]


@pytest.mark.parametrize("encoder", LISTEN_ENCODERS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_right_padding_leaves_the_real_frames_alone(fusion, encoder):
    model = _model(fusion, encoder)
    listen, speak, text = _streams(2, 10)
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 6:] = 0
    with torch.no_grad():
        padded = model(listen, speak, text, attention_mask=mask)
        alone = model(listen[1:, :6], speak[1:, :6], text[1:, :6])
    torch.testing.assert_close(padded.speak_logits[1, :6], alone.speak_logits[0], atol=1e-5,
                               rtol=0)


def test_save_and_load_round_trip(tmp_path):
    vocab = ["<pad>", "<bos>", "hello", "yes", "<eot>"]
    model = _model("late", text_vocab=vocab, text_weight=0.5)
    model.config.silence_unit = 2  # as the duplex objective writes it after building
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    # written even though it is the default: a config without it loads as none
    assert json.loads((tmp_path / "config.json").read_text())["listen_encoder"] == "gru"
    loaded = load_pretrained(DuplexLM, tmp_path, "duplex model").eval()
    assert loaded.config.text_vocab == vocab
    assert (loaded.config.fusion, loaded.config.text_weight) == ("late", 0.5)
    assert loaded.config.listen_encoder == "gru" and loaded.listen_gru is not None
    assert loaded.config.silence_unit == 2
    streams = _streams(2, 9)
    with torch.no_grad():
        a, b = model(*streams), loaded(*streams)
    assert torch.equal(a.speak_logits, b.speak_logits)
    assert torch.equal(a.text_logits, b.text_logits)


def test_a_config_saved_without_listen_encoder_loads_as_none(tmp_path):
    """Models saved before the key existed had no listening encoder (and no GRU weights): their
    config loads as none, not as the new default gru, and gives the same logits."""
    model = _model("late", "none")
    model.save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    saved = json.loads(path.read_text())
    del saved["listen_encoder"]  # as an older version wrote it
    path.write_text(json.dumps(saved))
    loaded = load_pretrained(DuplexLM, tmp_path, "duplex model").eval()
    assert loaded.config.listen_encoder == "none" and loaded.listen_gru is None
    streams = _streams(2, 9)
    with torch.no_grad():
        assert torch.equal(model(*streams).speak_logits, loaded(*streams).speak_logits)
    assert DuplexConfig.from_dict(saved).listen_encoder == "none"
    assert DuplexConfig.from_pretrained(tmp_path).listen_encoder == "none"
    # a new config without the key gets the new default; the key, when given, wins
    assert DuplexConfig(backbone=TINY).listen_encoder == "gru"
    assert DuplexConfig.from_dict({**saved, "listen_encoder": "gru"}).listen_encoder == "gru"


def _turn_taking_example() -> dict[str, torch.Tensor]:
    """The user's unit changes at frame 12; the model's units switch pattern there (0 1 0 1 ...,
    then 2 3 4 2 ...) and it says two words (ids 3, 4) at frames 12 and 13, pad elsewhere."""
    t = torch.arange(24)
    listen = torch.where(t < 12, 3, 5)[None]
    speak = torch.where(t < 12, t % 2, 2 + (t - 12) % 3)[None]
    text = torch.zeros_like(speak)
    text[0, 12], text[0, 13] = 3, 4
    return {"listen": listen, "speak_in": shift_right(speak, N_UNITS),
            "text_in": shift_right(text, 1), "speak_labels": speak, "text_labels": text}


@pytest.mark.parametrize("encoder", LISTEN_ENCODERS)
@pytest.mark.parametrize("fusion", FUSIONS)
def test_overfit_then_greedy_streaming_reproduces_the_labels(fusion, encoder):
    model, ex = _model(fusion, encoder).train(), _turn_taking_example()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = model(**ex).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.01
    speak_prev, text_prev = torch.tensor([N_UNITS]), torch.tensor([1])
    units, words = [], []
    with model.streaming(1) as state:
        for t in range(24):  # the model's own outputs are its next inputs
            s, x = model.step(state, ex["listen"][:, t], speak_prev, text_prev)
            speak_prev, text_prev = s.argmax(-1), x.argmax(-1)
            units.append(int(speak_prev))
            words.append(int(text_prev))
    assert units == ex["speak_labels"][0].tolist()
    assert words == ex["text_labels"][0].tolist()


def test_loss_ignores_minus_100_frames():
    model = _model("early").train()
    streams = _streams(2, 10)
    speak_labels = torch.randint(0, N_UNITS, (2, 10))
    speak_labels[0, 3:] = -100
    text_labels = torch.full((2, 10), -100)  # no text target at all
    out = model(*streams, speak_labels=speak_labels, text_labels=text_labels)
    keep = speak_labels != -100
    want = F.cross_entropy(out.speak_logits[keep], speak_labels[keep])
    torch.testing.assert_close(out.speak_loss, want)
    assert out.text_loss.item() == 0.0
    torch.testing.assert_close(out.loss, out.speak_loss)
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    with torch.no_grad():  # zero heads: uniform logits, a loss of log(n_units) per frame
        model.speak_head.weight.zero_()
        model.text_head.weight.zero_()
        out = model(*streams, speak_labels=speak_labels, text_labels=torch.zeros(2, 10).long())
    assert out.speak_loss.item() == pytest.approx(math.log(N_UNITS))
    assert out.loss.item() == pytest.approx(math.log(N_UNITS) + math.log(N_TEXT))


def test_transcript_head_adds_its_weighted_loss_and_leaves_the_rest_alone():
    """Known answer: a zero transcript head gives uniform logits, log(n_transcript) per labelled
    frame, weighted into the loss; the speak and text logits equal those of the same model
    without the head (it draws its weights last), and streaming never computes it."""
    words = ["<unk>", "what", "did", "max"]
    plain = _model("middle", seed=3)
    model = _model("middle", seed=3, n_transcript=4, transcript_vocab=words,
                   transcript_weight=0.5).train()
    streams = _streams(2, 10)
    speak, text = torch.randint(0, N_UNITS, (2, 10)), torch.randint(0, N_TEXT, (2, 10))
    heard = torch.full((2, 10), -100)
    heard[0, 2:6] = 1
    with torch.no_grad():
        model.transcript_head.weight.zero_()
        out = model(*streams, speak_labels=speak, text_labels=text, transcript_labels=heard)
        bare = plain.train()(*streams, speak_labels=speak, text_labels=text)
    assert out.transcript_logits.shape == (2, 10, 4)
    assert out.transcript_loss.item() == pytest.approx(math.log(4))
    torch.testing.assert_close(out.speak_logits, bare.speak_logits)
    torch.testing.assert_close(out.text_logits, bare.text_logits)
    torch.testing.assert_close(out.loss, bare.loss + 0.5 * out.transcript_loss)
    with pytest.raises(ValueError, match="heard_labels|transcript head"):
        plain(*streams, transcript_labels=heard)


def test_transcript_head_saves_and_loads(tmp_path):
    words = ["<unk>", "what", "did"]
    model = _model("early", n_transcript=3, transcript_vocab=words, transcript_weight=2.0)
    model.save_pretrained(tmp_path)
    loaded = load_pretrained(DuplexLM, tmp_path, "duplex model").eval()
    assert loaded.config.transcript_vocab == words and loaded.config.transcript_weight == 2.0
    streams = _streams(1, 6)
    with torch.no_grad():
        assert torch.equal(model(*streams).transcript_logits, loaded(*streams).transcript_logits)


def test_text_loss_weights_weight_each_frame_by_its_token():
    """Known answer: with uniform text logits every frame costs log(n_text), so the weighted
    mean is log(n_text) whatever the weights; with a right answer on the weighted frames
    only, their share of the mean is their weight over the total."""
    vocab = ["<pad>", "<bos>", "<answer>", "<silent>", "w"]
    model = _model("early", text_vocab=vocab, text_loss_weights={"<answer>": 3.0}).train()
    streams = _streams(1, 4)
    labels = torch.tensor([[0, 2, 0, 2]])
    with torch.no_grad():
        model.text_head.weight.zero_()  # uniform text logits
    out = model(*streams, text_labels=labels)
    assert out.text_loss.item() == pytest.approx(math.log(N_TEXT))
    logits = torch.zeros(1, 4, N_TEXT)
    logits[0, [1, 3], 2] = 50.0  # certain and right on the <answer> frames: nll 0 there
    weighted = _mean_ce(logits, labels, model._text_class_weights())
    # two <pad> frames of weight 1 cost log(5) each; two <answer> frames of weight 3 cost 0
    assert weighted.item() == pytest.approx(2 * math.log(N_TEXT) / (2 + 2 * 3), rel=1e-5)
    assert _mean_ce(logits, labels).item() == pytest.approx(2 * math.log(N_TEXT) / 4, rel=1e-5)


@pytest.mark.parametrize("kw,match", [
    ({"fusion": "mid"}, "fusion: must be one of 'early', 'middle', 'late'"),
    ({"listen_encoder": "lstm"}, "listen_encoder: must be one of 'none', 'gru', got 'lstm'"),
    ({"listen_encoder": None}, "listen_encoder: must be one of 'none', 'gru', got None"),
    ({"n_units": 0}, "n_units"),
    ({"n_text": -1}, "n_text"),
    ({"backbone": TINY | {"hidden_size": 0}}, "backbone.hidden_size"),
    ({"backbone": TINY | {"max_position_embeddings": 1}}, "max_position_embeddings"),
    ({"backbone": TINY | {"model_type": "mistral"}}, "backbone.model_type"),
    ({"text_bos_id": N_TEXT}, "text_bos_id"),
    ({"text_vocab": ["a", "b"]}, "text_vocab"),
    ({"text_weight": -1.0}, "text_weight"),
    ({"silence_unit": N_UNITS}, "silence_unit"),
    ({"n_transcript": -1}, "n_transcript"),
    ({"n_transcript": 2, "transcript_vocab": ["a"]}, "transcript_vocab: must be n_transcript=2"),
    ({"transcript_weight": -0.5}, "transcript_weight"),
    ({"text_vocab": list("abcde"), "text_loss_weights": {"<irq>": 2.0}},
     "text_loss_weights: '<irq>' is not in text_vocab"),
    ({"text_vocab": list("abcde"), "text_loss_weights": {"a": 0}},
     "text_loss_weights.a: must be a number > 0"),
])
def test_config_refuses_invalid_values(kw, match):
    args = {"backbone": TINY, "n_units": N_UNITS, "n_text": N_TEXT} | kw
    with pytest.raises(ValueError, match=match) as err:
        DuplexConfig(**args)
    assert isinstance(err.value, ConfigError)


def test_config_names_its_special_ids():
    cfg = DuplexConfig(backbone=TINY, n_units=N_UNITS, n_text=N_TEXT)
    assert cfg.speak_bos_id == cfg.listen_pad_id == N_UNITS
    assert (cfg.text_bos_id, cfg.pad_text_id, cfg.backbone.vocab_size) == (1, 0, 1)
    assert cfg.listen_encoder == "gru"  # new configs get the streaming listening encoder


def test_step_time_is_reported():
    """Per-frame step time of a 4-layer, 128-wide backbone on one CPU thread, with each listening
    encoder (printed only: timings are never asserted)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ms = {}
    try:
        for encoder in LISTEN_ENCODERS:
            torch.manual_seed(0)
            model = DuplexLM(DuplexConfig(
                backbone=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                              num_attention_heads=4, num_key_value_heads=4,
                              max_position_embeddings=512), n_units=500, n_text=64,
                listen_encoder=encoder))
            z = torch.zeros(1, dtype=torch.long)
            with model.streaming(1) as state:
                for _ in range(10):  # warm up
                    model.step(state, z, z, z)
                t0, n = time.perf_counter(), 200
                for _ in range(n):
                    model.step(state, z, z, z)
                ms[encoder] = (time.perf_counter() - t0) / n * 1e3
    finally:
        torch.set_num_threads(threads)
    print("duplex step: " + ", ".join(f"listen_encoder {k} {v:.2f} ms" for k, v in ms.items())
          + " per frame (4 layers, 128 wide, 1 thread)")
