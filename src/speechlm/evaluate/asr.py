"""Offline English transcription with pocketsphinx, and word error rate with jiwer.

The generation metrics (and the vocoder's intelligibility check) need a real ASR that runs on a
laptop CPU with no download: pocketsphinx ships an English acoustic model, dictionary and 3-gram
LM in its wheel. It is weak (about a quarter of the words wrong on clean espeak speech), so its WER
is a relative measure between systems, never an absolute one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from speechlm.errors import AudioError, SpeechLMError

ASR_SAMPLE_RATE = 16000
# Synthetic speech (espeak, vocoders) has exact digital silence, which pocketsphinx's log-energy
# and cepstral-mean normalisation handle badly (measured here: WER 0.81 -> 0.48 on espeak
# sentences). A -60 dBFS noise floor, seeded so a file always gets the same transcript, and half
# a second of lead-in/out silence make it behave like recorded speech.
NOISE_FLOOR = 1e-3
PAD_SECONDS = 0.5
_NON_WORD = re.compile(r"[^a-z' ]+")
# pocketsphinx marks fillers and noise as <s>, </s>, <sil>, [NOISE], ++GARBAGE++ ...
_FILLER = re.compile(r"^(<.*>|\[.*\]|\+\+.*\+\+)$")


class Transcriber:
    """A reusable pocketsphinx decoder (building it loads the models: ~1 s, so keep one).

    ``Transcriber()`` uses the English model shipped with pocketsphinx; ``hmm``, ``lm`` and
    ``dict`` paths (or any other pocketsphinx option as a keyword) replace parts of it, e.g. a
    domain LM built from the synthetic grammar.
    """

    def __init__(self, **options: object) -> None:
        from pocketsphinx import Config, Decoder

        config = Config(samprate=ASR_SAMPLE_RATE, loglevel="FATAL", **options)
        self.decoder = Decoder(config)
        self._cmn0 = self.decoder.get_cmn()

    def transcribe(self, wav: np.ndarray, sample_rate: int = ASR_SAMPLE_RATE) -> str:
        """The recognised words of one mono float waveform, lower case, fillers removed."""
        wav = _condition(_to_asr_rate(np.asarray(wav, dtype=np.float32), sample_rate))
        pcm = (np.clip(wav, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        # the front end adapts its feature state and cepstral mean across utterances: reset
        # both so a file's transcript does not depend on what was transcribed before it
        self.decoder.reinit_feat()
        self.decoder.set_cmn(self._cmn0)
        self.decoder.start_utt()
        # full_utt=True: the whole utterance is given at once, which lets the decoder
        # normalise cepstra over the whole file (better than the live running estimate).
        self.decoder.process_raw(pcm, no_search=False, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return _clean_hypothesis(hyp.hypstr if hyp is not None else "")

    def transcribe_batch(
        self, wavs: Iterable[np.ndarray], sample_rate: int = ASR_SAMPLE_RATE,
        progress: bool = False,
    ) -> list[str]:
        """Transcribe many waveforms with this one decoder (the models are loaded once)."""
        from speechlm.progress import progress_bar

        wavs = list(wavs)
        return [self.transcribe(w, sample_rate)
                for w in progress_bar(wavs, unit="utt", desc="asr", disable=not progress)]

    def transcribe_files(self, paths: Sequence[str | Path], progress: bool = False) -> list[str]:
        """Transcribe audio files of any rate/format that ``speechlm.audio`` reads."""
        from speechlm.audio import load_audio
        from speechlm.progress import progress_bar

        return [self.transcribe(load_audio(p, sample_rate=ASR_SAMPLE_RATE), ASR_SAMPLE_RATE)
                for p in progress_bar(list(paths), unit="file", desc="asr",
                                      disable=not progress)]


_DEFAULT: Transcriber | None = None


def default_transcriber() -> Transcriber:
    """One shared default (English model) transcriber per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Transcriber()
    return _DEFAULT


def transcribe(
    wavs: np.ndarray | Sequence[np.ndarray], sample_rate: int = ASR_SAMPLE_RATE,
    progress: bool = False,
) -> str | list[str]:
    """Transcribe one waveform (returns a string) or a list of them (returns a list)."""
    asr = default_transcriber()
    if isinstance(wavs, np.ndarray) and wavs.ndim == 1:
        return asr.transcribe(wavs, sample_rate)
    return asr.transcribe_batch(wavs, sample_rate, progress=progress)


