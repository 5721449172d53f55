"""Generation quality: resynthesis WER, continuation perplexity, auto-BLEU and self-BLEU.

The GSLM protocol (Lakhotia et al., 2021) at any scale: prompts are the first ``prompt_seconds``
of held-out utterances; the speech LM continues them, the vocoder makes them audible, and an
offline ASR (pocketsphinx) transcribes them. Reported:

- ``resynth_wer``: WER of tokenizer -> vocoder resynthesis of the whole utterances against their
  transcripts, beside ``original_wer`` (the same ASR on the original audio: the floor);
- ``perplexity``: of the continuation transcripts under a text LM (by default the tiny grammar LM
  of ``speechlm.train.textlm``; any HF causal LM by path or hub id);
- ``auto_bleu``: share of a transcript's 2-grams that recur within it (repetition; lower is
  better); ``self_bleu``: BLEU-4 of each continuation against the others (diversity; lower is
  more diverse);
- ``grammatical_rate``: share of the continuation transcripts (of at least three words) that the
  synthetic grammar produces, by :mod:`speechlm.evaluate.grammaticality` (meaningful for models
  trained on the synthetic corpus), and ``grammaticality``, the mean share of attested trigrams.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError


# -- text metrics ---------------------------------------------------------------------------
def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def auto_bleu(text: str, n: int = 2) -> float | None:
    """Share of the n-grams of ``text`` that also occur elsewhere in it (None if it has none)."""
    grams = _ngrams(text.split(), n)
    if not grams:
        return None
    counts = Counter(grams)
    return sum(1 for g in grams if counts[g] > 1) / len(grams)


def sentence_bleu(hypothesis: Sequence[str], references: Sequence[Sequence[str]],
                  max_n: int = 4) -> float:
    """BLEU of one tokenised hypothesis against references (NLTK: uniform weights up to
    ``max_n``, smoothing method 1, brevity penalty against the closest reference length)."""
    if not hypothesis or not references:
        return 0.0
    from nltk.translate.bleu_score import SmoothingFunction
    from nltk.translate.bleu_score import sentence_bleu as nltk_bleu

    return float(nltk_bleu(list(references), list(hypothesis), weights=(1 / max_n,) * max_n,
                           smoothing_function=SmoothingFunction().method1))


def self_bleu(texts: Sequence[str], max_n: int = 4) -> float | None:
    """Mean BLEU of each text against all the others (None with fewer than two texts)."""
    toks = [t.split() for t in texts if t.split()]
    if len(toks) < 2:
        return None
    return float(np.mean([sentence_bleu(h, toks[:i] + toks[i + 1:], max_n)
                          for i, h in enumerate(toks)]))


# -- text LM perplexity ---------------------------------------------------------------------
def default_text_lm_dir() -> Path:
    """Where the tiny grammar text LM is cached (``$SPEECHLM_CACHE`` or ~/.cache/speechlm)."""
    import os

    root = os.environ.get("SPEECHLM_CACHE") or Path.home() / ".cache" / "speechlm"
    return Path(root) / "tiny_text_lm"


def load_text_lm(spec: str | Path | None = None, device: str = "cpu"):
    """(model, tokenizer) of a text LM: a local dir or hub id; None = the tiny grammar LM,
    trained once with ``speechlm.train.textlm.train_text_lm`` and cached."""
    from transformers import AutoModelForCausalLM

    from speechlm.pretrained import load_pretrained, load_tokenizer_files

    if spec is None:
        spec = default_text_lm_dir()
        if not (Path(spec) / "config.json").exists():
            from speechlm.train.textlm import train_text_lm

            train_text_lm(spec)
    tok = load_tokenizer_files(spec, "text LM's tokenizer")
    model = load_pretrained(AutoModelForCausalLM, spec, "text LM").to(device).eval()
    return model, tok


def text_perplexity(texts: Sequence[str], model, tokenizer, batch_size: int = 32) -> dict:
    """Token-level perplexity of ``texts`` (each as BOS text EOS) under a causal LM.

    Empty texts are left out and counted in ``n_empty``.
    """
    from speechlm.evaluate.scoring import score_sequences

    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    seqs = []
    for t in texts:
        if not t.strip():
            continue
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        seqs.append(([bos] if bos is not None else []) + ids + ([eos] if eos is not None else []))
    seqs = [s for s in seqs if len(s) > 1]
    if not seqs:
        return {"perplexity": None, "n_texts": 0, "n_empty": len(texts), "n_tokens": 0}
    scores = score_sequences(model, seqs, batch_size=batch_size)
    n_tokens = sum(len(s) - 1 for s in seqs)
    return {"perplexity": float(math.exp(-scores[:, 0].sum() / n_tokens)), "n_texts": len(seqs),
            "n_empty": len(texts) - len(seqs), "n_tokens": n_tokens}


# -- the whole protocol ---------------------------------------------------------------------
def evaluate_generation(model_dir, manifest: str | Path, out_dir: str | Path,
                        n_prompts: int = 20, prompt_seconds: float = 3.0,
                        max_seconds: float = 6.0, temperature: float = 1.0, top_k: int = 0,
                        top_p: float = 1.0, seed: int = 0, text_lm: str | Path | None = None,
                        vocoder: str | Path | None = None, asr_lm: str = "generic",
                        device: str | None = None, progress: bool = True,
                        repetition_penalty: float = 1.0) -> dict:
    """Run the protocol on the first ``n_prompts`` utterances of ``manifest`` that are longer
    than the prompt; writes ``generation.json``/``.md``, ``transcripts.jsonl`` and the audio
    of every continuation under ``out_dir``. ``asr_lm="domain"`` transcribes with the
    synthetic grammar's LM (``speechlm.evaluate.domain_lm``) instead of generic English.
    ``repetition_penalty`` > 1 discourages repeated units at sampling (1.0: off).
    """
    import json

    from speechlm.audio import load_audio, save_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.evaluate.asr import default_transcriber, normalize_text, wer_details
    from speechlm.evaluate.report import write_errors, write_report
    from speechlm.evaluate.scoring import load_model
    from speechlm.generate.continuation import (
        Sampling,
        continue_speech_batch,
        resolve_vocoder,
        resynthesize,
    )

    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    speech_lm = load_model(model_dir, device)
    voc = resolve_vocoder(speech_lm, vocoder)
    utts = [u for u in read_manifest(manifest) if u.text and u.duration > prompt_seconds + 0.5]
    utts = utts[:n_prompts]
    if not utts:
        raise SpeechLMError(f"{manifest}: no utterance with a transcript longer than "
                            f"{prompt_seconds + 0.5:.1f} s to prompt with")
    rate = int(speech_lm.speech_tokenizer.sample_rate)
    errors: list[dict] = []
    wavs, kept = [], []
    for u in utts:
        try:
            wavs.append(load_audio(u.audio, sample_rate=rate))
            kept.append(u)
        except SpeechLMError as e:
            errors.append({"id": u.id, "error": str(e)})
    if asr_lm == "generic":
        asr = default_transcriber()
    elif asr_lm == "domain":
        from speechlm.evaluate.domain_lm import domain_transcriber

        asr = domain_transcriber()
    else:
        raise SpeechLMError(f"unknown asr_lm '{asr_lm}'; known: generic, domain")

    # 1. resynthesis of whole utterances (tokenizer + vocoder, no LM) vs the original audio
    tok = speech_lm.speech_tokenizer
    resynth = [resynthesize(tok, voc, w, rate)[1] for w in wavs]
    refs = [u.text for u in kept]
    hyp_resynth = asr.transcribe_batch(resynth, int(voc.sample_rate), progress=progress)
    hyp_orig = asr.transcribe_batch(wavs, rate, progress=progress)

    # 2. continuations of the first prompt_seconds
    prompts = [w[: int(prompt_seconds * rate)] for w in wavs]
    conts = continue_speech_batch(speech_lm, prompts, rate, Sampling(
        max_seconds, temperature, top_k, top_p, seed,
        repetition_penalty=repetition_penalty), vocoder=voc)
    hyp_cont = asr.transcribe_batch([c.audio for c in conts], int(voc.sample_rate),
                                    progress=progress)
    for u, c in zip(kept, conts, strict=True):
        save_audio(out / "audio" / f"{u.id}_continuation.wav", c.audio, c.sample_rate)

    lm, lm_tok = load_text_lm(text_lm, device or "cpu")
    ppl = text_perplexity(hyp_cont, lm, lm_tok)
    ab = [a for a in (auto_bleu(normalize_text(h)) for h in hyp_cont) if a is not None]
    from speechlm.evaluate.grammaticality import grammatical_rate

    gram = grammatical_rate(hyp_cont)
    result = {
        "model": str(speech_lm.dir), "manifest": str(manifest), "n_prompts": len(kept),
        "prompt_seconds": prompt_seconds, "max_seconds": max_seconds,
        "temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed,
        "repetition_penalty": repetition_penalty,
        "resynth_wer": wer_details(refs, hyp_resynth)["wer"],
        "original_wer": wer_details(refs, hyp_orig)["wer"],
        "perplexity": ppl["perplexity"], "perplexity_tokens": ppl["n_tokens"],
        "empty_transcripts": ppl["n_empty"],
        "text_lm": str(text_lm or default_text_lm_dir()), "asr_lm": asr_lm,
        "auto_bleu_2": float(np.mean(ab)) if ab else None,
        "self_bleu_4": self_bleu([normalize_text(h) for h in hyp_cont]),
        "grammatical_rate": gram["rate"], "grammaticality": gram["mean"],
        "grammar_judged": gram["n_judged"],
        "stopped_at_eos": sum(c.stopped_at_eos for c in conts),
    }
    with open(out / "transcripts.jsonl", "w", encoding="utf-8") as f:
        for u, hr, ho, hc in zip(kept, hyp_resynth, hyp_orig, hyp_cont, strict=True):
            f.write(json.dumps({"id": u.id, "text": u.text, "original_asr": ho,
                                "resynth_asr": hr, "continuation_asr": hc}) + "\n")
    write_errors(out / "errors.jsonl", errors)
    write_report(out, {"generation": result}, "Generation quality", "generation")
    return result
