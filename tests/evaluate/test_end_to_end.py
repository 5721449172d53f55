"""End to end on the tiny fixtures: real benchmark files, a trained tiny model, the CLI forms."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_eval_zerospeech_cli_writes_a_valid_submission(tiny_model, tiny_benchmark, tmp_path):
    from typer.testing import CliRunner

    from speechlm.cli import app
    from speechlm.corpus.benchmarks import read_gold
    from speechlm.evaluate.zerospeech import read_submission

    out = tmp_path / "S"
    res = CliRunner().invoke(app, ["eval", "zerospeech", "--model", str(tiny_model), "--data",
                                   str(tiny_benchmark), "--task", "lexical", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = (out / "lexical" / "dev.txt").read_text().splitlines()
    gold = read_gold(tiny_benchmark, "lexical")
    # official format: two space-separated fields, every gold filename exactly once
    assert all(len(line.split(" ")) == 2 for line in lines)
    names = [line.split(" ")[0] for line in lines]
    assert sorted(names) == sorted(r["filename"] for r in gold)
    scores = read_submission(out / "lexical" / "dev.txt")
    assert all(np.isfinite(v) and v < 0 for v in scores.values())  # summed log-probs
    result = json.loads((out / "lexical" / "dev_results.json").read_text())["lexical"]
    assert result["scoring"] == "sum" and result["n_items"] == len(gold) // 2
    # the accuracy is the official rule on the submitted scores, recomputed here by hand:
    # per word and voice, does the word outscore its non-word; averaged per word, then overall
    by_item: dict = {}
    sides: dict = {}
    for r in gold:
        sides.setdefault((r["id"], r["voice"]), {})[int(r["correct"])] = scores[r["filename"]]
    for (item, _), s in sides.items():
        by_item.setdefault(item, []).append(1.0 if s[1] > s[0] else 0.5 if s[1] == s[0] else 0.0)
    expected = np.mean([np.mean(v) for v in by_item.values()])
    assert result["accuracy"] == pytest.approx(expected) and result["n_skipped"] == 0
    assert "by_frequency" in result and "by_length" in result
    assert "accuracy" in res.output


def test_eval_all_runs_every_benchmark_present(tiny_model, tiny_benchmark, tmp_path):
    from speechlm.evaluate.suite import evaluate_all
    from speechlm.evaluate.zerospeech import read_submission

    out = tmp_path / "S"
    results = evaluate_all(tiny_model, tiny_benchmark, out, scoring="mean", progress=False)
    assert set(results) == {"lexical", "syntactic", "ssc", "tsc"}
    saved = json.loads((out / "results.json").read_text())
    from speechlm.corpus.benchmarks import read_gold, read_storycloze
    from speechlm.evaluate.pairwise import pairwise_accuracy
    from speechlm.evaluate.storycloze import storycloze_rows

    for task, r in saved.items():
        assert r["n_pairs"] > 0 and r["chance"] == 0.5 and r["scoring"] == "mean"
        # each accuracy is the pair rule applied to the scores written beside it
        if task in ("lexical", "syntactic"):
            rows, written = read_gold(tiny_benchmark, task), out / task / "dev.txt"
        else:
            rows = storycloze_rows(read_storycloze(tiny_benchmark, task))
            written = out / task / "scores.txt"
        s = read_submission(written)
        key = ("id", "type", "subtype") if task == "syntactic" else ("id",)
        assert r["accuracy"] == pytest.approx(pairwise_accuracy(
            rows, [s[row["filename"]] for row in rows], key)["accuracy"])
    assert "by_type" in saved["syntactic"]
    for kind in ("ssc", "tsc"):  # every synthetic story is one of the grammar's scenarios
        by = saved[kind]["by_scenario"]
        assert set(by) <= {str(i) for i in range(10)}
        assert sum(b["n_items"] for b in by.values()) == saved[kind]["n_items"]
    md = (out / "results.md").read_text()
    assert "| lexical |" in md and "| tsc |" in md
    # the mean scores written equal per-token means of a direct scoring of the same files
    from speechlm.corpus.benchmarks import read_gold
    from speechlm.evaluate.scoring import score_audio
    from speechlm.models import load_speech_lm

    gold = read_gold(tiny_benchmark, "syntactic")[:4]
    direct = score_audio(load_speech_lm(tiny_model), [r["path"] for r in gold], batch_size=1)
    written = read_submission(out / "syntactic" / "dev.txt")
    np.testing.assert_allclose([written[r["filename"]] for r in gold], direct[:, 1], atol=1e-4)


def test_unreadable_audio_is_skipped_and_listed(tiny_model, tiny_benchmark, tmp_path):
    import shutil

    from speechlm.evaluate.zerospeech import evaluate_zerospeech

    data = tmp_path / "D"
    shutil.copytree(tiny_benchmark / "syntactic", data / "syntactic")
    gold = (data / "syntactic" / "dev" / "gold.csv").read_text().splitlines()
    broken = gold[1].split(",")[0]
    (data / "syntactic" / "dev" / f"{broken}.wav").write_bytes(b"not audio")
    r = evaluate_zerospeech(tiny_model, data, "syntactic", tmp_path / "S", progress=False)
    assert r["n_failed_files"] == 1 and r["n_skipped"] == 1
    errors = (tmp_path / "S" / "syntactic" / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 1 and broken in errors[0]
    assert f"{broken} nan" in (tmp_path / "S" / "syntactic" / "dev.txt").read_text()
    # the command line says so beside the accuracy, not only in the files
    from typer.testing import CliRunner

    from speechlm.cli import app

    res = CliRunner().invoke(app, ["eval", "all", "--model", str(tiny_model), "--data",
                                   str(data), "--out", str(tmp_path / "A")])
    assert res.exit_code == 0, res.output
    assert (f"syntactic: 1 pair(s) left out, 1 unreadable file(s): listed in "
            f"{tmp_path / 'A' / 'syntactic' / 'errors.jsonl'}") in res.output


@pytest.mark.slow
def test_pocketsphinx_transcribes_synthetic_speech(tiny_corpus, tmp_path):
    from speechlm.corpus.manifest import read_manifest, write_manifest
    from speechlm.evaluate.asr import Transcriber, manifest_wer, transcribe
    from speechlm.evaluate.domain_lm import domain_transcriber

    # plain voices only: the corpus also has robotic and croaky variants, which pocketsphinx's
    # acoustic model was never meant for
    plain = {f"en-us+{v}" for v in ("m1", "m2", "m3", "m4", "m5", "m6", "m8", "paul", "robert",
                                      "adam", "john", "ian", "f1", "f4", "steph", "belinda")}
    utts = [u for u in read_manifest(tiny_corpus / "manifest.jsonl") if u.speaker in plain]
    assert len(utts) >= 5
    manifest = tmp_path / "plain.jsonl"
    write_manifest(manifest, utts)
    # the generic English LM is weak on espeak speech (0.75 WER, docs/evaluate.md), so only
    # check that it hears speech as words and silence as nothing
    generic = manifest_wer(manifest, max_utterances=2)
    assert generic["utterances"] == 2 and generic["ref_words"] > 5
    assert all(e["hyp"].split() for e in generic["examples"])
    assert transcribe(np.zeros(32000, dtype=np.float32)) == ""
    # the grammar's own LM and dictionary: most words right
    asr = domain_transcriber(out_dir=tmp_path / "lm")
    domain = manifest_wer(manifest, max_utterances=5, transcriber=asr)
    assert domain["wer"] < 0.5
    # a transcript does not depend on what the decoder heard before (state is reset)
    utt = read_manifest(manifest)[0]
    again = Transcriber(lm=str(tmp_path / "lm" / "domain.arpa"),
                        dict=str(tmp_path / "lm" / "domain.dict")).transcribe_files([utt.audio])
    assert again[0] == domain["examples"][0]["hyp"]


@pytest.mark.slow
def test_abx_on_the_tiny_tokenizer(tiny_tokenizer, tiny_corpus, tmp_path):
    from speechlm.evaluate.abx import evaluate_abx

    r = evaluate_abx(tiny_tokenizer, tiny_corpus / "manifest.jsonl", max_utterances=8,
                     out_dir=tmp_path, progress=False)
    for rep in ("abx_features", "abx_units"):
        assert 0.0 <= r[rep]["within"] < 0.5 and 0.0 <= r[rep]["across"] < 0.5
        assert r[rep]["n_phone_pairs_within"] > 10
    from speechlm.tokenizers.quality import unit_quality

    # the PNMI reported beside ABX is the tokenizer report's on the same utterances
    assert r["abx_units"]["pnmi"] == pytest.approx(
        unit_quality(tiny_tokenizer, tiny_corpus / "manifest.jsonl", max_utterances=8)["pnmi"])
    assert (tmp_path / "abx.json").exists() and (tmp_path / "abx.md").exists()


@pytest.mark.slow
def test_generation_metrics_end_to_end(tiny_model, tiny_tokenizer, tiny_corpus, tmp_path):
    from speechlm.evaluate.generation import evaluate_generation
    from speechlm.train.textlm import train_text_lm
    from speechlm.vocoders.fallback import fit_fallback_vocoder

    manifest = tiny_corpus / "manifest.jsonl"
    voc = fit_fallback_vocoder(manifest, tiny_tokenizer, tmp_path / "voc", max_hours=0.01)
    text_lm = train_text_lm(tmp_path / "textlm", n_sentences=200, steps=3, vocab_size=150,
                            model={"model_type": "llama", "hidden_size": 16,
                                   "intermediate_size": 32, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "num_key_value_heads": 2},
                            progress=False)
    out = tmp_path / "gen"
    r = evaluate_generation(tiny_model, manifest, out, n_prompts=2, prompt_seconds=1.0,
                            max_seconds=1.5, text_lm=text_lm, vocoder=voc, asr_lm="domain",
                            progress=False)
    assert r["n_prompts"] == 2
    assert 0.0 <= r["original_wer"] < 0.8  # the domain ASR hears clean synthetic speech
    from speechlm.evaluate.asr import wer_details

    rows = [json.loads(x) for x in (out / "transcripts.jsonl").read_text().splitlines()]
    # the reported WERs are those of the transcripts written beside them
    assert r["resynth_wer"] == pytest.approx(
        wer_details([x["text"] for x in rows], [x["resynth_asr"] for x in rows])["wer"])
    assert r["original_wer"] == pytest.approx(
        wer_details([x["text"] for x in rows], [x["original_asr"] for x in rows])["wer"])
    assert r["perplexity"] is None or r["perplexity"] > 1.0
    assert len(rows) == 2
    from speechlm.evaluate.grammaticality import grammatical_rate

    gram = grammatical_rate([x["continuation_asr"] for x in rows])
    assert (r["grammatical_rate"], r["grammar_judged"]) == (gram["rate"], gram["n_judged"])
    assert len(list((out / "audio").glob("*_continuation.wav"))) == 2
    assert (out / "generation.json").exists()
    assert "resynth_wer" in (out / "generation.md").read_text()
