"""Spoken preference pairs from the grammar's stories (SpokenSwag-style, as in Slam).

A pair is a story's context spoken as the prompt, its coherent ending (chosen) and an ending
that does not follow (rejected): half the time the ending of another scenario told of the same
character (what sStoryCloze tests), half the time another story's ending (tStoryCloze). Each
part is a separate utterance spoken by one training voice with one rate and pitch, so the prompt
is the same audio for both endings.

``scenarios`` restricts the stories a pair set draws from, so that a model aligned on some
scenarios can be evaluated on stories it never saw in a pair.

Layout of ``out_dir``: ``wav/<id>.<part>.wav`` (part: prompt, chosen, rejected),
``manifest.jsonl`` (every part as an utterance, id ``<id>.<part>``, with word alignments),
``pairs.jsonl`` (``id``, ``prompt``, ``chosen``, ``rejected`` texts, ``scenario``, ``kind``,
``voice``) and ``summary.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechlm.corpus.grammar import STORIES, Grammar, story_ending
from speechlm.errors import ConfigError

PARTS = ("prompt", "chosen", "rejected")


def story_pair_texts(n: int, seed: int, scenarios: Sequence[int] | None = None) -> list[dict]:
    """``n`` pairs of texts: ``prompt`` (a story's context), ``chosen``, ``rejected`` endings.

    ``kind`` is ``ssc`` (same character, the ending of another scenario) or ``tsc`` (another
    story's ending, other character and fillers), alternately.
    """
    pool = list(range(len(STORIES))) if scenarios is None else sorted(set(scenarios))
    if not pool or any(not 0 <= s < len(STORIES) for s in pool):
        raise ConfigError(f"scenarios: give indices in 0..{len(STORIES) - 1}, got "
                          f"{list(scenarios or [])!r}")
    if n <= 0:
        raise ConfigError(f"pairs: must be > 0, got {n}")
    rng = np.random.default_rng([seed, 23])
    g = Grammar(rng)
    out = []
    for i in range(n):
        scenario = pool[int(rng.integers(len(pool)))]
        slots = g.story_slots()
        context = [s.format(**slots) for s in STORIES[scenario][0]]
        # the wrong ending comes from any other scenario: its text was never a chosen one here
        other = (scenario + 1 + int(rng.integers(len(STORIES) - 1))) % len(STORIES)
        kind = "ssc" if i % 2 == 0 else "tsc"
        wrong_slots = slots if kind == "ssc" else g.story_slots()
        out.append({"id": f"pair{i:06d}", "prompt": " ".join(context),
                    "chosen": story_ending(scenario, slots),
                    "rejected": story_ending(other, wrong_slots),
                    "scenario": scenario, "kind": kind})
    return out


def synthesize_story_pairs(out_dir: str | Path, n: int, seed: int = 0,
                           voices: Sequence[str] | None = None,
                           scenarios: Sequence[int] | None = None, progress: bool = True) -> dict:
    """Speak :func:`story_pair_texts` with training voices into ``out_dir`` (see module doc).

    A finished set with the same settings is not made again.
    """
    from speechlm.corpus.benchmarks import speak_items
    from speechlm.corpus.manifest import write_manifest
    from speechlm.corpus.synth import TRAIN_VOICES

    out = Path(out_dir)
    voices = list(voices or TRAIN_VOICES)
    settings = {"pairs": n, "seed": seed, "voices": voices,
                "scenarios": None if scenarios is None else sorted(set(scenarios))}
    summary_path = out / "summary.json"
    if summary_path.is_file() and json.loads(summary_path.read_text()).get("settings") == settings:
        return json.loads(summary_path.read_text())
    texts = story_pair_texts(n, seed, scenarios)
    utts, seconds = speak_items(texts, PARTS, out, np.random.default_rng([seed, 29]),
                                lambda _: voices, "speaking pairs", "pair", progress)
    write_manifest(out / "manifest.jsonl", utts)
    with open(out / "pairs.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(p) + "\n" for p in texts)
    summary = {"settings": settings, "pairs": n, "hours": seconds / 3600,
               "scenarios": sorted({p["scenario"] for p in texts})}
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