def transcribe_files(paths: Sequence[str | Path], progress: bool = False) -> list[str]:
    """Transcribe audio files with the default English model."""
    return default_transcriber().transcribe_files(paths, progress=progress)


def manifest_wer(manifest: str | Path, max_utterances: int | None = None,
                 transcriber: Transcriber | None = None, progress: bool = False) -> dict:
    """Transcribe a manifest's audio and compare with its ``text``: ``wer_details`` + examples.

    Measures the ASR itself (on clean synthetic speech: its floor for resynthesis WER).
    """
    from speechlm.corpus.manifest import read_manifest

    utts = [u for u in read_manifest(manifest) if u.text][:max_utterances]
    if not utts:
        raise SpeechLMError(f"{manifest}: no utterance with a transcript to measure WER on")
    asr = transcriber or default_transcriber()
    hyps = asr.transcribe_files([u.audio for u in utts], progress=progress)
    refs = [u.text for u in utts]
    result = wer_details(refs, hyps)
    result["examples"] = [{"id": u.id, "ref": normalize_text(r), "hyp": h}
                          for u, r, h in list(zip(utts, refs, hyps, strict=True))[:5]]
    return result


def normalize_text(text: str) -> str:
    """Lower case, punctuation dropped (apostrophes kept), single spaces: both sides of a WER."""
    text = _NON_WORD.sub(" ", text.lower().replace("-", " "))
    return " ".join(text.split())


def wer(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Corpus word error rate (total edits / total reference words) after ``normalize_text``.

    Empty references are skipped (WER is undefined for them); raises if none remain.
    """
    return wer_details(references, hypotheses)["wer"]


def wer_details(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> dict:
    """WER with its parts: substitutions, deletions, insertions, reference words, utterances."""
    import jiwer

    refs, hyps = _normalized_pairs(references, hypotheses)
    out = jiwer.process_words(refs, hyps)
    return {"wer": float(out.wer), "substitutions": out.substitutions,
            "deletions": out.deletions, "insertions": out.insertions,
            "ref_words": out.hits + out.substitutions + out.deletions,
            "utterances": len(refs)}


def cer(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Corpus character error rate (total character edits / total reference characters, spaces
    included) after ``normalize_text``; empty references are skipped, as in ``wer``."""
    import jiwer

    refs, hyps = _normalized_pairs(references, hypotheses)
    return float(jiwer.cer(refs, hyps))


def _normalized_pairs(
    references: str | Sequence[str], hypotheses: str | Sequence[str],
) -> tuple[list[str], list[str]]:
    if isinstance(references, str):
        references = [references]
    if isinstance(hypotheses, str):
        hypotheses = [hypotheses]
    if len(references) != len(hypotheses):
        raise SpeechLMError(
            f"wer: {len(references)} references but {len(hypotheses)} hypotheses; "
            "pass one hypothesis per reference")
    refs, hyps = [], []
    for r, h in zip(references, hypotheses, strict=True):
        r = normalize_text(r)
        if r:
            refs.append(r)
            hyps.append(normalize_text(h))
    if not refs:
        raise SpeechLMError("wer: every reference is empty; WER needs reference words")
    return refs, hyps


def _to_asr_rate(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    if wav.ndim != 1:
        raise AudioError(f"asr: expected a mono waveform, got shape {wav.shape}; "
                         "mix it down to one channel first")
    if sample_rate != ASR_SAMPLE_RATE:
        import soxr

        wav = soxr.resample(wav, sample_rate, ASR_SAMPLE_RATE).astype(np.float32)
    return wav


def _condition(wav: np.ndarray) -> np.ndarray:
    pad = np.zeros(int(PAD_SECONDS * ASR_SAMPLE_RATE), dtype=np.float32)
    wav = np.concatenate([pad, wav, pad])
    noise = np.random.default_rng(0).standard_normal(len(wav)).astype(np.float32)
    return wav + NOISE_FLOOR * noise


def _clean_hypothesis(text: str) -> str:
    words = [w for w in text.split() if not _FILLER.match(w)]
    # alternate pronunciations come back as word(2)
    words = [re.sub(r"\(\d+\)$", "", w) for w in words]
    return " ".join(words).lower()
