"""Do a model's spoken and written words meet? The similarity, layer by layer, of the hidden
states of a word heard and the same word read (SpiRit-LM's cross-modal alignment analysis).

Held-out sentences (grammar text, seeded, spoken by the held-out voices with gold word times)
are read twice by the model: spoken, as its speech example (``BOS [SPEECH] tokens``), and
written, as the ``text_only`` format writes them (``BOS [TEXT] words``). The hidden states of
every layer (0: the embeddings; ``output_hidden_states``) are mean-pooled over each word's
positions: its speech tokens, cut at word starts as interleaved training cuts spans, and its
text tokens, found from the tokenizer's offsets on the joined words (the very ids
``text_to_ids`` gives). Per layer (:func:`similarity_by_layer`):

- ``matched``: the mean cosine of a word spoken and the same word written;
- ``mismatched``: the mean cosine of a spoken word and a written word with another label, over
  every such pair in the set, within and across sentences: the baseline (hidden states share a
  direction, so it is well above 0 in many layers);
- ``difference``: matched - mismatched, above 0 where spoken and written words share a
  representation.

Only models with text tokens apply (``vocab_mode: extend``).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError, SpeechLMError

EPS = 1e-8  # norms below this count as zero vectors (cosine 0)


# ---- the measurement (pure) -------------------------------------------------------------------
def text_word_spans(vocab: Any, labels: Sequence[str]) -> tuple[list[int], list[tuple[int, int]]]:
    """The text ids of ``labels`` joined by spaces (as ``text_to_ids`` tokenises a text span)
    and each word's ``[first, end)`` token span.

    A token belongs to the word holding its first non-space character (a token that is only
    a space, or starts with one, belongs to the word after it). A word with no token of its own
    (merged into another's) gets an empty span.
    """
    text = " ".join(labels)
    try:
        enc = vocab.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError:
        raise ConfigError("eval similarity needs a fast (Rust) text tokenizer: it reads each "
                          "word's tokens from their character offsets") from None
    starts = np.cumsum([0, *[len(w) + 1 for w in labels[:-1]]]).tolist()
    owners = []
    for a, _ in enc["offset_mapping"]:
        p = a
        while p < len(text) - 1 and text[p] == " ":
            p += 1
        owners.append(bisect.bisect_right(starts, p) - 1)
    spans = []
    for i in range(len(labels)):
        mine = [k for k, o in enumerate(owners) if o == i]
        spans.append((mine[0], mine[-1] + 1) if mine else (0, 0))
    return list(enc["input_ids"]), spans


def pool_words(states: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """(L, T, D) hidden states -> (L, W, D): the mean over each word's ``[first, end)``."""
    return np.stack([states[:, a:b].mean(axis=1) for a, b in spans], axis=1)


def similarity_by_layer(spoken: Sequence[np.ndarray], written: Sequence[np.ndarray],
                        labels: Sequence[Sequence[str]]) -> dict:
    """Per-layer ``matched``, ``mismatched`` and ``difference`` (see the module doc).

    ``spoken[i]`` and ``written[i]`` are sentence ``i``'s (L, W_i, D) word vectors, word ``j``
    of both being ``labels[i][j]``.
    """
    s = np.concatenate(spoken, axis=1).astype(np.float64)  # (L, N, D)
    w = np.concatenate(written, axis=1).astype(np.float64)
    words = np.asarray([x for sentence in labels for x in sentence])
    if s.shape != w.shape or s.shape[1] != len(words):
        raise ValueError(f"spoken {s.shape} and written {w.shape} word vectors for "
                         f"{len(words)} labels")
    s /= np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), EPS)
    w /= np.maximum(np.linalg.norm(w, axis=-1, keepdims=True), EPS)
    # sums instead of the (L, N, N) cosine matrix, which thousands of words make gigabytes:
    # the sum over all pairs is (sum of s) . (sum of w), over same-label pairs it is the same
    # per label, so the mismatched sum is their difference
    names, label = np.unique(words, return_inverse=True)
    onehot = np.eye(len(names))[label].T  # (K labels, N words)
    same = np.einsum("lkd,lkd->l", np.einsum("kn,lnd->lkd", onehot, s),
                     np.einsum("kn,lnd->lkd", onehot, w))
    total = np.einsum("ld,ld->l", s.sum(axis=1), w.sum(axis=1))
    n_other = len(words) ** 2 - int((onehot.sum(axis=1) ** 2).sum())
    matched = np.einsum("lnd,lnd->ln", s, w).mean(axis=1)
    mismatched = (total - same) / n_other if n_other else np.full(len(s), np.nan)
    return {"layers": list(range(len(s))), "matched": matched.tolist(),
            "mismatched": mismatched.tolist(), "difference": (matched - mismatched).tolist(),
            "n_words": int(len(words)), "n_mismatched_pairs": n_other}


