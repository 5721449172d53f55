"""Continuation from a spoken prompt, batch generation, resynthesis, and their errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from speechlm.errors import AudioError, SpeechLMError


@pytest.fixture(scope="module")
def model_with_vocoder(tiny_model, tiny_corpus, tmp_path_factory):
    """The tiny model directory plus a fallback vocoder fitted (through the CLI) on the corpus."""
    from speechlm.cli import app

    d = tmp_path_factory.mktemp("model_voc") / "model"
    shutil.copytree(tiny_model, d)
    r = CliRunner().invoke(app, ["vocoder", "fit-fallback", "--manifest",
                                 str(tiny_corpus / "manifest.jsonl"), "--tokenizer", str(d),
                                 "--out", str(d / "vocoder"), "--max-hours", "0.01"])
    assert r.exit_code == 0, r.output
    assert json.loads((d / "vocoder" / "vocoder.json").read_text())["kind"] == "fallback"
    return d


@pytest.fixture(scope="module")
def lm(model_with_vocoder):
    from speechlm.models import load_speech_lm

    return load_speech_lm(model_with_vocoder)


@pytest.fixture(scope="module")
def prompt(tiny_corpus):
    from speechlm.corpus.manifest import read_manifest

    return read_manifest(tiny_corpus / "manifest.jsonl")[0].audio, 16000


def test_continuation_is_reproducible_with_a_seed(lm, prompt):
    from speechlm.audio import load_audio
    from speechlm.generate import continue_speech

    wav = load_audio(prompt[0])
    a_streams, a = continue_speech(lm, wav, 16000, max_seconds=1.0, seed=3)
    b_streams, b = continue_speech(lm, wav, 16000, max_seconds=1.0, seed=3)
    c_streams, _ = continue_speech(lm, wav, 16000, max_seconds=1.0, seed=4, temperature=1.5)
    np.testing.assert_array_equal(a_streams.units, b_streams.units)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a_streams.units, c_streams.units)
    assert len(a_streams.units) > 0 and a_streams.units.max() < lm.vocab.n_units
    assert 0 < len(a) <= 16000  # capped at max_seconds


def test_batch_matches_its_own_rerun_and_respects_top_k(lm, prompt):
    from speechlm.audio import load_audio
    from speechlm.generate import Sampling, continue_speech_batch

    wav = load_audio(prompt[0])
    prompts = [wav, wav[: len(wav) // 2]]
    s = Sampling(max_seconds=0.5, top_k=1, seed=0)  # top-k 1 is greedy: both rows deterministic
    first = continue_speech_batch(lm, prompts, 16000, s, batch_size=2)
    again = continue_speech_batch(lm, prompts, 16000, s, batch_size=1)
    for x, y in zip(first, again, strict=True):  # left padding does not change greedy output
        np.testing.assert_array_equal(x.streams.units, y.streams.units)


def test_bad_prompts_and_settings_raise_clear_errors(lm):
    from speechlm.generate import Sampling, continue_speech

    with pytest.raises(SpeechLMError, match="NaN"):
        continue_speech(lm, np.array([0.0, np.nan] * 800, np.float32), 16000)
    with pytest.raises(SpeechLMError, match="mono"):
        continue_speech(lm, np.zeros((2, 1600), np.float32), 16000)
    with pytest.raises(SpeechLMError, match="top_p"):
        Sampling(top_p=0.0)


def test_generate_cli_writes_audio_units_and_errors(model_with_vocoder, prompt, tmp_path):
    from speechlm.audio import audio_info
    from speechlm.cli import app

    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    runner = CliRunner()
    r = runner.invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                            str(prompt[0]), "--out", str(tmp_path / "out.wav"),
                            "--max-seconds", "1", "--seed", "1"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "out.json").read_text())
    assert meta["units"] and meta["prompt_units"] and meta["sampling"]["seed"] == 1
    assert audio_info(tmp_path / "out.wav").samplerate == 16000

    r = runner.invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                            str(corrupt), "--out", str(tmp_path / "bad.wav")])
    assert isinstance(r.exception, AudioError) and "corrupt.wav" in str(r.exception)

    r = runner.invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                            str(prompt[0]), "--prompt", str(corrupt), "--out",
                            str(tmp_path / "many"), "--max-seconds", "0.5"])
    assert r.exit_code == 0, r.output
    errors = [json.loads(x) for x in (tmp_path / "many" / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 1 and "corrupt.wav" in errors[0]["prompt"]
    assert len(list((tmp_path / "many").glob("*.wav"))) == 1


def test_a_prompt_too_short_for_a_unit_is_listed_and_the_batch_goes_on(model_with_vocoder,
                                                                        prompt, tmp_path):
    from pathlib import Path

    import soundfile as sf

    from speechlm.generate import batch

    speech, blip = Path(prompt[0]), tmp_path / "blip.wav"
    sf.write(blip, np.full(80, 0.1, np.float32), 8000)  # 10 ms: not one 25-ms window
    summary = batch.generate_files(model_with_vocoder, [blip, speech], tmp_path / "many",
                                   max_seconds=0.5)
    assert summary == {"written": 1, "skipped": 1, "out": str(tmp_path / "many")}
    (err,) = [json.loads(x) for x in (tmp_path / "many" / "errors.jsonl").read_text()
              .splitlines()]
    assert err == {"prompt": str(blip), "error": "0.010 s of audio gave no unit: too short to "
                   "tokenise (a unit needs at least one analysis window, about 25 ms)"}
    assert [p.name for p in (tmp_path / "many").glob("*.wav")] == [f"{speech.stem}.wav"]
    with pytest.raises(SpeechLMError, match=r"^\S*blip.wav: 0.010 s of audio gave no unit"):
        batch.generate_files(model_with_vocoder, [blip], tmp_path / "one.wav")
    from speechlm.cli import app

    r = CliRunner().invoke(app, ["resynth", str(blip), str(tmp_path / "r.wav"), "--model",
                                 str(model_with_vocoder)])  # not an empty file and exit 0
    assert isinstance(r.exception, SpeechLMError) and "blip.wav: 0.010 s" in str(r.exception)
    assert not (tmp_path / "r.wav").exists() and not (tmp_path / "one.wav").exists()


def test_resynth_cli_keeps_the_length(model_with_vocoder, prompt, tmp_path):
    from speechlm.audio import audio_info
    from speechlm.cli import app

    r = CliRunner().invoke(app, ["resynth", "--model", str(model_with_vocoder), str(prompt[0]),
                                 str(tmp_path / "re.wav")])
    assert r.exit_code == 0, r.output
    n_in, n_out = audio_info(prompt[0]).frames, audio_info(tmp_path / "re.wav").frames
    assert abs(n_in - n_out) <= 2 * 320


def test_missing_vocoder_is_explained(tiny_model):
    from speechlm.generate.continuation import resolve_vocoder
    from speechlm.models import load_speech_lm

    with pytest.raises(SpeechLMError, match="fit-fallback"):
        resolve_vocoder(load_speech_lm(tiny_model))


@pytest.mark.parametrize("rate, channels", [(8000, 2), (48000, 1)])
def test_prompt_at_another_rate_or_stereo_gives_a_continuation(model_with_vocoder, prompt,
                                                                tmp_path, rate, channels):
    import soundfile as sf
    import soxr

    from speechlm.audio import audio_info, load_audio
    from speechlm.cli import app

    wav = soxr.resample(load_audio(prompt[0]), 16000, rate)
    path = tmp_path / "p.wav"
    sf.write(path, np.stack([wav] * channels, 1) if channels > 1 else wav, rate)
    out = tmp_path / "out.wav"
    r = CliRunner().invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                                 str(path), "--out", str(out), "--max-seconds", "2",
                                 "--seed", "0"])
    assert r.exit_code == 0, r.output
    meta = json.loads(out.with_suffix(".json").read_text())
    # the default minimum length (1 s of the prompt's unit rate) holds
    prompt_seconds = sum(meta["prompt_durations"]) / meta["frame_rate"]
    floor = int(np.ceil(len(meta["prompt_units"]) / prompt_seconds))
    assert len(meta["units"]) >= floor > 0
    assert audio_info(out).frames > 0 and meta["sampling"]["min_seconds"] == 1.0


def test_prompt_longer_than_the_context_keeps_its_end_with_a_warning(model_with_vocoder, prompt,
                                                                     tmp_path, caplog):
    import logging

    from speechlm.audio import load_audio
    from speechlm.generate import continue_speech
    from speechlm.models import load_speech_lm

    d = tmp_path / "short_context"
    shutil.copytree(model_with_vocoder, d)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "max_position_embeddings": 48}))
    lm = load_speech_lm(d)
    wav = np.concatenate([load_audio(prompt[0])] * 3)
    n_prompt = len(lm.encode_audio([wav], 16000)[0])
    assert n_prompt > 48
    with caplog.at_level(logging.WARNING, logger="speechlm"):
        streams, audio = continue_speech(lm, wav, 16000, max_seconds=0.5, seed=0,
                                         min_seconds=0.2)
    assert "do not fit the model's context of 48" in caplog.text
    assert len(streams.units) > 0 and len(audio) > 0


def test_empty_continuation_is_an_error_or_a_listed_skip(model_with_vocoder, prompt, tmp_path,
                                                         monkeypatch):
    from pathlib import Path

    from speechlm.generate import batch, continuation

    real = continuation.continue_speech_batch
    path = Path(prompt[0])

    def ends_at_once(*args, **kw):  # the model emitted end of sequence first, for every prompt
        outs = real(*args, **kw)
        return [continuation.Continuation(o.prompt, o.streams, np.zeros(0, np.float32),
                                          o.sample_rate, True) for o in outs]

    monkeypatch.setattr(continuation, "continue_speech_batch", ends_at_once)
    with pytest.raises(SpeechLMError, match="ended the continuation at once"):
        batch.generate_files(model_with_vocoder, [path], tmp_path / "one.wav", max_seconds=0.5)
    assert not (tmp_path / "one.wav").exists()
    summary = batch.generate_files(model_with_vocoder, [path, path], tmp_path / "many",
                                   max_seconds=0.5)
    assert summary == {"written": 0, "skipped": 2, "out": str(tmp_path / "many")}
    errors = (tmp_path / "many" / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 2 and "ended the continuation at once" in errors[0]


# ---- repetition penalty ------------------------------------------------------------------------
def _fixed_logits_lm(bias):
    """A tiny causal speech LM whose next-token logits are ``bias`` whatever the input."""
    from pathlib import Path
    from types import SimpleNamespace

    import torch

    from speechlm.models import get_architecture
    from speechlm.models.speech_lm import SpeechLM
    from speechlm.sequences.vocab import SpeechVocab

    vocab = SpeechVocab.build({"units": 20})
    arch = get_architecture("causal_lm")
    model = arch.build({"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
                        "num_hidden_layers": 1, "num_attention_heads": 2,
                        "num_key_value_heads": 2}, vocab, seed=0).eval()
    head = torch.nn.Linear(32, vocab.size, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.as_tensor(bias(vocab), dtype=torch.float32))
    model.lm_head = head
    return SpeechLM(model=model, vocab=vocab, dir=Path("."), architecture=arch,
                    _tokenizers={"speech": SimpleNamespace(dedup=True)})


PREFERENCE = [7, 3, 12, 0, 19, 5, 9, 14, 1, 16, 2, 11, 18, 6, 4, 13, 8, 17, 10, 15]  # best first


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_repetition_penalty_makes_greedy_causal_lm_avoid_seen_units(sign):
    """Logits fixed by a head bias (units ranked by PREFERENCE, positive or negative; markers,
    BOS and padding above every unit): greedy decoding repeats the best unit without a penalty;
    with a large one it takes the best unit not yet in the prompt nor the continuation, so the
    prompts' units are avoided, no unit repeats, and AllowOnly still keeps to units."""
    from speechlm.models.sampling import Sampling
    from speechlm.tokenizers.streams import Streams

    def bias(vocab):
        b = np.full(vocab.size, 50.0)  # non-unit ids: only AllowOnly keeps them out
        b[vocab.eos_id] = -100.0
        for rank, u in enumerate(PREFERENCE):  # in [5.25, 10], or in [-5.75, -1]
            b[vocab.unit_offset + u] = 10.0 - 0.25 * rank if sign > 0 else -1.0 - 0.25 * rank
        return b

    lm = _fixed_logits_lm(bias)
    prompts = [Streams(50.0, units=np.array([PREFERENCE[0], PREFERENCE[2], PREFERENCE[0]])),
               Streams(50.0, units=np.array([PREFERENCE[1]]))]  # shorter: left padded
    budgets = [18, 19]  # every unit the prompt does not hold
    greedy = lm.generate(prompts, Sampling(top_k=1), budgets)
    for (streams, stopped), budget in zip(greedy, budgets, strict=True):
        assert streams.units.tolist() == [PREFERENCE[0]] * budget and not stopped

    penalised = lm.generate(prompts, Sampling(top_k=1, repetition_penalty=1000.0), budgets)
    for (streams, _), prompt in zip(penalised, prompts, strict=True):
        seen = set(prompt.units.tolist())
        assert streams.units.tolist() == [u for u in PREFERENCE if u not in seen]


