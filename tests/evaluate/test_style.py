"""The style-keeping benchmark: delivery features, the JSON classifier, the end-to-end figures."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from speechlm.corpus.styles import label_of_text
from speechlm.errors import SpeechLMError

SENTENCES = ["the girl laughed and smiled at the lovely garden today",
             "a tearful boy cried and sighed by the gloomy river",
             "the furious man shouted and yelled at the annoyed dog",
             "my calm friend nodded and rested by the open window"]
STYLED = {"happy": SENTENCES[:1] + ["the cheerful woman sang and danced in the sun"],
          "sad": SENTENCES[1:2] + ["the lonely child wept and mourned by the door"],
          "angry": SENTENCES[2:3] + ["an outraged driver cursed and stormed down the road"],
          "neutral": SENTENCES[3:] + ["the steady worker paused and listened at the gate"]}
# two clearly different deliveries: (rate wpm, pitch 0-100, amplitude scale)
SLOW_LOW_QUIET, FAST_HIGH_LOUD = (110, 20, 0.3), (220, 80, 1.0)
DELIVERY = {"sad": SLOW_LOW_QUIET, "happy": FAST_HIGH_LOUD, "angry": (215, 45, 0.9),
            "neutral": (165, 50, 0.6)}


def _speak(text: str, voice: str, delivery: tuple[int, int, float], seed: int = 0):
    from speechlm.corpus.espeak import Espeak

    rate, pitch, gain = delivery
    spoken = Espeak.get().speak(text, voice, rate, pitch, 16000, seed=seed)
    return spoken.wav * gain, spoken.words


def test_features_differ_for_a_clearly_different_delivery():
    from speechlm.evaluate.delivery import FEATURES, style_features

    names = list(FEATURES)
    slow = style_features(_speak(SENTENCES[0], "en-us+m7", SLOW_LOW_QUIET)[0], 16000)
    fast = style_features(_speak(SENTENCES[0], "en-us+m7", FAST_HIGH_LOUD)[0], 16000)
    assert slow.shape == (len(FEATURES),) and np.isfinite(slow).all()
    assert fast[names.index("f0_mean_st")] > slow[names.index("f0_mean_st")] + 3
    assert fast[names.index("energy_mean_db")] > slow[names.index("energy_mean_db")] + 6
    assert fast[names.index("onset_rate_hz")] > slow[names.index("onset_rate_hz")]
    # the rate of the audio does not matter: features are measured at 16 kHz
    import soxr

    wav = _speak(SENTENCES[1], "en-us+m7", FAST_HIGH_LOUD)[0]
    at_24k = style_features(soxr.resample(wav, 16000, 24000), 24000)
    assert at_24k[0] == pytest.approx(style_features(wav, 16000)[0], abs=0.2)


def test_silence_has_no_style_features():
    from speechlm.errors import AudioError
    from speechlm.evaluate.delivery import style_features

    with pytest.raises(AudioError, match="voiced"):
        style_features(np.zeros(16000, np.float32), 16000)


def test_classifier_separates_deliveries_on_an_unseen_voice_and_round_trips(tmp_path):
    from speechlm.evaluate.delivery import StyleClassifier, leave_one_speaker_out, style_features

    train_voices, test_voice = ["en-us+Mike", "en-us+linda", "en-us+anika"], "en-us+m7"
    styles = {"slow": SLOW_LOW_QUIET, "fast": FAST_HIGH_LOUD}
    rows = [(style_features(_speak(t, v, d, seed=i)[0], 16000), s, v)
            for v in [*train_voices, test_voice] for s, d in styles.items()
            for i, t in enumerate(SENTENCES)]
    x = np.stack([r[0] for r in rows])
    labels, voices = [r[1] for r in rows], [r[2] for r in rows]
    train = np.array([v != test_voice for v in voices])
    clf = StyleClassifier.fit_features(x[train], np.array(labels)[train])
    pred = clf.predict_features(x[~train])
    assert pred == list(np.array(labels)[~train])  # every utterance of the unseen voice
    # every voice in turn held out; from three voices a fit can still lean on register (linda
    # speaks slow 8 semitones above Mike's fast): measured 0.84, half of linda's right
    cv = leave_one_speaker_out(x, labels, voices)
    assert cv["accuracy"] >= 0.75 and set(cv["by_speaker"]) == set(voices)
    # JSON round trip: the same classes, the same labels and probabilities
    clf.save(tmp_path / "clf")
    assert not list((tmp_path / "clf").glob("*.pkl"))
    back = StyleClassifier.load(tmp_path / "clf")
    assert back.classes == clf.classes
    assert back.predict_features(x) == clf.predict_features(x)
    np.testing.assert_allclose(back.probabilities(x), clf.probabilities(x))
    wav = _speak(SENTENCES[2], test_voice, FAST_HIGH_LOUD)[0]
    assert back.predict([wav], 16000) == ["fast"]


@pytest.fixture(scope="module")
def model_with_vocoder(tiny_model, tiny_corpus, tmp_path_factory):
    """The tiny trained model directory with a fallback vocoder fitted on the tiny corpus."""
    from speechlm.vocoders.fallback import fit_fallback_vocoder

    d = tmp_path_factory.mktemp("style_model") / "model"
    shutil.copytree(tiny_model, d)
    fit_fallback_vocoder(tiny_corpus / "manifest.jsonl", d / "speech_tokenizer", d / "vocoder",
                         max_hours=0.01)
    return d


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A labelled manifest: 2 voices x 4 styles x 2 sentences of the style's words, plus one
    utterance too short to prompt with, whose id the split puts on the prompt side."""
    from speechlm.audio import save_audio
    from speechlm.corpus.manifest import Utterance, write_manifest
    from speechlm.evaluate.style import split_labelled

    out = tmp_path_factory.mktemp("labelled")
    utts = []
    for v in ("en-us+m7", "en-us+linda"):
        for style, delivery in DELIVERY.items():
            for i, text in enumerate(STYLED[style]):
                uid = f"{v[6:]}_{style}_{i}"
                wav, words = _speak(text, v, delivery, seed=i)
                save_audio(out / f"{uid}.wav", wav, 16000)
                utts.append(Utterance(uid, f"{uid}.wav", len(wav) / 16000, 16000, text, v,
                                      words=words, style=style))
    wav, words = _speak("glad", "en-us+m7", FAST_HIGH_LOUD)
    for k in range(50):
        short = Utterance(f"short{k}", "short.wav", len(wav) / 16000, 16000, "glad",
                          "en-us+m7", words=words, style="happy")
        if short in split_labelled([*utts, short])[1]:
            break
    save_audio(out / "short.wav", wav, 16000)
    write_manifest(out / "manifest.jsonl", [*utts, short])
    return out / "manifest.jsonl", short.id