def layer_states(model: Any, ids: Sequence[int]) -> np.ndarray:
    """The hidden states of every layer for one sequence: (L + 1, T, D), float32."""
    import torch

    device = next(model.parameters()).device
    with torch.inference_mode():
        out = model(input_ids=torch.as_tensor([list(ids)], device=device),
                    output_hidden_states=True, use_cache=False)
    return torch.stack(out.hidden_states)[:, 0].float().cpu().numpy()  # (L + 1, T, D)


# ---- the evaluation ---------------------------------------------------------------------------
def check_text_models(models: Sequence[Any]) -> None:
    """Refuse, before any work, a model directory whose vocabulary has no text tokens."""
    from speechlm.sequences.vocab import SpeechVocab

    for m in models:
        vocab = m.vocab if hasattr(m, "vocab") else SpeechVocab.load(m)
        if not vocab.has_text:
            raise ConfigError(f"{getattr(m, 'dir', m)}: eval similarity compares words spoken "
                              "and written, but this model's vocabulary has no text tokens "
                              "(train it with init: warm from a text LM, vocab_mode: extend "
                              "and an interleaved format)")


def _sentence_vectors(lm: Any, spoken: Any, streams: Any
                      ) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """One sentence's (L, W, D) spoken and written word vectors, their labels and the number
    of words left out for having no token in one modality."""
    from speechlm.evaluate.crossmodal import speech_tokens, word_spans
    from speechlm.models.causal_lm import context_length

    if isinstance(streams, str):
        raise SpeechLMError(streams)
    labels = [w for w, _, _ in spoken.words]
    speech_seq = list(lm.speech_example(streams).input_ids)
    context = context_length(lm.model.config)
    if context is not None and len(speech_seq) > context:  # positions the model never saw
        raise SpeechLMError(f"{len(speech_seq)} speech tokens do not fit the model's context "
                            f"of {context}")
    ids, times = speech_tokens(lm, streams)
    if speech_seq[2:] != ids.tolist():  # BOS [SPEECH] tokens: the spans index the tokens
        raise SpeechLMError("the model's speech example is not BOS [SPEECH] + its speech tokens")
    text_ids, text_spans = text_word_spans(lm.vocab, labels)
    speech_spans = word_spans(spoken, times)
    keep = [i for i, ((a, b), (c, d)) in enumerate(zip(speech_spans, text_spans, strict=True))
            if b > a and d > c]
    if not keep:
        raise SpeechLMError("no word has both speech and text tokens")
    s = layer_states(lm.model, speech_seq)
    t = layer_states(lm.model, [lm.vocab.bos_id, lm.vocab.text_id, *text_ids])
    shift = [(a + 2, b + 2) for a, b in speech_spans]  # past BOS and the marker
    tshift = [(a + 2, b + 2) for a, b in text_spans]
    return (pool_words(s, [shift[i] for i in keep]), pool_words(t, [tshift[i] for i in keep]),
            [labels[i] for i in keep], len(labels) - len(keep))


