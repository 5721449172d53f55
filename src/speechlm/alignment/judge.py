"""The judge that ranks a model's spoken continuations by their transcripts (Align-SLM style).

A transcript scores ``(grammaticality, text log-probability)``, compared in that order:
first the share of its word trigrams the grammar attests
(:mod:`speechlm.evaluate.grammaticality`), then the text LM's mean log-probability per token
(the tiny grammar text LM by default, any HF causal LM otherwise). A transcript too short to
judge (under three words) scores lowest on the first criterion.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


class Judge:
    """Scores transcripts; higher is better (see the module docstring)."""

    def __init__(self, text_lm: str | Path | None = None, device: str = "cpu") -> None:
        from speechlm.evaluate.generation import load_text_lm

        self.model, self.tokenizer = load_text_lm(text_lm, device)

    def text_logprobs(self, texts: Sequence[str]) -> np.ndarray:
        """Mean log-probability per token of each text (BOS text EOS); -inf for an empty one."""
        from speechlm.models.causal_lm import MEAN, score_sequences

        bos, eos = self.tokenizer.bos_token_id, self.tokenizer.eos_token_id
        out = np.full(len(texts), -np.inf)
        seqs, where = [], []
        for i, t in enumerate(texts):
            ids = self.tokenizer(t, add_special_tokens=False)["input_ids"] if t.strip() else []
            if ids:
                seqs.append([*([bos] if bos is not None else []), *ids,
                             *([eos] if eos is not None else [])])
                where.append(i)
        if seqs:
            out[where] = score_sequences(self.model, seqs)[:, MEAN]
        return out

    def scores(self, texts: Sequence[str]) -> list[tuple[float, float]]:
        """``(grammaticality or -1, mean text log-probability)`` per transcript."""
        from speechlm.evaluate.grammaticality import grammaticality

        lps = self.text_logprobs(texts)
        return [(-1.0 if (g := grammaticality(t)) is None else g, float(lp))
                for t, lp in zip(texts, lps, strict=True)]
