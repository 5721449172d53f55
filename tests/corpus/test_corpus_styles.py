"""Styled corpora: labels in text and manifest, a delivery that differs, unstyled output kept."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from speechlm.audio import load_audio
from speechlm.cli import app
from speechlm.corpus.espeak import Espeak
from speechlm.corpus.grammar import Grammar, words_of
from speechlm.corpus.manifest import read_manifest
from speechlm.corpus.styles import (
    EMOTIONAL,
    STYLE_WORDS,
    STYLES,
    delivery,
    label_of_text,
    mood_words,
    style_words,
    styled_text,
)
from speechlm.corpus.synth import (
    HELDOUT_VOICES,
    PITCH_RANGE,
    RATE_RANGE,
    TRAIN_VOICES,
    _jobs,
    synthesize_corpus,
)
from speechlm.errors import ConfigError
from speechlm.recipes.stages.corpus import CorpusConfig
from speechlm.tokenizers.prosody import extract_f0


@pytest.mark.parametrize("style", list(STYLES))
def test_text_carries_its_style_and_no_other(style):
    g = Grammar(np.random.default_rng(7))
    others = set().union(*(mood_words(s) for s in STYLES if s != style))
    for _ in range(300):
        text = styled_text(g, style)
        words = words_of(text)
        assert label_of_text(text) == style, text
        assert not others & set(words), text
        if style in EMOTIONAL:
            assert sum(w in style_words(style) for w in words) >= 2, text


def test_style_words_are_aligned_one_event_each():
    """espeak speaks every style word as one word, at every style's delivery."""
    text = "the dogs " + " and ".join(w for ws in STYLE_WORDS.values() for v in ws.values()
                                       for w in v) + "."
    espeak = Espeak.get()
    for voice in [*HELDOUT_VOICES, TRAIN_VOICES[0]]:
        for spec in STYLES.values():
            spoken = espeak.speak(text, voice, spec.rate, spec.pitch, 16000, range=spec.range,
                                  volume=spec.volume, wordgap=spec.wordgap)
            assert [w for w, _, _ in spoken.words] == words_of(text)
            assert all(s < e for _, s, e in spoken.words)


def test_delivery_jitters_within_limits():
    rng = np.random.default_rng(0)
    for style, centre in STYLES.items():
        rates = [delivery(style, rng).rate for _ in range(50)]
        assert min(rates) < centre.rate < max(rates) and max(rates) - min(rates) <= 24
        assert all(0 <= delivery(style, rng).range <= 100 for _ in range(20))


def _stats(utts):
    """Per utterance: (words per second of speech, voiced F0 range in semitones)."""
    out = []
    for u in utts:
        wav = load_audio(u.audio)
        f0 = extract_f0(wav, u.sample_rate)
        st = 12 * np.log2(f0[f0 > 0] / 100.0)
        out.append((len(u.words) / (u.words[-1][2] - u.words[0][1]),
                    np.percentile(st, 95) - np.percentile(st, 5)))
    return np.array(out)


def test_styled_corpus_labels_and_delivery(tmp_path):
    summary = synthesize_corpus(tmp_path, hours=0.012, seed=3, workers=1, voices=HELDOUT_VOICES,
                                styles=["sad", "happy"])
    assert summary["styles"] == ["sad", "happy"]
    assert json.loads((tmp_path / "summary.json").read_text())["styles"] == ["sad", "happy"]
    utts = read_manifest(tmp_path / "manifest.jsonl")
    assert {u.style for u in utts} == {"sad", "happy"}
    for u in utts:
        assert label_of_text(u.text) == u.style
        assert [w for w, _, _ in u.words] == words_of(u.text)
    sad = _stats([u for u in utts if u.style == "sad"]).mean(0)
    happy = _stats([u for u in utts if u.style == "happy"]).mean(0)
    assert happy[0] > 1.5 * sad[0]  # words per second: ~3.8 vs ~1.9
    assert happy[1] > sad[1] + 2.0  # F0 range in semitones: ~6.6 vs ~1.4
    assert all(np.abs(load_audio(u.audio)).max() <= 1.0 for u in utts)


def test_unstyled_jobs_draw_as_before(tmp_path):
    """Without styles the parent draws exactly what it drew before styles existed."""
    grammar = Grammar(np.random.default_rng([5, 0]))
    params = np.random.default_rng([5, 1])
    jobs = _jobs(tmp_path, 5, TRAIN_VOICES, None)
    for _ in range(100):
        job = next(jobs)
        assert job.text == grammar.utterance()
        assert job.voice == TRAIN_VOICES[int(params.integers(len(TRAIN_VOICES)))]
        assert job.rate == int(params.integers(*RATE_RANGE))
        assert job.pitch == int(params.integers(*PITCH_RANGE))
        assert job.seed == int(params.integers(2**31))
        assert (job.style, job.range, job.volume, job.wordgap) == (None, 50, 100, 0)


def test_unstyled_corpus_has_no_style_fields(tiny_corpus):
    assert "styles" not in json.loads((tiny_corpus / "summary.json").read_text())
    assert all(u.style is None for u in read_manifest(tiny_corpus / "manifest.jsonl"))
    assert '"style"' not in (tiny_corpus / "manifest.jsonl").read_text()


def test_cli_all_styles_then_unstyled_remakes(tmp_path):
    res = CliRunner().invoke(app, ["synth", "corpus", "--out", str(tmp_path), "--hours", "0.003",
                                   "--workers", "1", "--styles", "all"])
    assert res.exit_code == 0, res.output
    assert json.loads(Path(tmp_path / "summary.json").read_text())["styles"] == list(STYLES)
    # same folder and settings but no styles: another corpus, not the finished styled one
    assert "styles" not in synthesize_corpus(tmp_path, hours=0.003, workers=1)
    assert all(u.style is None for u in read_manifest(tmp_path / "manifest.jsonl"))


@pytest.mark.parametrize("styles, needle", [
    (["happy", "glum"], "unknown style(s) 'glum'; valid: neutral, happy, sad, angry"),
    ([], "expected a non-empty list of styles from neutral, happy, sad, angry"),
    (["sad", "sad"], "names a style twice"),
])
def test_bad_styles_are_refused(styles, needle, tmp_path):
    with pytest.raises(ConfigError, match=f"^styles: .*{re.escape(needle)}"):
        synthesize_corpus(tmp_path, hours=0.001, styles=styles)
    assert not (tmp_path / "wav").exists()
    with pytest.raises(ConfigError, match=r"^corpus\.styles: "):
        CorpusConfig.from_dict({"hours": 1, "styles": styles}, "corpus.")


def test_recipe_config_passes_styles():
    assert CorpusConfig.from_dict({"hours": 1, "styles": ["sad"]}, "corpus.").styles == ["sad"]
    assert CorpusConfig.from_dict({"hours": 1}, "corpus.").styles is None
