"""ABX phone discriminability of a tokenizer's representation, within and across speakers.

The ZeroSpeech ABX task on gold phone alignments, kept small: an *item* is one phone token (its
frames), labelled by its phone and, with ``context=True``, by the phones before and after it
(triphone ABX). For two phones ``a != b`` in the same context, A and X are tokens of ``a`` and B a
token of ``b``; the triplet is an error when X is closer to B than to A (0.5 on a tie). Within
speaker, A, B and X share a speaker; across speakers, A and B share one and X has another.
Distances are frame-wise cosine (angular for one-hot units: 0 same unit, 1 different) averaged
along the DTW path. Errors are averaged over the triplets of a cell, over contexts and speakers
for each ``(a, b)``, then over phone pairs, as in the ZeroSpeech/Libri-light evaluations.
Phone-level ABX (no context) is the default: at toy scale triphone cells are too sparse to say
much (59 utterances give ~20 within-speaker phone pairs).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import ConfigError

REPRESENTATIONS = ("features", "units")


@dataclass
class Segment:
    """One phone token: its phone, context (prev, next), speaker and frames (T x D)."""

    phone: str
    context: tuple[str, str]
    speaker: str
    frames: np.ndarray


def dtw_distances(segments: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]],
                  chunk: int = 4096) -> np.ndarray:
    """Cosine frame distance averaged along the best DTW path, for many pairs at once.

    The dynamic programme runs over padded (P, La, Lb) cost tensors; entry (la, lb) depends only
    on cells above and left of it, so reading it at each pair's true lengths is exact.
    """
    import torch

    normed = [torch.nn.functional.normalize(torch.as_tensor(f, dtype=torch.float32), dim=1)
              for f in segments]
    out = np.empty(len(pairs))
    # chunks of similar lengths: the programme loops over the longest pair of each chunk
    order = sorted(range(len(pairs)), key=lambda k: max(len(normed[pairs[k][0]]),
                                                       len(normed[pairs[k][1]])))
    for lo in range(0, len(pairs), chunk):
        sel = order[lo:lo + chunk]
        part = [pairs[k] for k in sel]
        la = torch.tensor([len(normed[i]) for i, _ in part])
        lb = torch.tensor([len(normed[j]) for _, j in part])
        a = torch.nn.utils.rnn.pad_sequence([normed[i] for i, _ in part], batch_first=True)
        b = torch.nn.utils.rnn.pad_sequence([normed[j] for _, j in part], batch_first=True)
        cost = (1.0 - a @ b.transpose(1, 2)).clamp(0.0, 2.0)  # (P, La, Lb)
        n, ta, tb = cost.shape
        acc = torch.full((n, ta + 1, tb + 1), float("inf"))
        steps = torch.zeros((n, ta + 1, tb + 1))
        acc[:, 0, 0] = 0.0
        for i in range(1, ta + 1):
            for j in range(1, tb + 1):
                # predecessors: diagonal, up, left; the path length normalises the sum
                cand = torch.stack([acc[:, i - 1, j - 1], acc[:, i - 1, j], acc[:, i, j - 1]], 1)
                best = cand.argmin(1, keepdim=True)  # (P, 1)
                prev_steps = torch.stack([steps[:, i - 1, j - 1], steps[:, i - 1, j],
                                          steps[:, i, j - 1]], 1)
                acc[:, i, j] = cand.gather(1, best).squeeze(1) + cost[:, i - 1, j - 1]
                steps[:, i, j] = prev_steps.gather(1, best).squeeze(1) + 1
        idx = torch.arange(n)
        out[sel] = (acc[idx, la, lb] / steps[idx, la, lb]).numpy()
    return out


def abx_error(segments: Sequence[Segment], context: bool = False, max_per_cell: int = 3,
              max_other_speakers: int = 1, seed: int = 0) -> dict:
    """Within- and across-speaker ABX error (0 perfect, 0.5 chance) of phone segments.

    Cost is bounded by sampling (with ``seed``): at most ``max_per_cell`` tokens per
    (label, speaker) and, across speakers, at most ``max_other_speakers`` X speakers per
    (a, b, speaker). Returns ``within``, ``across`` and the numbers of phone pairs and cells.
    """
    rng = np.random.default_rng(seed)
    cells: dict[tuple, list[int]] = defaultdict(list)  # (ctx, phone, speaker) -> segment idx
    for i, s in enumerate(segments):
        cells[(s.context if context else ("", ""), s.phone, s.speaker)].append(i)
    by_ctx: dict[tuple, dict[str, dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(dict))  # ctx -> phone -> speaker -> idx
    for (ctx, phone, spk), idx in sorted(cells.items()):
        if len(idx) > max_per_cell:
            idx = sorted(rng.choice(idx, max_per_cell, replace=False).tolist())
        by_ctx[ctx][phone][spk] = idx

    # 1. enumerate the triplet cells: (condition, (a, b), A tokens, B tokens, X tokens)
    tasks: list[tuple[str, tuple[str, str], list[int], list[int], list[int]]] = []
    for phones in by_ctx.values():
        for a, b in itertools.permutations(sorted(phones), 2):
            for spk, a_idx in phones[a].items():
                if spk not in phones[b]:
                    continue
                b_idx = phones[b][spk]
                if len(a_idx) > 1:
                    tasks.append(("within", (a, b), a_idx, b_idx, a_idx))
                others = sorted(o for o in phones[a] if o != spk)
                if len(others) > max_other_speakers:
                    others = sorted(rng.choice(others, max_other_speakers, replace=False))
                for other in others:
                    tasks.append(("across", (a, b), a_idx, b_idx, phones[a][other]))
    # 2. every distance they need, computed once, batched
    needed = sorted({(min(p, x), max(p, x)) for _, _, a_idx, b_idx, x_idx in tasks
                     for p in (*a_idx, *b_idx) for x in x_idx if p != x})
    values = dtw_distances([s.frames for s in segments], needed) if needed else []
    dist = dict(zip(needed, values, strict=True))

    def d(i: int, j: int) -> float:
        return dist[(i, j) if i < j else (j, i)]

    # 3. error per cell, averaged over contexts and speakers per (a, b), then over (a, b)
    per_pair: dict[str, dict[tuple[str, str], list[float]]] = {"within": defaultdict(list),
                                                               "across": defaultdict(list)}
    for cond, ab, a_idx, b_idx, x_idx in tasks:
        dax = np.array([[d(a, x) if a != x else np.nan for x in x_idx] for a in a_idx])
        dbx = np.array([[d(b, x) for x in x_idx] for b in b_idx])
        # (A, 1, X) vs (1, B, X): every triplet at once; A == X (nan) is not a triplet
        err = (dax[:, None, :] > dbx[None]) + 0.5 * (dax[:, None, :] == dbx[None])
        valid = np.broadcast_to(~np.isnan(dax)[:, None, :], err.shape)
        if valid.any():
            per_pair[cond][ab].append(float(err[valid].mean()))

    def average(table: dict) -> float:
        vals = [float(np.mean(v)) for v in table.values() if v]
        return float(np.mean(vals)) if vals else float("nan")

    w, a = per_pair["within"], per_pair["across"]
    return {"within": average(w), "across": average(a),
            "n_phone_pairs_within": len(w), "n_phone_pairs_across": len(a),
            "n_cells_within": sum(map(len, w.values())),
            "n_cells_across": sum(map(len, a.values())),
            "n_distances": len(needed), "n_segments": len(segments), "context": context}


def _strip(label: str) -> str:
    """espeak phone mnemonic without stress marks (``'a`` and ``a`` are the same phone)."""
    return label.lstrip("',%=")


def phone_segments(phones: Sequence[tuple[str, float, float]], frames: np.ndarray,
                   frame_rate: float, speaker: str) -> list[Segment]:
    """Cut an utterance's frame matrix (T x D) into one segment per gold phone (pauses skipped).

    A phone gets the frames whose centres fall inside it (at least one frame).
    """
    labels = [_strip(p) for p, _, _ in phones]
    out = []
    for k, (_, start, end) in enumerate(phones):
        if labels[k].startswith("_") or not labels[k]:
            continue
        lo = int(np.floor(start * frame_rate + 0.5 - 1e-9))
        hi = max(lo + 1, int(np.floor(end * frame_rate + 0.5 - 1e-9)))
        if lo >= len(frames):
            continue
        prev = labels[k - 1] if k > 0 else "#"
        nxt = labels[k + 1] if k + 1 < len(labels) else "#"
        out.append(Segment(labels[k], (prev, nxt), speaker, frames[lo:min(hi, len(frames))]))
    return out


def _frames(tok, wav: np.ndarray, representation: str) -> np.ndarray:
    """(T x D) frames of one waveform: front-end features, or one-hot frame-level units."""
    if representation == "features":
        frontend = getattr(tok, "frontend", None)
        if frontend is not None:
            return frontend([wav])[0].float().cpu().numpy()
        streams = tok.encode([wav], tok.sample_rate)[0]
        if streams.feats is None:
            raise ConfigError(f"tokenizer '{tok.kind}' exposes no features; use "
                              "--representation units")
        return np.asarray(streams.feats, dtype=np.float32)
    if representation == "units":
        s = tok.encode([wav], tok.sample_rate)[0]
        if s.units is None:
            raise ConfigError(f"tokenizer '{tok.kind}' makes no units; use "
                              "--representation features")
        units = np.repeat(s.units, s.durations) if s.durations is not None else s.units
        return np.eye(tok.n_units, dtype=np.float32)[units]
    raise ConfigError(f"unknown ABX representation '{representation}'; known: "
                      f"{', '.join(REPRESENTATIONS)}")


def evaluate_abx(tokenizer_dir: str | Path, manifest: str | Path,
                 representations: Sequence[str] = REPRESENTATIONS, context: bool = False,
                 max_utterances: int | None = 200, max_per_cell: int = 3,
                 max_other_speakers: int = 1, seed: int = 0,
                 out_dir: str | Path | None = None, progress: bool = True) -> dict:
    """ABX within/across speaker of a tokenizer on a manifest with gold ``phones``.

    For unit representations the PNMI / purity of the same frames are reported beside it.
    Writes ``out_dir/abx.json`` and ``abx.md`` when ``out_dir`` is given.
    """
    from speechlm.corpus.manifest import read_manifest
    from speechlm.evaluate.report import write_errors, write_report
    from speechlm.progress import progress_bar
    from speechlm.tokenizers import load_tokenizer
    from speechlm.tokenizers.quality import frame_labels, purity_pnmi
    from speechlm.tokenizers.reading import iter_audio

    tok = load_tokenizer(tokenizer_dir)
    utts = [u for u in read_manifest(manifest) if u.phones]
    if not utts:
        raise ConfigError(f"{manifest}: no utterance has 'phones' alignments for ABX")
    utts = utts[:max_utterances] if max_utterances else utts
    segs: dict[str, list[Segment]] = {r: [] for r in representations}
    frame_phones, frame_units, errors = [], [], []
    phone_ids: dict[str, int] = {}
    for utt, wav, err in progress_bar(iter_audio(utts, tok.sample_rate), total=len(utts),
                                      unit="utt", desc="abx", disable=not progress):
        if err is not None:
            errors.append({"id": utt.id, "error": str(err)})
            continue
        for rep in representations:
            frames = _frames(tok, wav, rep)
            segs[rep] += phone_segments(utt.phones, frames, tok.frame_rate, utt.speaker or "?")
            if rep == "units":
                labels = frame_labels(utt.phones, len(frames), tok.frame_rate)
                frame_phones.append([phone_ids.setdefault(p, len(phone_ids)) for p in labels])
                frame_units.append(frames.argmax(1))
    results: dict[str, dict] = {}
    for rep in representations:
        res = abx_error(segs[rep], context=context, max_per_cell=max_per_cell,
                        max_other_speakers=max_other_speakers, seed=seed)
        if rep == "units" and frame_units:
            res.update(purity_pnmi(np.concatenate([np.asarray(p) for p in frame_phones]),
                                   np.concatenate(frame_units)))
        res.update(tokenizer=str(tokenizer_dir), kind=tok.kind, n_units=tok.n_units,
                   utterances=len(utts) - len(errors), manifest=str(manifest))
        results[f"abx_{rep}"] = res
    if out_dir is not None:
        write_report(out_dir, results, "ABX phone discriminability (error: 0 best, 0.5 chance)",
                     "abx")
        write_errors(Path(out_dir) / "abx_errors.jsonl", errors)
    return results