@pytest.mark.parametrize("value", [0, -1, 0.0, float("nan"), float("inf"), "2"])
def test_invalid_repetition_penalty_is_refused_by_name(value):
    from speechlm.models.sampling import Sampling

    with pytest.raises(SpeechLMError, match="repetition_penalty must be a finite number > 0"):
        Sampling(repetition_penalty=value)
    assert Sampling(repetition_penalty=2).repetition_penalty == 2.0  # an int is a float here
    assert Sampling(10.0, 1.0, 0, 1.0, 0, 0.0).repetition_penalty == 1.0  # positional: off


@pytest.mark.parametrize("value", ["0", "-1"])
def test_generate_cli_refuses_a_bad_repetition_penalty(tmp_path, value):
    from speechlm.cli import app

    r = CliRunner().invoke(app, ["generate", "--model", str(tmp_path / "no_model"), "--prompt",
                                 str(tmp_path / "p.wav"), "--out", str(tmp_path / "o.wav"),
                                 "--repetition-penalty", value])
    assert isinstance(r.exception, SpeechLMError)
    assert "repetition_penalty" in str(r.exception)


def test_generate_cli_records_the_repetition_penalty(model_with_vocoder, prompt, tmp_path):
    from speechlm.cli import app

    r = CliRunner().invoke(app, ["generate", "--model", str(model_with_vocoder), "--prompt",
                                 str(prompt[0]), "--out", str(tmp_path / "out.wav"),
                                 "--max-seconds", "0.5", "--repetition-penalty", "1.3"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "out.json").read_text())
    assert meta["sampling"]["repetition_penalty"] == 1.3 and meta["units"]


