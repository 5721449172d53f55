"""Preference pairs as token datasets for the ``dpo`` objective (format ``speech_preference``).

Two sources, one layout, written by :func:`write_pair_splits` (token datasets ``train`` and
``valid``: Parquet rows ``id``, ``kind``, ``prompt_units``, ``chosen_units``,
``rejected_units``, with ``info.json`` naming the speech tokenizer):

- :func:`story_pair_rows`: the spoken story pairs of ``speechlm.corpus.preferences``
  (SpokenSwag-style), tokenised by the model's speech tokenizer and joined by pair.
- :func:`self_ranked_pairs`: Align-SLM style, from the model itself: several continuations of
  each spoken prompt are sampled, spoken by the vocoder, transcribed by the domain ASR and
  ranked by a :class:`~speechlm.alignment.judge.Judge`; the best becomes chosen, the worst
  rejected. A pair whose chosen transcript repeats itself (auto-BLEU >= ``max_auto_bleu``, 0.3
  as slamkit filters) or whose two sides the judge cannot tell apart is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError

PAIR_COLUMNS = ("prompt_units", "chosen_units", "rejected_units")


def _schema():
    import pyarrow as pa

    units = pa.list_(pa.int32())
    return pa.schema([("id", pa.string()), ("kind", pa.string()),
                      *((c, units) for c in PAIR_COLUMNS)])


def write_pairs(out_dir: str | Path, rows: Sequence[dict], tokenizer_dir: str | Path,
                n_units: int, frame_rate: float, **info) -> Path:
    """Write pair rows (``id``, ``kind`` and the three unit lists) as a token dataset."""
    import pyarrow as pa

    from speechlm.tokenizers.job import write_token_table

    if not rows:
        raise SpeechLMError(f"{out_dir}: no preference pair to write")
    table = pa.Table.from_pylist([{k: r[k] for k in ("id", "kind", *PAIR_COLUMNS)}
                                 for r in rows], schema=_schema())
    return write_token_table(out_dir, table, tokenizer_dir, n_units, frame_rate,
                             pairs=len(rows), **info)


def write_pair_splits(out_dir: str | Path, rows: Sequence[dict], tokenizer_dir: str | Path,
                      n_units: int, frame_rate: float, valid_fraction: float = 0.0,
                      seed: int = 0) -> dict:
    """Write ``out_dir/train`` and, with ``valid_fraction`` > 0, ``out_dir/valid`` (a random
    choice of pairs held out for the preference loss); returns the counts."""
    order = np.random.default_rng([seed, 31]).permutation(len(rows))
    n_valid = int(round(len(rows) * valid_fraction)) if valid_fraction > 0 else 0
    if valid_fraction > 0 and not 0 < n_valid < len(rows):
        raise SpeechLMError(f"valid_fraction: {valid_fraction} of {len(rows)} pairs leaves no "
                            "pair on one side; make more pairs")
    held = set(order[:n_valid].tolist())
    splits = {"train": [r for i, r in enumerate(rows) if i not in held]}
    if n_valid:
        splits["valid"] = [r for i, r in enumerate(rows) if i in held]
    for name, part in splits.items():
        write_pairs(Path(out_dir) / name, part, tokenizer_dir, n_units, frame_rate)
    return {name: len(part) for name, part in splits.items()}


def story_pair_rows(pair_dir: str | Path, tokens_dir: str | Path) -> tuple[list[dict], int]:
    """Join the tokenised parts of spoken story pairs (``pair_dir/pairs.jsonl``, tokenised into
    ``tokens_dir`` by ``speechlm tokenize``) into pair rows; a pair with a part the tokenizer
    skipped is left out. Returns ``(rows, left_out)``."""
    from speechlm.tokenizers.job import load_token_dataset

    ds = load_token_dataset(tokens_dir).select_columns(["id", "units"])
    units = dict(zip(ds["id"], ds["units"], strict=True))
    rows, missing = [], 0
    for line in Path(pair_dir, "pairs.jsonl").read_text().splitlines():
        pair = json.loads(line)
        parts = [units.get(f"{pair['id']}.{part}") for part in ("prompt", "chosen", "rejected")]
        if any(p is None for p in parts):
            missing += 1
            continue
        rows.append({"id": pair["id"], "kind": f"story_{pair['kind']}",
                     **dict(zip(PAIR_COLUMNS, parts, strict=True))})
    return rows, missing


def self_ranked_pairs(model_dir: str | Path, manifest: str | Path, out_dir: str | Path,
                      n_prompts: int = 200, prompt_seconds: float = 3.0, n_samples: int = 4,
                      max_seconds: float = 4.0, min_seconds: float = 1.0,
                      temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                      seed: int = 0, text_lm: str | Path | None = None,
                      max_auto_bleu: float = 0.3, progress: bool = True
                      ) -> tuple[list[dict], dict]:
    """Align-SLM pairs from the model's own continuations of ``manifest``'s utterances.

    Returns ``(rows, summary)`` and writes ``out_dir/ranking.jsonl`` (every sample's transcript
    and judge score, which pairs were kept and why the others were not).
    """
    from speechlm.alignment.judge import Judge
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.evaluate.asr import normalize_text
    from speechlm.evaluate.domain_lm import domain_transcriber
    from speechlm.evaluate.generation import auto_bleu
    from speechlm.generate.continuation import continue_speech_batch, resolve_vocoder
    from speechlm.models import load_speech_lm
    from speechlm.models.sampling import Sampling

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lm = load_speech_lm(model_dir)
    voc = resolve_vocoder(lm)
    sr = int(lm.speech_tokenizer.sample_rate)
    utts = [u for u in read_manifest(manifest) if u.duration > prompt_seconds + 0.5][:n_prompts]
    if not utts:
        raise SpeechLMError(f"{manifest}: no utterance longer than {prompt_seconds + 0.5:g} s to "
                            "prompt with")
    wavs = [load_audio(u.audio, sr, u.start, u.end)[: int(prompt_seconds * sr)] for u in utts]
    samples = [continue_speech_batch(lm, wavs, sr, Sampling(
        max_seconds, temperature, top_k, top_p, seed + 1000 * k, min_seconds), vocoder=voc)
        for k in range(n_samples)]  # (n_samples, n_prompts) continuations
    asr = domain_transcriber(out_dir=out / "asr_lm")
    texts = [asr.transcribe_batch([c.audio for c in row], voc.sample_rate, progress=progress)
             for row in samples]
    judge = Judge(text_lm)
    scores = [judge.scores(row) for row in texts]
    rows, ranking = [], []
    for i, utt in enumerate(utts):
        keys = [scores[k][i] for k in range(n_samples)]
        order = sorted(range(n_samples), key=lambda k: keys[k])
        worst, best = order[0], order[-1]
        chosen = normalize_text(texts[best][i])
        repeat = auto_bleu(chosen)
        why = ("judge tie" if keys[best] == keys[worst]
               else "chosen repeats itself" if repeat is not None and repeat >= max_auto_bleu
               else "")
        ranking.append({"prompt": utt.id, "transcripts": [texts[k][i] for k in range(n_samples)],
                        "scores": keys, "chosen": best, "rejected": worst,
                        "chosen_auto_bleu": repeat, "kept": not why, "dropped_because": why})
        if why:
            continue
        rows.append({"id": utt.id, "kind": "self_ranked",
                     "prompt_units": np.asarray(samples[best][i].prompt.units).tolist(),
                     "chosen_units": np.asarray(samples[best][i].streams.units).tolist(),
                     "rejected_units": np.asarray(samples[worst][i].streams.units).tolist()})
    with open(out / "ranking.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in ranking)
    return rows, {"prompts": len(utts), "pairs": len(rows),
                  "dropped": {why: sum(r["dropped_because"] == why for r in ranking)
                              for why in ("judge tie", "chosen repeats itself")}}