def evaluate_similarity(models: Sequence[Any], out_dir: str | Path, n_sentences: int = 40,
                        seed: int = 0, device: str | None = None, progress: bool = True) -> dict:
    """Measure every model in ``models`` on the same ``n_sentences`` held-out sentences; write
    ``similarity.json``, ``similarity.md`` and ``similarity.png`` to ``out_dir``.

    A sentence that cannot be used (espeak or the tokenizer failed, no word with tokens in both
    modalities) is skipped and listed per model; a word with no token in one modality (two
    words starting within one unit) is left out and counted.
    """
    from speechlm.corpus.benchmarks import SAMPLE_RATE
    from speechlm.corpus.grammar import Grammar
    from speechlm.corpus.synth import HELDOUT_VOICES
    from speechlm.evaluate.crossmodal import encode_waves, speak_texts
    from speechlm.evaluate.report import _json_safe
    from speechlm.evaluate.scoring import load_model
    from speechlm.progress import progress_bar

    if not models:
        raise ConfigError("eval similarity: give at least one --model")
    if n_sentences < 1:
        raise ConfigError(f"sentences: must be >= 1, got {n_sentences}")
    check_text_models(models)
    rng = np.random.default_rng([seed, 2])
    grammar, voices = Grammar(rng), list(HELDOUT_VOICES)
    sentences = [{"id": f"sent{i:04d}", "text": grammar.sentence(),
                  "voice": voices[int(rng.integers(len(voices)))]} for i in range(n_sentences)]
    said = speak_texts([[s["text"]] for s in sentences], [s["voice"] for s in sentences], seed,
                       progress)
    ok = [i for i, s in enumerate(said) if not isinstance(s, str)]
    skipped = [{"id": sentences[i]["id"], "reason": said[i]} for i in range(len(said))
               if i not in ok]
    per_model = []
    for m in models:
        lm = load_model(m, device)
        encoded = encode_waves(lm, [said[i][0].wav for i in ok], SAMPLE_RATE, progress)
        spoken, written, labels, dropped, failed = [], [], [], 0, []
        for i, st in progress_bar(list(zip(ok, encoded, strict=True)), unit="sentence",
                                  desc="hidden states", disable=not progress):
            try:
                s, w, lab, n_out = _sentence_vectors(lm, said[i][0], st)
            except SpeechLMError as e:
                failed.append({"id": sentences[i]["id"], "reason": str(e)})
                continue
            spoken.append(s)
            written.append(w)
            labels.append(lab)
            dropped += n_out
        if not spoken:
            raise SpeechLMError(f"{lm.dir}: no sentence could be measured (reasons: "
                                f"{[f['reason'] for f in failed][:3]})")
        figures = similarity_by_layer(spoken, written, labels)
        diff = np.asarray(figures["difference"], dtype=np.float64)
        best = int(np.nanargmax(diff)) if np.isfinite(diff).any() else None
        per_model.append({"model": str(lm.dir), **figures, "best_layer": best,
                          "n_sentences": len(spoken), "n_words_left_out": dropped,
                          "skipped": failed})
    names = [Path(r["model"]).name for r in per_model]
    for r, name in zip(per_model, names, strict=True):  # short labels unless two collide
        r["label"] = name if names.count(name) == 1 else r["model"]
    result = _json_safe({"n_sentences": n_sentences, "seed": seed, "voices": voices,
                         "models": per_model, "sentences": sentences, "skipped": skipped})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "similarity.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "similarity.md").write_text(similarity_markdown(result))
    plot_similarity(result["models"], out / "similarity.png")
    return result


def plot_similarity(models: Sequence[dict], path: Path) -> None:
    """Matched (solid) and mismatched (dashed) cosine against layer, one colour per model."""
    import matplotlib

    matplotlib.use("Agg")  # headless: files, never a window
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4))
    for k, r in enumerate(models):
        color = f"C{k % 10}"
        ax.plot(r["layers"], r["matched"], "o-", color=color, label=f"{r['label']}: same word")
        ax.plot(r["layers"], r["mismatched"], "s--", color=color,
                label=f"{r['label']}: different words")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer (0: embeddings)")
    ax.set_ylabel("mean cosine, spoken vs written")
    ax.set_title("Spoken and written words, layer by layer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def similarity_markdown(result: dict) -> str:
    """``similarity.md``: per model, the figures of every layer."""
    from speechlm.evaluate.report import markdown_table

    md = ["# Spoken vs written words, layer by layer", "",
          f"{result['n_sentences']} held-out sentences (seed {result['seed']}, voices "
          f"{', '.join(result['voices'])}); {len(result['skipped'])} could not be spoken. "
          "matched: mean cosine of a word's mean hidden state spoken and written; mismatched: "
          "the same for a spoken and a written word with different labels (the baseline).", "",
          "![similarity](similarity.png)", ""]
    for r in result["models"]:
        md += [f"## {r['label']}", "",
               f"{r['n_sentences']} sentences, {r['n_words']} words ({r['n_words_left_out']} "
               f"left out), {r['n_mismatched_pairs']} mismatched pairs; best layer "
               f"{r['best_layer']}. Model: {r['model']}", "",
               markdown_table(["layer", "matched", "mismatched", "difference"],
                              [[layer, a, b, c] for layer, a, b, c in
                               zip(r["layers"], r["matched"], r["mismatched"],
                                   r["difference"], strict=True)]), ""]
        if r["skipped"]:
            md += [markdown_table(["skipped sentence", "reason"],
                                  [[s["id"], s["reason"].replace("|", "\\|")]
                                   for s in r["skipped"]]), ""]
    return "\n".join(md)
