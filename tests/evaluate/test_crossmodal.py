"""Cross-modal StoryCloze and next-word probes: exact sequences per direction on a hand-made
vocabulary, the pairwise rule on known scores, the items, the word-boundary cut, the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.evaluate.crossmodal import (
    DIRECTIONS,
    direction_ids,
    figure_name,
    pair_accuracy,
    probe_groups,
    story_groups,
    word_classes,
)


def hand_vocab():
    """Text ids the=4 cat=5 sat=6; [SPEECH]=7 [TEXT]=8; unit u -> 9 + u; BOS=1."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    from speechlm.sequences.vocab import SpeechVocab

    words = ["<pad>", "<s>", "</s>", "<unk>", "the", "cat", "sat"]
    core = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", unk_token="<unk>")
    return SpeechVocab.extend(tok, 4)


def test_each_direction_builds_its_exact_sequence():
    v = hand_vocab()
    args = ([9, 10], [11, 12], "the cat", "sat")  # prompt units 0 1, ending units 2 3
    assert direction_ids("S->S", v, *args) == [1, 7, 9, 10, 11, 12]
    assert direction_ids("S->T", v, *args) == [1, 7, 9, 10, 8, 6]
    assert direction_ids("T->S", v, *args) == [1, 8, 4, 5, 7, 11, 12]
    assert direction_ids("T->T", v, *args) == [1, 8, 4, 5, 6]  # one text span
    # an ending cut from another utterance that repeats the prompt's last unit: the joined
    # stream of a de-duplicating tokenizer holds it once; after a marker nothing is merged
    repeat = ([9, 10], [10, 11], "the cat", "sat")
    assert direction_ids("S->S", v, *repeat) == [1, 7, 9, 10, 11]
    assert direction_ids("S->S", v, *repeat, dedup=False) == [1, 7, 9, 10, 10, 11]
    assert direction_ids("T->S", v, *repeat) == [1, 8, 4, 5, 7, 10, 11]
    with pytest.raises(ConfigError, match=r"valid: S->S, S->T, T->S, T->T"):
        direction_ids("S->X", v, *args)
    assert [figure_name("tsc", d) for d in DIRECTIONS] == ["tsc_s2s", "tsc_s2t", "tsc_t2s",
                                                           "tsc_t2t"]


def test_a_speech_only_vocabulary_builds_s2s_only():
    from speechlm.sequences.vocab import SpeechVocab

    v = SpeechVocab.speech_only(4)  # unit u -> 6 + u
    assert direction_ids("S->S", v, [6, 7], [8], "the cat", "sat") == [1, 4, 6, 7, 8]
    with pytest.raises(ConfigError, match="text tokens"):
        direction_ids("S->T", v, [6, 7], [8], "the cat", "sat")


def test_pairwise_rule_on_known_scores():
    r = pair_accuracy(["a", "b", "c", "d"], [-1.0, -3.0, -5.0, -1.0],
                      [-2.0, -2.0, -5.0, math.nan])
    # a: true higher (1), b: lower (0), c: tie (0.5), d: a missing score skips the pair
    assert r["accuracy"] == pytest.approx(0.5)
    assert (r["n_items"], r["n_pairs"], r["n_skipped"], r["chance"]) == (3, 3, 1, 0.5)
    none = pair_accuracy([], [], [])
    assert none["accuracy"] is None and none["n_items"] == 0


