"""A closed-vocabulary pocketsphinx LM for the synthetic corpora: bigram ARPA + trimmed dictionary.

pocketsphinx's generic English LM knows ~130k words, so on the synthetic grammar (a few hundred
words) most of its errors are words the speech never contains. A bigram LM estimated on grammar
text, with the CMU pronunciations of just those words, measures what a domain ASR hears. Use it
for toy-scale generation metrics; keep the generic model for real speech.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from speechlm.errors import SpeechLMError

DISCOUNT = 0.5  # absolute discounting of bigram counts


def write_arpa(sentences: Sequence[str], path: str | Path) -> set[str]:
    """Write a bigram ARPA LM (absolute discounting, back-off to unigrams); returns the words."""
    from speechlm.evaluate.asr import normalize_text

    uni: Counter = Counter()
    bi: Counter = Counter()
    for s in sentences:
        words = ["<s>", *normalize_text(s).split(), "</s>"]
        uni.update(words)
        bi.update(zip(words[:-1], words[1:], strict=True))
    total = sum(c for w, c in uni.items() if w != "<s>")
    p_uni = {w: (uni[w] / total if w != "<s>" else 1e-99) for w in uni}
    followers: dict[str, list[str]] = {}
    for a, b in bi:
        followers.setdefault(a, []).append(b)
    lines_bi, backoff = [], {}
    for a, nexts in followers.items():
        ca = sum(bi[(a, b)] for b in nexts)
        left = DISCOUNT * len(nexts) / ca  # probability mass moved to the unigram back-off
        seen = sum(p_uni[b] for b in nexts)
        backoff[a] = left / max(1e-12, 1.0 - seen)
        for b in nexts:
            lines_bi.append(f"{math.log10((bi[(a, b)] - DISCOUNT) / ca):.6f} {a} {b}")
    out = ["\\data\\", f"ngram 1={len(uni)}", f"ngram 2={len(lines_bi)}", "", "\\1-grams:"]
    for w in sorted(uni):
        bo = f" {math.log10(backoff[w]):.6f}" if w in backoff else ""
        out.append(f"{math.log10(p_uni[w]) if w != '<s>' else -99:.6f} {w}{bo}")
    out += ["", "\\2-grams:", *lines_bi, "", "\\end\\", ""]
    Path(path).write_text("\n".join(out))
    return {w for w in uni if w not in ("<s>", "</s>")}


def write_dictionary(words: set[str], path: str | Path) -> list[str]:
    """Copy the CMU pronunciations (all variants) of ``words``; returns the words it lacks."""
    from pocketsphinx import get_model_path

    found, lines = set(), []
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            base = line.split(" ", 1)[0].split("(", 1)[0]
            if base in words:
                lines.append(line.rstrip("\n"))
                found.add(base)
    Path(path).write_text("\n".join(lines) + "\n")
    return sorted(words - found)


def domain_transcriber(sentences: Sequence[str] | None = None, out_dir: str | Path | None = None,
                       n_sentences: int = 20000, seed: int = 12345):
    """A ``Transcriber`` whose LM and dictionary cover only ``sentences``' words.

    Default sentences: the synthetic grammar (``speechlm.corpus.grammar.sample_sentences``).
    Files go to ``out_dir`` (a temporary folder when None). Words without a CMU pronunciation
    are left out of the dictionary (they cannot be recognised).
    """
    import tempfile

    from speechlm.evaluate.asr import Transcriber, normalize_text

    if sentences is None:
        from speechlm.corpus.grammar import sample_sentences

        sentences = sample_sentences(n_sentences, seed)
    if not sentences:
        raise SpeechLMError("domain LM: no sentences to estimate it from")
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="speechlm_lm_"))
    out.mkdir(parents=True, exist_ok=True)
    words = write_arpa(sentences, out / "domain.arpa")
    missing = write_dictionary(words, out / "domain.dict")
    if missing:
        # the LM must not hold words the dictionary cannot pronounce
        # the same normalisation as write_arpa, so "word." and "word" are one word
        kept = [s for s in sentences if not set(normalize_text(s).split()) & set(missing)]
        write_arpa(kept or sentences, out / "domain.arpa")
    return Transcriber(lm=str(out / "domain.arpa"), dict=str(out / "domain.dict"))
