"""Unit quality against gold phone alignments: PNMI, phone purity and cluster purity.

Definitions follow Hsu et al. (HuBERT, 2021): with the joint distribution P(phone, unit) over
frames, PNMI = I(phone; unit) / H(phone); phone purity = sum_u max_p P(p, u) (frame accuracy when
each unit is read as its most frequent phone); cluster purity = sum_p max_u P(p, u). Frames that
no gold phone covers are labelled ``<sil>``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from speechlm.errors import ConfigError

SILENCE = "<sil>"


def purity_pnmi(phones: np.ndarray, units: np.ndarray) -> dict:
    """Figures from frame-aligned integer ``phones`` and ``units`` (same length)."""
    n_p, n_u = int(phones.max()) + 1, int(units.max()) + 1
    joint = np.zeros((n_p, n_u))
    np.add.at(joint, (phones, units), 1)
    joint /= joint.sum()
    pp, pu = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mi = float((joint[nz] * np.log(joint[nz] / (pp[:, None] * pu[None, :])[nz])).sum())
    h_p = float(-(pp[pp > 0] * np.log(pp[pp > 0])).sum())
    return {"pnmi": mi / h_p if h_p > 0 else 0.0,
            "phone_purity": float(joint.max(0).sum()),
            "cluster_purity": float(joint.max(1).sum())}


def frame_labels(phones: list[tuple[str, float, float]], n_frames: int, frame_rate: float
                 ) -> list[str]:
    """Gold phone at the centre of each frame (``<sil>`` where none covers it)."""
    centres = (np.arange(n_frames) + 0.5) / frame_rate
    labels = [SILENCE] * n_frames
    starts = np.array([p[1] for p in phones])
    ends = np.array([p[2] for p in phones])
    idx = np.searchsorted(starts, centres, side="right") - 1
    for t, i in enumerate(idx):
        if i >= 0 and centres[t] < ends[i]:
            labels[t] = phones[i][0]
    return labels


def unit_quality(tokenizer_dir: str | Path, manifest: str | Path,
                 max_utterances: int | None = None) -> dict:
    """Encode ``manifest`` with the tokenizer; score its frame-level units against gold phones."""
    from speechlm.corpus.manifest import read_manifest
    from speechlm.progress import progress_bar
    from speechlm.tokenizers import load_tokenizer
    from speechlm.tokenizers.reading import iter_audio

    tok = load_tokenizer(tokenizer_dir)
    utts = [u for u in read_manifest(manifest) if u.phones]
    if not utts:
        raise ConfigError(f"{manifest}: no utterance has 'phones' alignments to score against")
    utts = utts[:max_utterances] if max_utterances else utts
    vocab: dict[str, int] = {}
    all_p, all_u = [], []
    for utt, wav, err in progress_bar(iter_audio(utts, tok.sample_rate), total=len(utts),
                                      unit="utt", desc="report", leave=False):
        if err is not None:
            continue
        s = tok.encode([wav], tok.sample_rate)[0]
        if s.units is None:
            raise ConfigError(f"tokenizer '{tok.kind}' makes no units to score")
        frames = np.repeat(s.units, s.durations) if s.durations is not None else s.units
        labels = frame_labels(utt.phones, len(frames), tok.frame_rate)
        all_p.append(np.array([vocab.setdefault(p, len(vocab)) for p in labels]))
        all_u.append(frames)
    res = purity_pnmi(np.concatenate(all_p), np.concatenate(all_u))
    res.update({"kind": tok.kind, "n_units": tok.n_units, "frame_rate": tok.frame_rate,
                "utterances": len(all_p), "frames": int(sum(len(p) for p in all_p)),
                "phones": len(vocab),
                "units_per_second": _tokens_per_second(all_u, tok.frame_rate)})
    return res


def _tokens_per_second(frame_units: list[np.ndarray], frame_rate: float) -> float:
    """De-duplicated units per second of speech."""
    n = sum(int((np.diff(u) != 0).sum()) + 1 for u in frame_units if len(u))
    return n / (sum(len(u) for u in frame_units) / frame_rate)