def test_items_are_seeded_with_wrong_endings_of_the_same_kind():
    from speechlm.corpus.grammar import ending_scenario
    from speechlm.corpus.synth import HELDOUT_VOICES

    voices = list(HELDOUT_VOICES)
    stories = story_groups(6, seed=3, voices=voices)
    assert stories == story_groups(6, seed=3, voices=voices)
    assert stories != story_groups(6, seed=4, voices=voices)
    for g in stories:
        true, tsc, ssc = g.endings
        assert dict(g.pairs) == {"tsc": 1, "ssc": 2} and g.voice in voices
        # the true ending follows its context; sSC's tells another scenario about the same one
        (scenario, slots) = ending_scenario(f"{g.prompt} {true}")
        other, other_slots = ending_scenario(ssc)
        assert other != scenario
        assert all(v in g.prompt.split() for k, v in other_slots.items() if k == "name")
        assert ending_scenario(tsc)[0] != scenario
    classes = {w: c for c, words in word_classes().items() for w in words}
    probes = probe_groups(20, seed=3, voices=voices)
    assert probes == probe_groups(20, seed=3, voices=voices) and len(probes) == 20
    for g in probes:
        true, wrong = g.endings
        assert g.prompt and true != wrong and classes[true] == classes[wrong]


@pytest.fixture(scope="module")
def spoken_story(text_model):
    """One story group spoken, tokenised and cut by the tiny text model."""
    from speechlm.corpus.benchmarks import SAMPLE_RATE
    from speechlm.corpus.synth import HELDOUT_VOICES
    from speechlm.evaluate.crossmodal import cut_group, encode_waves, speak_texts
    from speechlm.models import load_speech_lm

    lm = load_speech_lm(text_model)
    (g,) = story_groups(1, seed=0, voices=list(HELDOUT_VOICES))
    (said,) = speak_texts([[f"{g.prompt} {e}" for e in g.endings]], [g.voice], seed=0)
    streams = encode_waves(lm, [s.wav for s in said], SAMPLE_RATE)
    return lm, g, said, streams, cut_group(lm, g, said, streams)


def test_prompt_and_ending_are_cut_where_interleaving_cuts(spoken_story):
    from speechlm.corpus.grammar import words_of
    from speechlm.sequences.formats import word_unit_spans

    lm, g, said, streams, cut = spoken_story
    n_prompt = len(words_of(g.prompt))
    assert cut.prompt_text == " ".join(words_of(g.prompt))
    assert cut.endings_text == [" ".join(words_of(e)) for e in g.endings]
    for j, (spoken, st) in enumerate(zip(said, streams, strict=True)):
        words = [{"label": w, "start": a, "end": b} for w, a, b in spoken.words]
        spans = word_unit_spans(words, st.durations, st.frame_rate)  # the interleaved format's
        units = lm.vocab.units_to_ids(st.units).tolist()
        assert cut.endings_speech[j] == units[spans[n_prompt][0]:]
        if j == 0:  # the true utterance: prompt + ending is the whole utterance
            assert cut.prompt_speech + cut.endings_speech[0] == units
            assert lm.speech_example(st).input_ids == [lm.vocab.bos_id, lm.vocab.speech_id,
                                                       *units]
    # both sides share the prompt in every direction (T->T too: the BPE splits at spaces)
    for d in DIRECTIONS:
        true, wrong = (direction_ids(d, lm.vocab, cut.prompt_speech, cut.endings_speech[j],
                                     cut.prompt_text, cut.endings_text[j]) for j in (0, 1))
        n = 2 + (len(cut.prompt_speech) if d[0] == "S"
                 else len(lm.vocab.text_to_ids(cut.prompt_text)))
        assert true[:n] == wrong[:n] and true[n:] != wrong[n:]


def test_eval_crossmodal_cli_measures_every_direction(text_model, tmp_path):
    from typer.testing import CliRunner

    from speechlm.cli import app

    out = tmp_path / "xm"
    res = CliRunner().invoke(app, ["eval", "crossmodal", "--model", str(text_model), "--out",
                                   str(out), "--stories", "3", "--probes", "4", "--seed", "1"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "crossmodal.json").read_text())
    assert list(r["results"]) == ["tsc", "ssc", "nextword"] and r["skipped"] == []
    for task, n in (("tsc", 3), ("ssc", 3), ("nextword", 4)):
        assert list(r["results"][task]) == list(DIRECTIONS)
        for d, f in r["results"][task].items():
            assert f["n_items"] == n and 0.0 <= f["accuracy"] <= 1.0 and f["chance"] == 0.5
            assert r["figures"][figure_name(task, d)] == f
    assert len(r["items"]) == 10
    for item in r["items"]:  # summed log-probabilities of both sides, every direction
        assert all(a < 0 and b < 0 for a, b in item["scores"].values())
        assert item["true"] != item["wrong"]
    md = (out / "crossmodal.md").read_text()
    assert "| task | items | S->S | S->T | T->S | T->T |" in md and "| nextword | 4 |" in md
    assert "tsc" in res.output and "report:" in res.output


