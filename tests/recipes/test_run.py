"""`speechlm run` end to end at a scale smaller than the tiny recipe: stages, skipping, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from speechlm.corpus.styles import label_of_text
from speechlm.errors import ConfigError
from speechlm.recipes.config import load_recipe

# A 2-layer, 32-wide LM on ~1.5 minutes of speech: exercises every stage in well under a minute.
SMALL = [
    "corpus.hours=0.025", "data.valid_fraction=0.2", "benchmark.pairs=8", "tokenizer.units=20",
    "vocoder.max_hours=0.01",
    "train.model.hidden_size=32", "train.model.intermediate_size=64",
    "train.model.num_hidden_layers=2", "train.model.num_attention_heads=2",
    "train.model.num_key_value_heads=2", "train.seq_len=64", "train.batch_size=4",
    "train.warmup_steps=2", "train.logging_steps=2", "generate.max_seconds=1.0",
    "generate.min_seconds=0.5", "generate.speech_utterances=0",
    # the recipe's envelope vocoder, two steps at toy width
    "vocoder.envelope.max_steps=2", "vocoder.envelope.save_steps=1",
    "vocoder.envelope.channels=16", "vocoder.envelope.batch_size=2",
]
FINISHED = [*SMALL, "train.max_steps=8", "train.save_steps=4", "train.eval_steps=4",
            "generate.speech_utterances=2"]


def speechlm(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "speechlm.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "gslm"
    proc = speechlm("run", "gslm", "--out", str(out), *FINISHED)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    return out


@pytest.mark.slow
def test_run_writes_every_stage_model_and_report(finished_run):
    out = finished_run
    for stage in ("corpus", "data", "benchmark", "tokenizer", "tokens", "model", "vocoder",
                  "eval", "generate"):
        assert (out / stage / ".done").exists(), stage
    results = json.loads((out / "results.json").read_text())
    assert set(results["benchmarks"]) == {"lexical", "syntactic", "ssc", "tsc"}
    for task, res in results["benchmarks"].items():  # the eval stage's figures, unchanged
        saved = json.loads((out / "eval" / "results.json").read_text())[task]
        assert res["accuracy"] == saved["accuracy"] and res["n_pairs"] == saved["n_pairs"] > 0
    assert results["data"]["train_tokens"] > 0 and results["model"]["steps"] == 8
    for png in ("loss.png", "benchmarks.png", "spectrograms.png"):
        assert (out / "plots" / png).stat().st_size > 1000
    report = (out / "report.md").read_text()
    assert "lexical" in report and "plots/loss.png" in report
    assert '<audio controls preload="metadata" src="generate/resynth.wav">' in (
        out / "report.html").read_text()
    # the listening machines scored held-out resynthesis and every file the stage wrote
    speech = results["speech"]  # DESIGN's names: speech.KIND.wer ...
    assert speech["utterances"] + speech["skipped"] == 2
    assert speech["original"]["wer"] is not None and speech["resynth"]["cer"] is not None
    assert speech["resynth"]["wer"] == json.loads((out / "generate" / "speech" / "speech.json")
                                                  .read_text())["aggregate"]["wer"]
    assert len(list((out / "generate" / "resynth_heldout").glob("*.wav"))) == 2
    files = results["generation"]["audio_metrics"]
    from speechmos import dnsmos  # the prompt's MOS is DNSMOS of the prompt file, recomputed

    from speechlm.audio import load_audio
    prompt = load_audio(out / "generate" / "prompt.wav", 16000)
    assert abs(files["prompt"]["mos"] - dnsmos.run(prompt, 16000)["ovrl_mos"]) < 1e-6
    assert files["prompt"]["mos"] == speech["original"]["mos"] and "wer" in files["resynth"]
    assert "## Speech quality (listening machines)" in report
    assert "| generate/continuation.wav |" in report
    # The model directory is self-contained: plain transformers loads it.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from speechlm.models import load_speech_lm

    plain, lm = AutoModelForCausalLM.from_pretrained(out / "model"), load_speech_lm(out / "model")
    ids = torch.tensor([lm.speech_ids([1, 2, 3])])
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, lm.model(ids).logits)
    assert len(AutoTokenizer.from_pretrained(out / "model")) >= 20
    assert (out / "model" / "vocoder").is_dir() and (out / "model" / "speech_tokenizer").is_dir()


@pytest.mark.slow
def test_second_run_does_no_work(finished_run):
    stamps = {p: p.stat().st_mtime_ns for p in finished_run.glob("*/.done")}
    proc = speechlm("run", "gslm", "--out", str(finished_run), *FINISHED)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    assert log.count("skipped") == len(stamps)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps


@pytest.mark.slow
def test_model_without_its_vocoder_gets_it_back(finished_run):
    # e.g. RUN/model rebuilt after the vocoder stage finished: the copy is not part of a stage
    shutil.rmtree(finished_run / "model" / "vocoder")
    proc = speechlm("run", "gslm", "--out", str(finished_run), *FINISHED)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    assert (finished_run / "model" / "vocoder" / "vocoder.json").exists()


@pytest.mark.slow
def test_changed_stage_config_is_refused(finished_run):
    proc = speechlm("run", "gslm", "--out", str(finished_run), *SMALL, "train.max_steps=9",
                    "train.save_steps=4", "train.eval_steps=4")
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1
    assert "stage 'model'" in log and "another configuration" in log
    assert "(train.max_steps: 8 -> 9)" in log and "Traceback" not in log


@pytest.mark.slow
def test_moved_run_directory_resumes_and_its_model_loads(finished_run):
    from speechlm.models import load_speech_lm

    moved = finished_run.with_name("gslm-moved")
    finished_run.rename(moved)  # nothing is left at the old path
    try:
        # every record, split manifest and token dataset names the run relatively
        for path in [*moved.glob("*/.done"), *moved.glob("data/*.jsonl"),
                     *moved.glob("tokens/*/info.json")]:
            assert str(finished_run) not in path.read_text(), path
        # unfinished work: a chunk of the valid tokens, and the generate stage
        (moved / "tokens" / ".done").unlink()
        sorted((moved / "tokens" / "valid" / "data").glob("*.done"))[0].unlink()
        shutil.rmtree(moved / "generate")
        stamps = {p: p.stat().st_mtime_ns for p in moved.glob("*/.done")}
        proc = speechlm("run", "gslm", "--out", str(moved), *FINISHED)
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log[-3000:]
        assert log.count("skipped") == len(stamps) == 7  # every finished stage, none redone
        assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
        tokens = json.loads((moved / "tokens" / ".done").read_text())["info"]
        assert tokens["train"]["skipped_chunks"] == tokens["train"]["chunks"]
        assert tokens["valid"]["skipped_chunks"] == tokens["valid"]["chunks"] - 1
        assert (moved / "generate" / "continuation.wav").stat().st_size > 1000
        lm = load_speech_lm(moved / "model")
        assert lm.speech_tokenizer.n_units == 20
    finally:
        moved.rename(finished_run)


@pytest.mark.slow
def test_dry_run_counts_the_parameters_training_reports(finished_run):
    from speechlm.recipes import load_recipe
    from speechlm.recipes.plan import format_plan

    trained = json.loads((finished_run / "model" / "metrics.json").read_text())["parameters"]
    assert f"parameters: {trained:,} (" in format_plan(load_recipe("gslm", "tiny", FINISHED))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["hifigan", "envelope"])
def test_trained_vocoder_stage_trains_and_is_installed(finished_run, tmp_path, kind):
    out = tmp_path / kind
    shutil.copytree(finished_run, out)
    for d in ("vocoder", "generate", "model/vocoder"):
        shutil.rmtree(out / d)
    sizes = ["vocoder.envelope.channels=16"] if kind == "envelope" else []
    base = [a for a in FINISHED if not a.startswith("vocoder.envelope.")]
    proc = speechlm("run", "gslm", "--out", str(out), *base, f"vocoder.kind={kind}",
                    f"vocoder.{kind}.max_steps=2", f"vocoder.{kind}.save_steps=1",
                    f"vocoder.{kind}.batch_size=2", *sizes)
    log, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, log[-3000:]
    assert log.count("skipped") == 7  # only the vocoder and generate stages ran
    installed = json.loads((out / "model" / "vocoder" / "vocoder.json").read_text())
    assert installed["kind"] == kind and installed["config"]["max_steps"] == 2
    assert (out / "vocoder" / "checkpoints" / "step-2").is_dir()
    assert not (out / "model" / "vocoder" / "checkpoints").exists()
    assert (out / "generate" / "continuation.wav").stat().st_size > 1000


@pytest.mark.slow
def test_killed_during_training_resumes_and_reports(tmp_path):
    out = tmp_path / "run"
    # no epoch cap: the run must still be training when it is killed
    args = [*SMALL, "train.max_steps=150", "train.max_epochs=null", "train.save_steps=25",
            "train.eval_steps=150",
            "train.keep=last"]
    proc = speechlm("run", "gslm", "--out", str(out), *args, start_new_session=True)
    ckpts = out / "model" / "checkpoints"
    deadline = time.time() + 400
    while not any(ckpts.glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "model" / ".done").exists()
    # The interrupted run is moved before it resumes: nothing it reads names the old place.
    moved = tmp_path / "moved"
    out.rename(moved)
    # Finish quickly on the second start: fewer steps than were asked first would change the
    # stage config, so keep max_steps and let training resume from its last checkpoint.
    proc = speechlm("run", "gslm", "--out", str(moved), *args)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    metrics = json.loads((moved / "model" / "metrics.json").read_text())
    assert metrics["resumed_from"] is not None and metrics["steps"] == 150
    assert metrics["steps_this_run"] < 150  # resumed, not restarted
    assert (moved / "report.md").exists()


@pytest.mark.slow
def test_twist_warm_starts_from_the_text_lm_it_trains(tmp_path):
    out = tmp_path / "twist"
    small = [a for a in SMALL if not a.startswith("train.model.")] + [
        "textlm.n_sentences=200", "textlm.steps=5", "textlm.model.hidden_size=32",
        "textlm.model.intermediate_size=64", "textlm.model.num_hidden_layers=2",
        "textlm.model.num_attention_heads=2", "textlm.model.num_key_value_heads=2",
        "train.max_steps=4", "train.save_steps=100", "train.eval_steps=100",
    ]
    proc = speechlm("run", "twist", "--out", str(out), *small)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    meta = json.loads((out / "model" / "speechlm.json").read_text())
    assert meta["init"]["init"] == "warm" and meta["train_config"]["vocab_mode"] == "replace"
    assert meta["train_config"]["init_from"] == str(out / "textlm")
    # TWIST keeps the text LM's transformer: the speech LM has its shape, not a fresh config.
    text_cfg = json.loads((out / "textlm" / "config.json").read_text())
    speech_cfg = json.loads((out / "model" / "config.json").read_text())
    assert speech_cfg["hidden_size"] == text_cfg["hidden_size"] == 32
    assert speech_cfg["vocab_size"] != text_cfg["vocab_size"]
    assert set(json.loads((out / "results.json").read_text())["benchmarks"]) >= {"lexical"}


@pytest.mark.slow
def test_small_corpus_keeps_the_best_checkpoint_not_the_last(tmp_path):
    """The tiny recipe's own model and schedule on ~3 minutes of speech (the demo has 6 h):
    the epoch cap shrinks the run, the held-out loss turns up, and the best checkpoint is kept."""
    out = tmp_path / "small"
    proc = speechlm("run", "gslm", "--out", str(out), "corpus.hours=0.05",
                    "data.valid_fraction=0.2", "benchmark.pairs=8", "tokenizer.units=20",
                    "vocoder.max_hours=0.01", "train.seq_len=64", "train.batch_size=4",
                    "generate.max_seconds=1.0", "generate.min_seconds=0.5",
                    "vocoder.envelope.max_steps=2", "generate.speech_utterances=0")
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    m = json.loads((out / "model" / "metrics.json").read_text())
    losses = dict(m["eval_loss"])
    assert m["max_steps"] < 450 and m["epochs"] <= 12.01  # capped by the data, not 450 steps
    assert len(losses) >= 4  # evaluated as often per run as the full schedule
    assert m["final_eval_loss"] <= 1.02 * min(losses.values())
    assert m["final_eval_loss"] < m["last_eval_loss"] and m["kept_step"] < m["steps"]
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["kept_step"] == m["kept_step"]


@pytest.mark.slow
def test_slam_aligns_the_pretrained_model_with_dpo(tmp_path):
    out = tmp_path / "slam"
    small = [a for a in SMALL if not a.startswith("generate.")] + [
        "train.max_steps=8", "train.save_steps=4", "train.eval_steps=4", "preferences.pairs=16",
        "align.max_steps=4", "align.save_steps=2", "align.eval_steps=2", "align.batch_size=4",
        "generate.max_seconds=1.0", "generate.min_seconds=0.5"]
    proc = speechlm("run", "slam", "--out", str(out), *small)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    meta = json.loads((out / "align" / "speechlm.json").read_text())
    assert meta["objective"] == "dpo" and meta["init"]["init"] == "from_model"
    assert meta["init"]["init_from"] == str(out / "model")
    prefs = json.loads((out / "preferences" / ".done").read_text())["info"]
    assert prefs["train"] + prefs["valid"] == 16 and prefs["left_out"] == 0
    m = json.loads((out / "align" / "metrics.json").read_text())
    assert m["steps"] == 4 and [s for s, _ in m["eval_loss"]] == [2, 4]
    # the evaluations and the continuation used the aligned model, which has its vocoder
    assert (out / "align" / "vocoder" / "vocoder.json").is_file()
    assert json.loads((out / "eval" / "results.json").read_text())["lexical"]["model"] \
        == str(out / "align")


# ---- the ssl stage: a recipe pre-trains its own encoder and tokenizes through it -------------

TINY_SSL = [
    *FINISHED, "generate.speech_utterances=0", "ssl.max_steps=3", "ssl.batch_size=4",
    "ssl.crop_seconds=1",
    "ssl.min_seconds=0.5", "ssl.warmup_steps=1", "ssl.save_steps=2", "ssl.precision=fp32",
    "ssl.model.hidden_size=32", "ssl.model.num_hidden_layers=2",
    "ssl.model.num_attention_heads=2", "ssl.model.intermediate_size=64",
    "ssl.model.conv_dim=[16,16,16,16,16,16,16]", "ssl.model.num_conv_pos_embeddings=16",
    "ssl.model.num_conv_pos_embedding_groups=2", "ssl.final_dim=16", "tokenizer.layer=1",
]


@pytest.mark.slow
def test_run_trains_its_encoder_and_tokenizes_through_it(tmp_path):
    out = tmp_path / "gslm_ssl"
    proc = subprocess.run([sys.executable, "-m", "speechlm.cli", "run", "gslm", "--scale",
                           "tiny-ssl", "--out", str(out), *TINY_SSL],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    metrics = json.loads((out / "ssl" / "metrics.json").read_text())
    assert metrics["objective"] == "hubert" and metrics["steps"] == 3
    assert (out / "ssl" / "targets" / "tokenizer.json").exists()  # iteration 1: MFCC targets
    spec = json.loads((out / "tokenizer" / "tokenizer.json").read_text())
    # the tokenizer holds its own copy of the encoder trained in the run, layer 1 of it
    assert spec["kind"] == "hubert" and spec["features"]["layer"] == 1
    assert spec["features"]["source"] == str(out / "ssl")
    assert (out / "tokenizer" / "encoder" / "model.safetensors").exists()
    assert json.loads((out / "results.json").read_text())["benchmarks"]["lexical"]["n_pairs"] > 0


def test_tokenizer_kind_must_read_the_trained_encoder():
    from speechlm.recipes.pipeline import plan_recipe
    from speechlm.recipes.stages import RunContext

    recipe = load_recipe("gslm", "tiny-ssl", ["ssl.objective=wav2vec2"])
    with pytest.raises(ConfigError, match="objective: wav2vec2 trains an encoder that tokenizer "
                                          "kind 'wav2vec2' reads, but tokenizer.kind is "
                                          "'hubert'"):
        plan_recipe(RunContext(recipe, None))
    with pytest.raises(ConfigError, match=r"ssl.output_dir: set by the recipe \(RUN/ssl\)"):
        load_recipe("gslm", "tiny-ssl", ["ssl.output_dir=x"])
    with pytest.raises(ConfigError, match="stages: 'tokenizer' reads the output of stage 'ssl', "
                                          "which is missing"):
        load_recipe("gslm", "tiny", ["tokenizer.kind=hubert", "tokenizer.model=<ssl>"])


STYLE_SMALL = ["style.hours=0.03", "style.prompts_per_style=1", "style.samples=2",
               "style.prompt_seconds=1.5", "style.max_seconds=1.0", "style.min_seconds=0.5"]


TEXTLM_SMALL = ["textlm.n_sentences=200", "textlm.steps=5", "textlm.model.hidden_size=32",
                "textlm.model.intermediate_size=64", "textlm.model.num_hidden_layers=2",
                "textlm.model.num_attention_heads=2", "textlm.model.num_key_value_heads=2"]


@pytest.mark.slow
@pytest.mark.parametrize("name, scale_name, streams", [
    ("pgslm", "tiny", {"durations", "f0"}),
    ("spiritlm-expressive", "tiny", {"pitch", "style"}),
    ("spiritlm-expressive", "tiny-interleaved", {"pitch", "style"})])
def test_prosody_recipes_generate_their_streams_and_measure_style(tmp_path, name, scale_name,
                                                                  streams):
    """pGSLM and SpiRit-LM Expressive end to end at toy size: the model reads the prosody
    streams, the continuation carries them, the report plots its F0 and the style stage
    scores style keeping on labelled held-out-voice speech (across modalities for the
    interleaved model)."""
    out = tmp_path / name
    small = [*SMALL, "train.max_steps=4", "train.save_steps=100", "train.eval_steps=100",
             *STYLE_SMALL]
    if name != "pgslm":
        small += ["tokenizer.prosody.n_pitch=8", "tokenizer.prosody.n_style=4"]
    if scale_name == "tiny-interleaved":  # the text LM's shape is the model's
        small = [a for a in small if not a.startswith("train.model.")] + TEXTLM_SMALL
    proc = speechlm("run", name, "--scale", scale_name, "--out", str(out), *small)
    log, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, log[-3000:]
    meta = json.loads((out / "model" / "speechlm.json").read_text())
    assert meta["architecture"] == {"pgslm": "multistream"}.get(name, "expressive")
    made = json.loads((out / "generate" / "continuation.json").read_text())
    assert streams <= set(made) and len(made["units"]) > 0
    if name == "pgslm":  # one duration and one F0 bin per generated unit
        assert len(made["durations"]) == len(made["f0"]) == len(made["units"])
    style = json.loads((out / "results.json").read_text())["style"]
    result = json.loads((out / "style" / "style.json").read_text())
    rows = result["prompts"]
    scored = [(r["style"], s["audio_label"]) for r in rows for s in r["samples"]
              if s.get("audio_label")]
    assert style["style_accuracy"] == pytest.approx(
        sum(a == b for a, b in scored) / len(scored))
    assert style["chance"] == 0.25
    cross = result["summary"]["cross_modal"]
    if scale_name == "tiny-interleaved":
        assert set(cross) == {"S->T", "T->S", "T->T"}
        written = [(r["style"], s) for r in rows for s in r["cross"]["T->T"]]
        assert all(s["text_label"] == label_of_text(s["text"]) for _, s in written)
        assert style["T->T sentiment_accuracy"] == pytest.approx(
            sum(s["text_label"] == t for t, s in written) / len(written))
        assert all(r["prompt_text"] for r in rows)  # the words inside the spoken prompt
    else:
        assert cross == {}
    report = (out / "report.md").read_text()
    assert "![F0 contours](plots/f0.png)" in report and (out / "plots" / "f0.png").is_file()
    assert "## Style keeping" in report


def _instruct_small(stages: tuple[str, ...]) -> list[str]:
    """SMALL for the instruction-tuning recipes: a tiny text LM, few spoken items, 4 steps."""
    sft = [f"{stage}.{k}" for stage in stages for k in (
        "max_steps=4", "save_steps=2", "eval_steps=2", "batch_size=4", "warmup_steps=1")]
    return [a for a in SMALL if not a.startswith(("train.model.", "generate."))] + [
        "textlm.n_sentences=200", "textlm.steps=5", "textlm.model.hidden_size=32",
        "textlm.model.intermediate_size=64", "textlm.model.num_hidden_layers=2",
        "textlm.model.num_attention_heads=2", "textlm.model.num_key_value_heads=2",
        "train.max_steps=4", "train.save_steps=100", "train.eval_steps=100",
        "instructions.train=12", "instructions.valid=4", "instructions.test=8", *sft,
        "qa.items=8", "qa.max_seconds=1.0"]


@pytest.mark.slow
def test_speechgpt_instruction_tunes_in_stages_and_answers_held_out_questions(tmp_path):
    out = tmp_path / "speechgpt"
    small = _instruct_small(("sft_cross", "sft_chain", "sft_direct", "spectron"))
    proc = speechlm("run", "speechgpt", "--out", str(out), *small)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    # each stage starts from the one before: model -> sft_cross -> sft_chain / sft_direct
    for stage, start, formats in (("sft_cross", "model", {"speechgpt_asr", "speechgpt_tts"}),
                                  ("sft_chain", "sft_cross",
                                   {"speechgpt_chain", "speechgpt_text_qa"}),
                                  ("sft_direct", "sft_cross", {"speechgpt_direct"})):
        meta = json.loads((out / stage / "speechlm.json").read_text())
        assert meta["objective"] == "sft" and meta["init"]["init_from"] == str(out / start)
        assert set(meta["formats"]) == formats
        assert (out / stage / "vocoder" / "vocoder.json").is_file()
    qa = json.loads((out / "qa" / "qa.json").read_text())
    answers = [json.loads(line) for line in (out / "qa" / "answers.jsonl").open()]
    chain, direct = qa["results"]["speechgpt"], qa["results"]["direct"]
    spectron = qa["results"]["spectron"]
    assert (chain["mode"], direct["mode"], spectron["mode"]) == ("chain", "direct", "spectron")
    meta = json.loads((out / "spectron" / "speechlm.json").read_text())
    assert meta["architecture"] == "spectron" and meta["init"]["init_from"] == str(
        out / "sft_cross")
    # the unseen question type is asked only in the in-context check, of the chain model
    asked = [a for a in answers if a["qtype"] != "where"]
    assert len(asked) == chain["items"] + direct["items"] + spectron["items"]
    assert chain["items"] == direct["items"] == spectron["items"]
    for model, figure, flag in (("speechgpt", "text_accuracy", "text_correct"),
                                ("speechgpt", "text_exact", "text_exact"),
                                ("spectron", "text_accuracy", "text_correct"),
                                ("spectron", "spoken_accuracy", "spoken_correct"),
                                ("speechgpt", "spoken_accuracy", "spoken_correct"),
                                ("direct", "spoken_accuracy", "spoken_correct")):
        flags = [a[flag] for a in asked if a["model"] == model]
        assert qa["results"][model][figure] == round(sum(flags) / len(flags), 4)
    results = json.loads((out / "results.json").read_text())
    assert results["benchmarks"]["qa_text"]["accuracy"] == chain["text_accuracy"]
    assert "Spoken question answering" in (out / "report.md").read_text()
    # the test split was spoken by held-out voices only
    from speechlm.corpus.synth import HELDOUT_VOICES
    items = [json.loads(line) for line in (out / "instructions" / "audio" / "items.jsonl").open()]
    assert {it["voice"] for it in items if it["split"] == "test"} <= set(HELDOUT_VOICES)
    # chat from the command line: the text answer on stdout, the spoken one in a WAV
    question = out / "instructions" / "audio" / "wav" / f"{answers[0]['id']}.prompt.wav"
    proc = speechlm("chat", "--model", str(out / "sft_chain"), "--audio", str(question),
                    "--out", str(tmp_path / "answer.wav"), "--max-seconds", "1")
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text[-2000:]
    record = json.loads((tmp_path / "answer.json").read_text())
    assert record["mode"] == "chain" and record["units"] > 0
    assert text.strip().splitlines()[-1] == record["text"]
    import soundfile as sf
    assert sf.info(str(tmp_path / "answer.wav")).frames > 0


@pytest.mark.slow
def test_llama_omni_trains_the_adapter_and_answers_in_text_and_speech(tmp_path):
    out = tmp_path / "omni"
    small = _instruct_small(("sft_cross", "sft_chain", "omni")) + [
        "omni.objective_args.projector_dim=16", "omni.objective_args.upsample=4"]
    proc = speechlm("run", "llama-omni", "--out", str(out), *small)
    log, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, log[-3000:]
    meta = json.loads((out / "omni" / "speechlm.json").read_text())
    assert meta["architecture"] == "omni" and meta["init"]["init_from"] == str(out / "model")
    assert meta["omni"]["stack"] == 5 and meta["omni"]["upsample"] == 4
    qa = json.loads((out / "qa" / "qa.json").read_text())
    omni = qa["results"]["omni"]
    answers = [json.loads(line) for line in (out / "qa" / "answers.jsonl").open()]
    mine = [a for a in answers if a["model"] == "omni"]
    assert omni["mode"] == "omni" and len(mine) == omni["items"] > 0
    assert all("question_text" in a and a["question_text"] == "" for a in mine)
    flags = [a["text_correct"] for a in mine]
    assert omni["text_accuracy"] == round(sum(flags) / len(flags), 4)
    assert "transcript_wer" not in omni  # the adapter writes no transcript
    question = out / "instructions" / "audio" / "wav" / f"{mine[0]['id']}.prompt.wav"
    proc = speechlm("chat", "--model", str(out / "omni"), "--audio", str(question),
                    "--out", str(tmp_path / "answer.wav"), "--json")
    text, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, text[-2000:]
    record = json.loads(text.strip().splitlines()[-1])
    assert record["mode"] == "omni" and record["units"] > 0
    assert json.loads((tmp_path / "answer.json").read_text())["text"] == record["text"]