def test_continue_speech_takes_the_repetition_penalty(lm, prompt):
    from speechlm.audio import load_audio
    from speechlm.generate import continue_speech

    wav = load_audio(prompt[0])
    greedy = {"max_seconds": 0.5, "min_seconds": 0.2, "top_k": 1}
    off, _ = continue_speech(lm, wav, 16000, **greedy)
    same, _ = continue_speech(lm, wav, 16000, **greedy, repetition_penalty=1.0)
    np.testing.assert_array_equal(off.units, same.units)  # 1.0 is off
    on, _ = continue_speech(lm, wav, 16000, **greedy, repetition_penalty=1e3)
    assert len(on.units) > 0 and on.units.max() < lm.vocab.n_units


def test_eval_generation_cli_and_recipe_stage_pass_the_repetition_penalty(monkeypatch):
    import inspect

    from speechlm.cli import app
    from speechlm.errors import ConfigError
    from speechlm.evaluate import generation
    from speechlm.generate import continue_speech
    from speechlm.recipes.stages.evaluation import GenerateConfig

    seen = {}

    def fake(*args, **kw):
        seen.update(kw)
        return {k: 0.0 for k in ("resynth_wer", "original_wer", "perplexity", "auto_bleu_2",
                                 "self_bleu_4")}

    monkeypatch.setattr(generation, "evaluate_generation", fake)
    r = CliRunner().invoke(app, ["eval", "generation", "--model", "m", "--manifest", "x.jsonl",
                                 "--out", "o", "--repetition-penalty", "1.2"])
    assert r.exit_code == 0, r.output
    assert seen["repetition_penalty"] == 1.2
    monkeypatch.undo()
    assert inspect.signature(generation.evaluate_generation).parameters[
        "repetition_penalty"].default == 1.0

    conf = GenerateConfig.from_dict({"repetition_penalty": 1.2}, prefix="generate.")
    values = conf.sampling()
    assert values["repetition_penalty"] == 1.2
    inspect.signature(continue_speech).bind(None, None, 16000, **values)  # every key is taken
    assert GenerateConfig().repetition_penalty == 1.0
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="^generate.repetition_penalty: must be > 0"):
            GenerateConfig.from_dict({"repetition_penalty": bad}, prefix="generate.")


def test_continuations_speak_in_the_prompt_voice_or_the_mean_voice(lm, prompt):
    """A voice-conditioned vocoder gets the prompt's d-vector, or none (its mean voice) with
    prompt_voice=False; the continuations' units do not change."""
    from speechlm.generate.continuation import continue_speech_batch
    from speechlm.models.sampling import Sampling

    class Recording:
        sample_rate = 16000
        seen: list = []

        def voice_of(self, wav, sample_rate):
            return np.full(4, float(len(wav)), np.float32)

        def synthesize(self, streams, seed=0, voice=None):
            self.seen.append(voice)
            return np.zeros(160 * len(streams.units), np.float32)

    from speechlm.audio import load_audio

    voc, wav = Recording(), load_audio(prompt[0])[:16000]
    sampling = Sampling(1.0, 1.0, seed=0, min_seconds=0.5)
    with_voice = continue_speech_batch(lm, [wav], 16000, sampling, vocoder=voc)
    mean = continue_speech_batch(lm, [wav], 16000, sampling, vocoder=voc, prompt_voice=False)
    assert voc.seen[0] is not None and voc.seen[0][0] == len(wav) and voc.seen[1] is None
    assert np.array_equal(with_voice[0].streams.units, mean[0].streams.units)
