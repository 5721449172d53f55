"""``speechlm run --dry-run``, one-line errors, and the run directory's book-keeping (no work)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from speechlm.cli import app
from speechlm.errors import ConfigError
from speechlm.recipes import load_recipe
from speechlm.recipes.pipeline import Run, stage_config
from speechlm.recipes.plan import format_plan
from speechlm.recipes.stages import RunContext
from speechlm.recipes.stages.corpus import DataConfig, split_manifest


def _parameters(text: str) -> dict[str, str]:
    """Stage -> its 'parameters' line in a plan."""
    found, stage = {}, None
    for line in text.splitlines():
        if m := re.match(r"\[(\w+)\]", line):
            stage = m.group(1)
        elif m := re.match(r"\s+=> parameters: (.*)", line):
            found[stage] = m.group(1)
    return found


def test_dry_run_of_every_recipe_prints_the_plan(recipe, scale):
    # no --out and no --manifest: the paper corpus is then reported as a missing input
    r = CliRunner().invoke(app, ["run", recipe, "--scale", scale, "--dry-run"])
    assert r.exit_code == 0, r.output
    cfg = load_recipe(recipe, scale)
    assert f"recipe {cfg.name} ({scale})" in r.output
    last = cfg.stages[-1]
    assert r.output.index("[corpus]") < r.output.index("[model]") < r.output.index(f"[{last}]")
    assert "dry run: the recipe is valid; nothing was run" in r.output
    if cfg.confs["corpus"] is None:
        assert "needs --manifest" in r.output
    count = _parameters(r.output)["model"]
    if cfg.confs["model"].init == "cold" or not count.startswith("unknown offline"):
        assert re.fullmatch(r"[\d,]+ \(\d+\.\d\dM\)", count), count


def test_dry_run_counts_known_sizes():
    # gslm tiny: the README's 1.08M-parameter Llama (4 x 128) over 100 units + 6 specials
    text = format_plan(load_recipe("gslm", "tiny"))
    assert _parameters(text)["model"] == "1,076,864 (1.08M)"
    assert "vocabulary: 106" in text
    # twist tiny: the speech LM has the text LM's transformer, with the speech vocabulary
    text = format_plan(load_recipe("twist", "tiny"))
    assert _parameters(text)["model"] == "1,076,864 (1.08M)"
    assert "init: warm from <textlm>" in text


def test_warm_start_from_an_unavailable_checkpoint_has_an_unknown_size():
    text = format_plan(load_recipe("twist", "paper", ["textlm.init_from=/nowhere/opt"]))
    assert _parameters(text) == {
        "textlm": "unknown offline (the checkpoint is neither a local folder nor cached)",
        "model": "unknown offline (the checkpoint is neither a local folder nor cached)"}


def test_dry_run_refuses_a_vocoder_that_does_not_fit_the_tokens():
    cfg = load_recipe("gslm", "tiny", ["vocoder.kind=hifigan", "tokenizer.frame_rate=100"])
    with pytest.raises(ConfigError, match=r"^vocoder\.hifigan: upsample_rates: product 320 must "
                                          r"equal the token hop .*= 160"):
        format_plan(cfg)


def test_dry_run_with_a_manifest_records_where_it_is(tmp_path):
    with pytest.raises(ConfigError, match=r"^corpus\.manifest: .*m\.jsonl not found"):
        format_plan(load_recipe("gslm", "paper"), tmp_path / "run", tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text("")
    text = format_plan(load_recipe("gslm", "paper"), tmp_path / "run", tmp_path / "m.jsonl")
    assert f"manifest: {tmp_path / 'm.jsonl'}" in text and "needs --manifest" not in text


def test_a_typo_through_the_cli_is_one_line_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "speechlm.cli", "run", "gslm", "--out",
                           str(tmp_path / "run"), "corpus.hourz=1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: corpus.hourz: unknown key; valid keys: hours, seed, voices, styles"]
    assert not (tmp_path / "run").exists()  # failed before any work


def test_run_without_out_asks_for_it():
    r = CliRunner().invoke(app, ["run", "gslm"])
    assert r.exit_code != 0 and "--out" in str(r.exception)


# ---- the run directory ------------------------------------------------------------------------
def test_a_changed_stage_names_the_keys_that_changed(tmp_path):
    run = Run(tmp_path)
    run.stage("model", {"train": {"max_steps": 8, "lr": 0.1}}, lambda d: {"ok": 1})
    again = run.stage("model", {"train": {"max_steps": 8, "lr": 0.1}}, lambda d: 1 / 0)
    assert again["info"] == {"ok": 1}
    with pytest.raises(ConfigError) as err:
        run.stage("model", {"train": {"max_steps": 9, "lr": 0.1, "seed": 1}}, lambda d: {})
    assert str(err.value) == (
        f"stage 'model' in {tmp_path.resolve()} finished with another configuration "
        f"(train.max_steps: 8 -> 9, train.seed: (unset) -> 1); use a new --out or delete "
        f"{tmp_path.resolve() / 'model'}")


def test_records_hold_paths_relative_to_the_run(tmp_path):
    run = Run(tmp_path)
    inside, outside = str(tmp_path.resolve() / "model" / "checkpoint-4"), "/data/corpus.jsonl"
    run.stage("model", {"train": {}}, lambda d: {"resumed_from": inside, "src": outside})
    record = json.loads((tmp_path / "model" / ".done").read_text())
    assert record["info"] == {"resumed_from": "model/checkpoint-4", "src": outside}


def test_context_paths_are_relative_inside_the_run_only(tmp_path):
    ctx = RunContext(load_recipe("gslm"), tmp_path / "run")
    assert ctx.rel(tmp_path / "run" / "corpus" / "wav" / "a.wav", start=ctx.dir("data")) \
        == "../corpus/wav/a.wav"
    assert ctx.rel(tmp_path / "elsewhere.wav") == str((tmp_path / "elsewhere.wav").resolve())


def test_stage_records_include_the_stages_they_read(tmp_path):
    ctx = RunContext(load_recipe("twist", "tiny", ["train.max_steps=9"]), tmp_path)
    record = stage_config(ctx, "model")
    assert list(record) == ["corpus", "data", "tokenizer", "textlm", "train"]
    assert record["train"]["max_steps"] == 9 and record["train"]["init_from"] == "<textlm>"
    assert record["train"]["data"] == "tokens/train" and "model" not in record["train"]
    assert list(stage_config(ctx, "vocoder")) == ["corpus", "data", "tokenizer", "vocoder"]
    # with --manifest the corpus is that file (absolute: it is outside the run), by content
    m = tmp_path / "m.jsonl"
    m.write_text('{"id": "a"}\n')
    ctx = RunContext(ctx.recipe, tmp_path / "run", m)
    corpus = stage_config(ctx, "data")["corpus"]
    assert corpus["manifest"] == str(m.resolve()) and len(corpus["manifest_sha256"]) == 64
    m.write_text('{"id": "b"}\n')  # edited in place: another corpus, so another record
    assert stage_config(ctx, "data")["corpus"]["manifest_sha256"] != corpus["manifest_sha256"]


def test_a_second_run_on_the_same_directory_is_refused(tmp_path):
    from speechlm.recipes.pipeline import run_lock

    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path\n"
         "from speechlm.recipes.pipeline import run_lock\n"
         "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
         str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"^{tmp_path} is in use by another speechlm run "
                                              rf"\(pid {holder.pid} on .*\); wait for it"):
            with run_lock(tmp_path):
                pass
    finally:
        holder.kill()
        holder.wait()
    with run_lock(tmp_path):  # the kernel released the killed holder's lock
        pass


def test_split_manifests_point_into_the_run_relatively(tmp_path):
    from speechlm.corpus.manifest import Utterance, read_manifest, write_manifest

    out = tmp_path / "run"
    utts = [Utterance(id=f"u{i}", audio=f"wav/u{i}.wav", duration=1.0, sample_rate=16000)
            for i in range(9)]
    utts.append(Utterance(id="ext", audio=str(tmp_path / "ext.wav"), duration=1.0,
                          sample_rate=16000))
    write_manifest(out / "corpus" / "manifest.jsonl", utts)
    ctx = RunContext(load_recipe("gslm"), out)
    info = split_manifest(ctx, out / "corpus" / "manifest.jsonl", out / "data",
                          DataConfig(valid_fraction=0.2))
    assert (info["split_by"], info["train"], info["valid"]) == ("utterance", 8, 2)
    raw = [json.loads(line)["audio"] for name in ("train.jsonl", "valid.jsonl")
           for line in (out / "data" / name).read_text().splitlines()]
    assert sorted(raw) == sorted([f"../corpus/wav/u{i}.wav" for i in range(9)]
                                 + [str((tmp_path / "ext.wav").resolve())])
    moved = tmp_path / "moved"
    out.rename(moved)
    audio = {u.id: u.audio for u in read_manifest(moved / "data" / "train.jsonl")}
    assert all(Path(a).is_relative_to(moved.resolve()) for i, a in audio.items() if i != "ext")


def _speakers_manifest(path: Path, speakers: int, per_speaker: int) -> Path:
    from speechlm.corpus.manifest import Utterance, write_manifest

    write_manifest(path, [Utterance(id=f"s{s}u{i}", audio=f"/a/s{s}u{i}.wav", duration=1.0,
                                    sample_rate=16000, speaker=f"s{s}")
                          for s in range(speakers) for i in range(per_speaker)])
    return path


@pytest.mark.parametrize("speakers, by, expect", [
    (20, "auto", "speaker"), (5, "auto", "utterance"), (5, "speaker", "speaker"),
    (20, "utterance", "utterance"),
])
def test_held_out_split_is_by_speaker_where_there_are_enough(tmp_path, speakers, by, expect):
    from speechlm.corpus.manifest import read_manifest

    m = _speakers_manifest(tmp_path / "m.jsonl", speakers, per_speaker=10)
    ctx = RunContext(load_recipe("gslm"), tmp_path / "run")
    info = split_manifest(ctx, m, tmp_path, DataConfig(valid_fraction=0.1, by=by))
    train = read_manifest(tmp_path / "train.jsonl")
    valid = read_manifest(tmp_path / "valid.jsonl")
    assert info["split_by"] == expect and len(train) + len(valid) == speakers * 10
    shared = {u.speaker for u in train} & {u.speaker for u in valid}
    if expect == "speaker":  # whole speakers: none is on both sides, ~10% of the utterances
        assert not shared and info["valid_speakers"] == sorted({u.speaker for u in valid})
        assert len(valid) == 10 * max(1, round(0.1 * speakers * 10 / 10))
    else:
        assert len(valid) == round(0.1 * speakers * 10)


def test_a_split_by_speaker_needs_two_speakers(tmp_path):
    m = _speakers_manifest(tmp_path / "m.jsonl", 1, per_speaker=10)
    ctx = RunContext(load_recipe("gslm"), tmp_path / "run")
    with pytest.raises(ConfigError, match="by: speaker needs at least 2 speakers"):
        split_manifest(ctx, m, tmp_path, DataConfig(by="speaker"))


@pytest.mark.parametrize("recipe, overrides, aligned", [
    ("spiritlm", [], True),  # interleaved: word times added where --manifest lacks them
    ("spiritlm", ["data.align_words=never"], False),
    ("gslm", [], False),  # speech only: nothing to add
    ("gslm", ["data.align_words=always"], True),
])
def test_data_stage_word_aligns_an_imported_corpus_when_its_formats_need_it(
        tmp_path, recipe, overrides, aligned):
    import soundfile as sf

    from speechlm.corpus.espeak import Espeak
    from speechlm.corpus.manifest import Utterance, read_manifest, write_manifest
    from speechlm.recipes.stages.corpus import _run_data, needs_word_times

    texts = ["the dog ran home.", "a bird sang today.", "two cats saw the ball."]
    utts = []
    for i, text in enumerate(texts):
        s = Espeak.get().speak(text, "en-us+Mike", sample_rate=16000)
        sf.write(tmp_path / f"u{i}.wav", s.wav, 16000)
        utts.append(Utterance(f"u{i}", str(tmp_path / f"u{i}.wav"), len(s.wav) / 16000, 16000,
                              text=text.upper(), speaker=f"s{i}"))
    write_manifest(tmp_path / "m.jsonl", utts)
    ctx = RunContext(load_recipe(recipe, "tiny", overrides), tmp_path / "run", tmp_path / "m.jsonl")
    assert needs_word_times(ctx) == (recipe == "spiritlm")
    d = ctx.dir("data")
    d.mkdir(parents=True)
    info = _run_data(ctx, ctx.conf("data"), d)
    rows = read_manifest(d / "train.jsonl") + read_manifest(d / "valid.jsonl")
    assert len(rows) == 3
    assert all(bool(u.words) == aligned for u in rows)
    assert ("word_alignment" in info) == aligned
    if aligned:
        assert info["word_alignment"].startswith("3 of 3 utterances aligned (espeak-ng")
        assert [w[0] for w in sorted(rows, key=lambda u: u.id)[0].words] == ["THE", "DOG", "RAN",
                                                                              "HOME"]
