"""Zero-shot TTS on held-out voices and sentences, judged by listening machines.

Each item is a held-out utterance (its text is the sentence to say, its audio the ground truth)
and a *prompt*: another utterance by the same held-out voice, with its transcript, as VALL-E's
3-second enrolment. Every kind of audio is written as ``OUT/<kind>/<item id>.wav`` and scored
by ``speechlm eval speech`` against the ground truth (WER and CER through the domain ASR,
speaker similarity to the same speaker's reference, DNSMOS), plus the speaker similarity to the
prompt itself (``prompt_similarity``: what zero-shot TTS promises):

- ``original``: the ground truth (the ASR's own floor);
- ``resynth``: the ground truth through the model's codec (the upper bound of a codec LM);
- one kind per model given (``tts`` for VALL-E, ``tts_delayed`` for the delay-pattern model).

Sentences of the training manifest are left out of the items, so they are held-out sentences as
well as held-out voices.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from speechlm.errors import SpeechLMError
from speechlm.generate.tts import TtsSettings

SAMPLE_RATE = 16000  # what the listening machines read


def pick_items(utts: list, n_items: int, seed: int, exclude_texts: set[str],
               max_seconds: float, prompt_seconds: tuple[float, float]) -> list[tuple]:
    """(target, prompt) pairs: targets up to ``max_seconds`` whose text is not excluded, each
    with another utterance of its speaker lasting ``prompt_seconds`` (min, max) as the prompt;
    speakers take turns, the choice seeded."""
    rng = random.Random(seed)
    by_speaker: dict[str, list] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker or "", []).append(u)
    queues = {}
    for spk, us in sorted(by_speaker.items()):
        targets = [u for u in us if u.duration <= max_seconds
                   and u.text.strip().lower() not in exclude_texts]
        prompts = [u for u in us if prompt_seconds[0] <= u.duration <= prompt_seconds[1]]
        rng.shuffle(targets)
        rng.shuffle(prompts)
        queues[spk] = (targets, prompts)
    items: list[tuple] = []
    while len(items) < n_items and any(t for t, _ in queues.values()):
        for targets, prompts in queues.values():
            if not targets or len(items) >= n_items:
                continue
            target = targets.pop()
            prompt = next((p for p in prompts if p.id != target.id), None)
            if prompt is not None:
                prompts.remove(prompt)
                prompts.append(prompt)  # reused last: spread prompts over the items
                items.append((target, prompt))
    return items


def evaluate_tts(models: Mapping[str, str | Path], manifest: str | Path, out_dir: str | Path,
                 train_manifest: str | Path | None = None, n_items: int = 40, seed: int = 0,
                 settings: TtsSettings | None = None, max_seconds: float = 6.0,
                 prompt_seconds: tuple[float, float] = (2.0, 5.0),
                 progress: bool = True) -> dict:
    """Speak ``n_items`` held-out items with each model (``{kind: model dir}``) and score them
    with the codec round trip and the ground truth (module docstring); writes ``tts.json``."""
    from speechlm.audio import load_audio, save_audio
    from speechlm.corpus.manifest import read_manifest, write_manifest
    from speechlm.evaluate.speech import evaluate_speech
    from speechlm.generate.tts import speak
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.progress import progress_bar
    from speechlm.speaker import voice_embedding
    from speechlm.tokenizers.reading import read_utterance
    from speechlm.tokenizers.streams import Streams

    out = Path(out_dir)
    settings = settings or TtsSettings()
    exclude = set()
    if train_manifest is not None:
        exclude = {u.text.strip().lower() for u in read_manifest(train_manifest) if u.text}
    utts = read_manifest(manifest)
    items = pick_items(utts, n_items, seed, exclude, max_seconds, prompt_seconds)
    if not items:
        raise SpeechLMError(f"{manifest}: no held-out item (a target up to {max_seconds:g} s with "
                            "an unseen sentence, and a prompt of the same speaker)")
    write_manifest(out / "items.jsonl", [t for t, _ in items])
    (out / "prompts.json").write_text(json.dumps(
        {t.id: {"prompt": p.id, "prompt_text": p.text} for t, p in items}, indent=2) + "\n")

    lms = {kind: load_speech_lm(d) for kind, d in models.items()}
    codec = next(iter(lms.values())).speech_tokenizer
    rate = int(codec.sample_rate)
    prompt_emb: dict[str, np.ndarray] = {}
    wavs: dict[str, dict[str, np.ndarray]] = {"original": {}, "resynth": {}, **{k: {} for k in lms}}
    for i, (target, prompt) in enumerate(progress_bar(items, unit="item", desc="tts",
                                                      disable=not progress)):
        truth = read_utterance(target, rate)
        wavs["original"][target.id] = truth
        codes = codec.encode([truth], rate)[0].codes
        wavs["resynth"][target.id] = codec.decode([Streams(codec.frame_rate, codes=codes)])[0]
        pw = read_utterance(prompt, rate)
        prompt_emb[target.id] = voice_embedding(read_utterance(prompt, SAMPLE_RATE), prompt.id)
        for kind, lm in lms.items():
            s = dataclasses.replace(settings, seed=settings.seed + i)
            wavs[kind][target.id] = speak(lm, target.text, pw, rate, prompt.text, s)

    summary: dict[str, dict] = {}
    for kind, by_id in wavs.items():
        for uid, w in by_id.items():
            save_audio(out / kind / f"{uid}.wav", w, rate)
        result = evaluate_speech(out / kind, manifest, out / "eval" / kind, progress=progress)
        agg = result["aggregate"]
        sims = []
        for row in result["files"]:
            try:
                emb = voice_embedding(load_audio(row["file"], SAMPLE_RATE), row["file"])
                sims.append(float(emb @ prompt_emb[row["id"]]))
            except SpeechLMError:
                continue
        summary[kind] = {"wer": agg.get("wer"), "cer": agg.get("cer"),
                         "speaker_similarity": agg.get("speaker_similarity"),
                         "prompt_similarity": float(np.mean(sims)) if sims else None,
                         "mos": agg.get("dnsmos_ovrl"),
                         "seconds": float(np.mean([len(w) / rate for w in by_id.values()])),
                         "n_scored": agg.get("n_scored"),
                         "same_speaker_similarity": agg.get("same_speaker_similarity"),
                         "different_speaker_similarity": agg.get("different_speaker_similarity")}
    record = {"n_items": len(items), "settings": dataclasses.asdict(settings), "models": {
        k: str(v) for k, v in models.items()}, "speech": summary}
    (out / "tts.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