def test_evaluate_style_end_to_end(model_with_vocoder, labelled, tmp_path):
    from speechlm.evaluate.delivery import StyleClassifier
    from speechlm.evaluate.style import evaluate_style

    manifest, short_id = labelled
    out = tmp_path / "style"
    r = evaluate_style(model_with_vocoder, manifest, out, prompts_per_style=3,
                       prompt_seconds=1.0, continuation_seconds=1.5, samples=2, seed=0,
                       progress=False)
    saved = json.loads((out / "style.json").read_text())
    assert saved == json.loads(json.dumps(r))
    s, rows = saved["summary"], saved["prompts"]
    # the short utterance is listed with its reason, the others are prompts
    assert [x["id"] for x in saved["skipped"]] == [short_id]
    assert "too short" in saved["skipped"][0]["reason"]
    assert s["n_prompts"] == len(rows) == 8 and {r["style"] for r in rows} == set(DELIVERY)
    for key in ("style_accuracy", "sentiment_accuracy", "rest_style_accuracy",
                "resynth_style_accuracy", "rest_sentiment_accuracy", "majority_rate"):
        assert s[key] is None or 0.0 <= s[key] <= 1.0, key
    assert s["chance"] == pytest.approx(0.25) and s["majority_rate"] == pytest.approx(0.25)
    for key in ("f0_corr", "rest_f0_corr", "resynth_f0_corr"):
        assert s[key] is None or -1.0 <= s[key] <= 1.0
    # the figures are those of the rows written beside them
    scored = [(r, x) for r in rows for x in r["samples"] if "skipped" not in x]
    assert s["n_samples_scored"] == len(scored) > 0
    assert s["style_accuracy"] == pytest.approx(
        np.mean([x["audio_label"] == r["style"] for r, x in scored]))
    assert s["sentiment_accuracy"] == pytest.approx(
        np.mean([x["text_label"] == r["style"] for r, x in scored]))
    assert all(x["text_label"] == label_of_text(x["transcript"]) for _, x in scored)
    assert s["rest_style_accuracy"] == pytest.approx(
        np.mean([r["rest_audio_label"] == r["style"] for r in rows]))
    with_samples = {r["id"]: r for r, _ in scored}.values()
    assert s["f0_min_mae_st"] == pytest.approx(np.mean([
        min(abs(x["f0_st"] - r["rest_f0_st"]) for x in r["samples"] if "skipped" not in x)
        for r in with_samples]))
    conf = s["confusion"]["continuation_audio"]
    assert sum(sum(v.values()) for v in conf.values()) == len(scored)
    # outputs: audio, plots, the classifier, the markdown
    assert all((out / r["prompt_audio"]).exists() for r in rows)
    assert all((out / x["audio"]).exists() for _, x in scored)
    assert {p.name for p in out.glob("f0_*.png")} == {f"f0_{r['style']}.png" for r, _ in scored}
    clf = StyleClassifier.load(out / "classifier")
    assert saved["classifier"]["fitted_here"] and clf.classes == sorted(DELIVERY)
    assert saved["classifier"]["cross_validation"]["accuracy"] is not None
    md = (out / "style.md").read_text()
    assert "S->S style accuracy" in md and short_id in md

    # the CLI, with the classifier fitted above: the same split, so the same prompts
    from typer.testing import CliRunner

    from speechlm.cli import app

    res = CliRunner().invoke(app, [
        "eval", "style", "--model", str(model_with_vocoder), "--manifest", str(manifest),
        "--out", str(tmp_path / "cli"), "--classifier", str(out / "classifier"),
        "--prompts-per-style", "1", "--samples", "1", "--prompt-seconds", "1.0",
        "--max-seconds", "1.0"])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "cli" / "style.json").read_text())
    assert not again["classifier"]["fitted_here"] and again["summary"]["n_prompts"] == 4
    assert {r["id"] for r in again["prompts"]} <= {r["id"] for r in rows}
    assert "style_accuracy" in res.output and "leave-one-speaker-out" in res.output

    # a classifier that lacks a style: that style's prompts are skipped, each with the reason
    spec = json.loads((out / "classifier" / "classifier.json").read_text())
    keep = [i for i, c in enumerate(spec["classes"]) if c != "angry"]
    spec |= {"classes": [spec["classes"][i] for i in keep],
             "coef": [spec["coef"][i] for i in keep],
             "intercept": [spec["intercept"][i] for i in keep]}
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "classifier.json").write_text(json.dumps(spec))
    third = evaluate_style(model_with_vocoder, manifest, tmp_path / "no-angry", prompts_per_style=1,
                           prompt_seconds=1.0, continuation_seconds=1.0, samples=1,
                           classifier=tmp_path / "three", progress=False)
    assert {r["style"] for r in third["prompts"]} == {"neutral", "happy", "sad"}
    angry = [x for x in third["skipped"] if x["style"] == "angry"]
    assert angry and all("not a class of the classifier" in x["reason"] for x in angry)

    # the classifier can listen through the model's own tokenizer and vocoder
    heard = evaluate_style(model_with_vocoder, manifest, tmp_path / "resynth", prompts_per_style=1,
                           prompt_seconds=1.0, continuation_seconds=1.0, samples=1,
                           classifier_audio="resynth", progress=False)
    refit = StyleClassifier.load(tmp_path / "resynth" / "classifier")
    assert heard["classifier"]["audio"] == "resynth" and refit.classes == clf.classes
    assert not np.allclose(refit.mean, clf.mean)  # fitted on other audio than the original
    with pytest.raises(SpeechLMError, match="classifier_audio"):
        evaluate_style(model_with_vocoder, manifest, tmp_path / "bad", classifier_audio="mp3",
                       progress=False)
    # cross-modal directions need text tokens: refused before any work
    from speechlm.errors import ConfigError

    with pytest.raises(ConfigError, match="vocabulary with text tokens"):
        evaluate_style(model_with_vocoder, manifest, tmp_path / "text", directions=["S->T"],
                       progress=False)
    assert not (tmp_path / "text" / "classifier").exists()
