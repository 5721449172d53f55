"""A tiny text LM trained on the synthetic grammar's text: the "text checkpoint" of warm init.

It is a plain HF causal LM + HF tokenizer directory, so warm init takes exactly the code path a
user takes with OPT or Qwen (``init_from: DIR``). ``source="digits"`` trains the same LM on a
non-linguistic sequence source instead, TWIST's other-modality control (TWIST started from an
image model): the 8 x 8 handwritten digits bundled with scikit-learn, one image per "sentence",
a row per "word" and a letter per grey level, through the same BPE tokenizer and loop.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from speechlm.errors import ConfigError

DEFAULT_MODEL = {"model_type": "llama", "hidden_size": 128, "intermediate_size": 512,
                 "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 4,
                 "max_position_embeddings": 2048}


def train_text_tokenizer(sentences: list[str], vocab_size: int = 1000):
    """A small BPE tokenizer (``tokenizers`` library) wrapped as a ``PreTrainedTokenizerFast``.

    It lower-cases what it reads: the grammar's text has no capitals, and an imported corpus's
    transcripts often are all capitals (LibriSpeech), which would otherwise be all ``<unk>``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Metaspace()
    core.decoder = decoders.Metaspace()
    core.train_from_iterator(sentences, trainers.BpeTrainer(vocab_size=vocab_size,
                                                            special_tokens=specials))
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>")


SOURCES = ("grammar", "digits")


def digit_sentences(n: int, seed: int) -> list[str]:
    """``n`` digit images as text: 8 words of 8 letters (``a`` .. ``q`` for grey 0 .. 16).

    Images are drawn with replacement from scikit-learn's 1,797 and shifted by up to one pixel
    in each direction (zero fill), so a large ``n`` is not the same few images repeated.
    """
    import numpy as np
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.int64)  # (1797, 8, 8), grey levels 0..16
    rng = np.random.default_rng([seed, 8])
    out = []
    for i in rng.integers(len(images), size=n):
        dy, dx = rng.integers(-1, 2, size=2)
        img = np.zeros((10, 10), dtype=np.int64)
        img[1:9, 1:9] = images[i]
        img = img[1 + dy:9 + dy, 1 + dx:9 + dx]
        out.append(" ".join("".join(chr(ord("a") + int(v)) for v in row) for row in img))
    return out


def _sentences(n: int, seed: int, source: str = "grammar") -> list[str]:
    if source == "digits":
        return digit_sentences(n, seed)
    if source != "grammar":
        raise ConfigError(f"source: must be one of {', '.join(SOURCES)}, got {source!r}")
    from speechlm.corpus.grammar import sample_sentences

    return sample_sentences(n, seed)


def train_text_lm(out_dir: str | Path, n_sentences: int = 4000, seed: int = 0,
                  model: dict[str, Any] | None = None, steps: int = 300, seq_len: int = 128,
                  batch_size: int = 16, lr: float = 3e-3, vocab_size: int = 1000,
                  sentences: list[str] | None = None, progress: bool = True,
                  source: str = "grammar") -> Path:
    """Train a causal LM on ``source``'s sentences (BOS text EOS, packed) and save it to
    ``out_dir`` (``sentences`` given: those instead).

    Writes an HF model + tokenizer directory and ``text_lm.json`` (final loss, settings).
    """
    import json

    import numpy as np
    import torch

    from speechlm.models.init import cold_init
    from speechlm.progress import progress_bar

    out = Path(out_dir)
    given = sentences is not None
    sentences = sentences if given else _sentences(n_sentences, seed, source)
    tok = train_text_tokenizer(sentences, vocab_size)
    ids: list[int] = []
    for enc in tok(sentences, add_special_tokens=False)["input_ids"]:
        ids += [tok.bos_token_id, *enc, tok.eos_token_id]
    n_blocks = len(ids) // seq_len
    data = torch.tensor(ids[: n_blocks * seq_len]).view(n_blocks, seq_len)  # (N, T)

    # cold_init only needs the id layout: a vocabulary view of the text tokenizer
    class _TextVocab:
        size, bos_id = len(tok), tok.bos_token_id
        eos_id, pad_id = tok.eos_token_id, tok.pad_token_id

    lm = cold_init(model or DEFAULT_MODEL, _TextVocab(), seed=seed)  # type: ignore[arg-type]
    opt = torch.optim.AdamW(lm.parameters(), lr=lr, weight_decay=0.1, betas=(0.9, 0.95))
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / warmup, 0.5 * (
        1 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, steps - warmup))))))
    g = torch.Generator().manual_seed(seed)
    lm.train()
    losses = []
    for _ in progress_bar(range(steps), unit="step", desc="text LM", disable=not progress):
        batch = data[torch.randint(0, n_blocks, (batch_size,), generator=g)]
        loss = lm(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    lm.eval()
    out.mkdir(parents=True, exist_ok=True)
    lm.save_pretrained(out)
    tok.save_pretrained(out)
    (out / "text_lm.json").write_text(json.dumps({
        "source": "given" if given else source, "sentences": len(sentences),
        "tokens": len(ids), "steps": steps, "seed": seed,
        "final_loss": float(np.mean(losses[-20:]))}, indent=2))
    return out
