"""The end-of-run report on hand-made run directories: report.html's players, plots, figures and
escaping, and recipes that lack some stages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm.recipes.config import Recipe
from speechlm.recipes.report import write_report
from speechlm.recipes.stages import RunContext

TRANSCRIPT = 'the cat <script>alert("x")</script> & the dog'
ESCAPED = "the cat &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; the dog"
METRICS = {
    "train_loss": [[2, 4.1], [4, 3.2], [6, 2.6]],
    "eval_loss": [[2, 3.5], [4, 2.9], [6, 3.0]],
    "final_train_loss": 2.6, "final_eval_loss": 2.9, "last_eval_loss": 3.0,
    "kept_step": 4, "keep": "best", "stopped_early": True, "max_steps": 10, "epochs": 2.5,
    "precision": "bf16", "steps": 6, "parameters": 12345,
}
ALL_STAGES = ["corpus", "data", "tokenizer", "model", "eval", "generate"]
SECONDS = {"corpus": 10.0, "data": 1.0, "tokenizer": 5.0, "model": 60.0, "eval": 20.0,
           "generate": 4.0}


def _records() -> dict[str, dict]:
    info = {
        "corpus": {"hours": 0.025, "utterances": 30, "speakers": 4, "words": 200},
        "data": {"split_by": "speaker", "train": 24, "valid": 6, "valid_speakers": ["v1"],
                 "train_hours": 0.02, "valid_hours": 0.005},
        "tokenizer": {"kind": "mfcc", "n_units": 20, "frame_rate": 50.0},
        "model": {},
        "eval": {"lexical": {"accuracy": 0.7083, "n_pairs": 24, "scoring": "sum",
                             "accuracy_by_scoring": {"sum": 0.7083, "mean": 0.625}},
                 "syntactic": {"accuracy": 0.5417, "n_pairs": 24, "scoring": "sum"}},
        "generate": {"prompt_id": "v1_0007", "prompt_text": TRANSCRIPT, "sample_rate": 16000,
                     "audio": {n: f"generate/{n}.wav"
                               for n in ("prompt", "continuation", "resynth")}},
    }
    return {name: {"config": {}, "seconds": SECONDS[name], "info": info[name]}
            for name in ALL_STAGES}


def _context(out: Path, stages: list[str], metrics: dict | None = None) -> RunContext:
    """A run directory as the stages would leave it: metrics.json, the generate WAVs."""
    (out / "model").mkdir(parents=True)
    (out / "model" / "metrics.json").write_text(json.dumps(metrics or METRICS))
    (out / "generate").mkdir()
    (out / "generate" / "continuation.json").write_text('{"units": [1, 2, 3]}')
    t = np.arange(24000) / 16000
    for i, name in enumerate(("prompt", "continuation", "resynth")):  # 0.5, 1.0 and 1.5 s
        wav = 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t[: 8000 * (i + 1)])
        sf.write(out / "generate" / f"{name}.wav", wav.astype(np.float32), 16000)
    records = {k: v for k, v in _records().items() if k in stages}
    ctx = RunContext(Recipe("gslm", "tiny", "test", stages, {}), out)
    ctx.records.update(records)
    return ctx


def _links(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


def test_html_report_has_players_plots_figures_and_escaped_transcript(tmp_path):
    out = tmp_path / "run"
    results = write_report(_context(out, ALL_STAGES))
    page = (out / "report.html").read_text(encoding="utf-8")

    assert page.count("<audio ") == 3
    for name in ("prompt", "continuation", "resynth"):
        assert f'<audio controls preload="metadata" src="generate/{name}.wav"></audio>' in page
        assert f'<img src="plots/spectrogram_{name}.png"' in page
    for png in ("loss", "benchmarks"):
        assert f'<img src="plots/{png}.png"' in page
    assert "Resynthesis of the prompt (tokenizer + vocoder, no LM), 1.5 s" in page
    # benchmarks with chance, and both scorings
    assert ('<tr><td>lexical</td><td class="num">0.7083</td><td class="num">0.5</td>'
            "<td>sum</td><td>0.708</td><td>0.625</td><td class=\"num\">24</td></tr>") in page
    # the kept step, why it was kept, and the precision
    assert ("Kept checkpoint: step 4 of 6, the one with the lowest held-out loss (2.900; the "
            "last step&#x27;s was 3.000). Training stopped early at step 6 of at most 10") in page
    assert "<tr><td>precision</td><td>bf16</td></tr>" in page
    assert '<tr><td>tokenizer</td><td>mfcc</td></tr>' in page
    assert '<tr><td>total</td><td class="num">100</td></tr>' in page
    # data is escaped: the transcript's markup is text, and the page runs no script at all
    assert ESCAPED in page and "<script" not in page
    assert "http://" not in page and "https://" not in page

    for link in _links(page):  # every link is relative and names a file of the run
        assert not link.startswith("/") and (out / link).is_file(), link
    assert results["benchmarks"]["lexical"]["accuracy"] == 0.7083
    assert results["model"]["kept_step"] == 4 and results["wall_seconds"] == 100.0
    assert json.loads((out / "results.json").read_text())["generation"]["prompt_text"] == \
        TRANSCRIPT
    md = (out / "report.md").read_text()
    assert "Kept checkpoint: step 4 of 6" in md and "`generate/resynth.wav`" in md


def test_moved_run_directory_report_still_finds_its_files(tmp_path):
    out = tmp_path / "run"
    write_report(_context(out, ALL_STAGES))
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    links = _links((moved / "report.html").read_text(encoding="utf-8"))
    assert len(links) == 11  # results.json, 3 players, 3 spectrograms, 3 plots (F0), the units
    assert all((moved / link).is_file() for link in links)


@pytest.mark.parametrize("stages", [
    ["corpus", "data", "tokenizer", "model"],  # no eval, no generate
    ["corpus", "data"],  # no model either
], ids=["no-eval-no-generate", "data-only"])
def test_report_of_a_recipe_without_some_stages(tmp_path, stages):
    out = tmp_path / "run"
    results = write_report(_context(out, stages))
    page = (out / "report.html").read_text(encoding="utf-8")
    assert results["benchmarks"] == {} and results["generation"] == {}
    assert "<audio" not in page and "benchmarks.png" not in page
    assert "Zero-shot" not in (out / "report.md").read_text()
    assert "<h2>Data</h2>" in page and '<td>corpus_utterances</td><td class="num">30</td>' in page
    assert ("<h2>Training</h2>" in page) == ("model" in stages)
    assert (out / "plots" / "loss.png").exists() == ("model" in stages)
    assert set(results["stage_seconds"]) == set(stages)


def test_last_checkpoint_kept_is_said_so(tmp_path):
    out = tmp_path / "run"
    metrics = {**METRICS, "keep": "last", "kept_step": 6, "stopped_early": False}
    write_report(_context(out, ALL_STAGES, metrics))
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Kept checkpoint: the last step (6), as train.keep is last." in page
    assert "stopped early" not in page


def test_tts_stage_figures_go_to_speech_kind_and_into_both_reports(tmp_path):
    out = tmp_path / "run"
    ctx = _context(out, ["corpus", "data", "model"])
    kinds = {"original": 0.1, "resynth": 0.3, "tts": 0.9, "tts_delayed": 0.95}
    speech = {k: {"wer": w, "cer": w / 2, "speaker_similarity": 0.8, "prompt_similarity": 0.7,
                  "mos": 2.5, "seconds": 2.0} for k, w in kinds.items()}
    ctx.records["tts"] = {"config": {}, "seconds": 9.0, "info": {"n_items": 40,
                                                                   "speech": speech}}
    results = write_report(ctx)
    assert results["speech"]["tts"]["wer"] == 0.9  # DESIGN's speech.KIND.wer
    assert results["speech"]["resynth"]["cer"] == 0.15
    md = (out / "report.md").read_text()
    assert "| VALL-E (AR + NAR) (40 items) | 0.9 " in md
    assert "| delay pattern (one AR) (40 items) | 0.95 " in md
    assert "Zero-shot TTS" in (out / "report.html").read_text()


def test_audiolm_continuation_figures_go_to_speech_kind_and_into_the_report(tmp_path):
    out = tmp_path / "run"
    ctx = _context(out, ["corpus", "data", "model"])
    speech = {"continuation": {"speaker_similarity": 0.81, "mos": 2.4},
              "continuation_gslm": {"speaker_similarity": 0.62, "mos": 2.9}}
    ctx.records["continuation"] = {"config": {}, "seconds": 5.0,
                                   "info": {"n_prompts": 30, "speech": speech}}
    results = write_report(ctx)
    assert results["speech"]["continuation"]["speaker_similarity"] == 0.81
    md = (out / "report.md").read_text()
    assert "| AudioLM: semantic -> coarse -> fine (30 prompts) | 0.81 | 2.4 |" in md
    assert ("| GSLM: the same units -> unit vocoder, prompt's voice (30 prompts) | 0.62 | 2.9 |"
            in md)


def test_codec_token_datasets_are_counted_in_frames(tmp_path):
    import pyarrow as pa

    from speechlm.tokenizers.job import write_token_table

    out = tmp_path / "run"
    ctx = _context(out, ["corpus", "data", "model"])
    ctx.records["tokens"] = {"config": {}, "seconds": 1.0, "info": {}}
    codes = [[[1, 2, 3], [4, 5, 6]], [[7, 8], [9, 1]]]  # 3 + 2 frames of 2 codebooks
    for split in ("train", "valid"):
        write_token_table(out / "tokens" / split, pa.table({"id": ["a", "b"], "codes": codes}),
                          tmp_path, 8, 50.0)
    assert write_report(ctx)["data"]["train_frames"] == 5


def test_duplex_figures_and_false_replies_by_source_go_into_the_report(tmp_path):
    out = tmp_path / "run"
    ctx = _context(out, ["corpus", "data", "model"])
    duplex = {"answer_rate": 0.97, "false_reply_rate": 0.2,
              "false_replies_by_source": {"noise": {"rate": 0.0, "n": 5},
                                          "sidetalk": {"rate": 0.4, "n": 5}}}
    ctx.records["duplex_eval"] = {"config": {}, "seconds": 3.0,
                                  "info": {"duplex": duplex, "by_kind": {}, "scenarios": 4}}
    write_report(ctx)
    md = (out / "report.md").read_text()
    assert "false replies by source (n)" in md
    assert "| model | 0.97 |" in md and "| 0.2 |" in md
    assert "noise 0.0 (5), sidetalk 0.4 (5) |" in md