def test_a_speech_only_model_gets_s2s_and_not_applicable(speech_model, tmp_path, monkeypatch):
    import speechlm.evaluate.crossmodal as xm

    # one story's second utterance cannot be tokenised: that story is skipped and listed
    real = xm.encode_waves

    def failing(lm, wavs, rate, progress=False):
        out = real(lm, wavs, rate, progress)
        out[1] = "tokenizer: broken audio"
        return out

    monkeypatch.setattr(xm, "encode_waves", failing)
    r = xm.evaluate_crossmodal(speech_model, tmp_path / "xm", n_stories=2, n_probes=2,
                               progress=False)
    assert r["skipped"] == [{"id": "story0000", "tasks": ["tsc", "ssc"],
                             "reason": "tokenizer: broken audio"}]
    for task, n in (("tsc", 1), ("ssc", 1), ("nextword", 2)):
        assert r["results"][task]["S->S"]["n_items"] == n
        for d in ("S->T", "T->S", "T->T"):  # not applicable, never a 0
            assert r["results"][task][d]["accuracy"] is None
            assert "no text tokens" in r["results"][task][d]["not_applicable"]
    assert sorted(r["figures"]) == ["nextword_s2s", "ssc_s2s", "tsc_s2s"]
    md = (tmp_path / "xm" / "crossmodal.md").read_text()
    assert "| tsc | 1 |" in md and "| n/a | n/a | n/a |" in md and "story0000" in md
    with pytest.raises(ConfigError, match="need text tokens"):
        xm.evaluate_crossmodal(speech_model, tmp_path / "no", n_stories=1, n_probes=1,
                               directions=["S->T"], progress=False)
    assert np.isfinite(r["results"]["nextword"]["S->S"]["accuracy"])


def test_the_recipe_stage_records_design_figures_and_the_report_shows_them(text_model,
                                                                           tmp_path):
    import shutil

    from speechlm.recipes.config import Recipe
    from speechlm.recipes.report import write_report
    from speechlm.recipes.stages import STAGES, RunContext

    spec = STAGES.get("crossmodal")
    with pytest.raises(ConfigError, match=r"^crossmodal\.directions: expected a list"):
        spec.load({"directions": ["S->X"]})
    conf = spec.load({"stories": 2, "probes": 2, "sentences": 2})
    run = tmp_path / "run"
    shutil.copytree(text_model, run / "model")
    ctx = RunContext(Recipe("spiritlm", "tiny", "test", ["crossmodal"], {"crossmodal": conf}),
                     run)
    info = spec.run(ctx, conf, run / "crossmodal")
    assert set(info["benchmarks"]) == {figure_name(t, d) for t in ("tsc", "ssc", "nextword")
                                       for d in DIRECTIONS}
    assert info["similarity"]["plot"] == "crossmodal/similarity.png"
    ctx.records["crossmodal"] = {"config": {}, "seconds": 1.0, "info": info}
    results = write_report(ctx)
    assert results["benchmarks"]["tsc_t2s"] == info["benchmarks"]["tsc_t2s"]
    assert set(results["crossmodal"]["table"]) == {"tsc", "ssc", "nextword"}
    md = (run / "report.md").read_text()
    assert "## Cross-modal" in md and "| task | S->S | S->T | T->S | T->T |" in md
    assert "![similarity by layer](crossmodal/similarity.png)" in md
    assert 'src="crossmodal/similarity.png"' in (run / "report.html").read_text()
