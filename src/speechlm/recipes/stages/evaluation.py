"""What the trained model does: ``eval`` (zero-shot benchmarks on held-out voices) and
``generate`` (a continuation of the longest held-out prompt, made audible).

Outputs: ``RUN/eval/`` (``speechlm eval all``'s layout) and ``RUN/generate/`` (``prompt.wav``,
``continuation.wav``, ``continuation.json``, and ``resynth.wav``: the prompt through the
tokenizer and vocoder alone, so a listener hears what the units keep apart from what the LM adds).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from speechlm.config import Config, at_least, choice, positive
from speechlm.errors import ConfigError, SpeechLMError
from speechlm.recipes.stages import STAGES, RunContext, Stage, config_values
from speechlm.recipes.stages.corpus import VALID

SAMPLE_RATE = 16000  # the prompt is read at the tokenizers' rate


@dataclass
class EvalConfig(Config):
    """``scoring``: sum (the ZeroSpeech baseline's) or mean log-probability; the report shows
    both, ``scoring`` picks the headline."""

    scoring: str = choice("sum", "sum", "mean")
    batch_size: int = positive(32)
    device: str | None = None
    model: str = choice("model", "model", "align")  # the stage whose model is evaluated


def _run_eval(ctx: RunContext, conf: EvalConfig, d: Path) -> dict:
    from speechlm.evaluate.suite import evaluate_all

    kwargs = {k: v for k, v in config_values(conf).items() if k != "model"}
    return evaluate_all(ctx.dir(conf.model), ctx.dir("benchmark"), d, **kwargs)


def model_stage(conf) -> tuple[str, ...]:
    """The stage whose model an eval, generate or style stage uses (``model`` unless it says)."""
    return (conf.model,)



def _plan_eval(ctx: RunContext, conf: EvalConfig) -> dict:
    return {"scoring": f"{conf.scoring} of log-probabilities, batch {conf.batch_size}"}


STAGES.add("eval", Stage("eval", _run_eval, _plan_eval, config=EvalConfig,
                         needs=("benchmark",), extra_needs=model_stage))


@dataclass
class GenerateConfig(Config):
    """The first ``prompt_seconds`` of the longest held-out utterance, continued by sampling."""

    prompt_seconds: float = positive(3.0)
    max_seconds: float = positive(10.0)
    temperature: float = positive(1.0)
    top_k: int = at_least(0, 0)  # 0: no top-k filtering
    top_p: float = positive(1.0)
    seed: int = 0
    min_seconds: float = at_least(0, 0.0)  # end-of-sequence is not sampled before this
    repetition_penalty: float = positive(1.0)  # > 1 discourages repeated units; 1.0: off
    model: str = choice("model", "model", "align")  # the stage whose model continues the prompt
    # held-out utterances resynthesised (tokenizer + vocoder) and scored by the ASR and the
    # speaker encoder beside their original audio; DNSMOS (~1 s a clip) scores the files the
    # stage writes. 0: no speech scores
    speech_utterances: int = at_least(0, 12)

    def validate(self) -> None:
        if self.top_p > 1:
            raise ConfigError(f"top_p: must be in (0, 1], got {self.top_p}")
        if not math.isfinite(self.repetition_penalty):
            raise ConfigError(f"repetition_penalty: must be a finite number > 0, "
                              f"got {self.repetition_penalty}")
        if self.min_seconds > self.max_seconds:
            raise ConfigError(f"min_seconds: must be <= max_seconds ({self.max_seconds:g}), "
                              f"got {self.min_seconds:g}")

    def sampling(self) -> dict:
        """The keyword arguments of ``continue_speech`` this stage passes."""
        return {k: v for k, v in config_values(self).items()
                if k not in ("prompt_seconds", "model", "speech_utterances")}


def continue_heldout_prompt(model_dir: Path, valid_manifest: Path, out_dir: Path,
                            conf: GenerateConfig) -> dict:
    """Continue the first ``prompt_seconds`` of the longest held-out utterance, and resynthesise
    it (tokenizer + vocoder, no LM); ``audio`` in the result names the files written."""
    import numpy as np

    from speechlm.audio import load_audio, save_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.generate import continue_speech
    from speechlm.generate.continuation import resolve_vocoder, resynthesize
    from speechlm.models import load_speech_lm

    utt = max(read_manifest(valid_manifest), key=lambda u: (u.duration, u.id))
    wav = load_audio(utt.audio, SAMPLE_RATE, utt.start, utt.end)
    wav = wav[: int(conf.prompt_seconds * SAMPLE_RATE)]
    lm = load_speech_lm(model_dir)
    vocoder = resolve_vocoder(lm)  # MODEL/vocoder, or a codec's own decoder
    streams, audio = continue_speech(lm, wav, SAMPLE_RATE, vocoder=vocoder, **conf.sampling())
    _, resynth = resynthesize(lm.speech_tokenizer, vocoder, wav, SAMPLE_RATE)
    sr = vocoder.sample_rate
    files = {name: out_dir / f"{name}.wav" for name in ("prompt", "continuation", "resynth")}
    save_audio(files["prompt"], wav, SAMPLE_RATE)
    save_audio(files["continuation"], audio, sr)
    save_audio(files["resynth"], resynth, sr)
    # every stream the model made (units; durations, F0, pitch, style for prosody models)
    made = {name: np.asarray(getattr(streams, name)).tolist() for name in streams.names()}
    (out_dir / "continuation.json").write_text(json.dumps(
        {"prompt_id": utt.id, "prompt_text": utt.text, "prompt_seconds": conf.prompt_seconds,
         "units": [], **made}, indent=1))
    info = {"prompt_id": utt.id, "prompt_text": utt.text, "sample_rate": sr,
            "prompt_seconds": len(wav) / SAMPLE_RATE, "continuation_seconds": len(audio) / sr,
            "resynth_seconds": len(resynth) / sr,
            "audio": {name: str(path) for name, path in files.items()}}
    if conf.speech_utterances:
        info |= speech_quality(lm.speech_tokenizer, vocoder, read_manifest(valid_manifest),
                               utt, files, out_dir, conf.speech_utterances)
    return info


def _prompt_words(utt, seconds: float) -> str | None:
    """The words spoken within the first ``seconds`` of ``utt`` (None without word times)."""
    if not utt.words:
        return None
    return " ".join(w for w, _, end in utt.words if end <= seconds + 0.05) or None


def speech_quality(tokenizer, vocoder, utts: list, prompt_utt, files: dict[str, Path],
                   out_dir: Path, n: int) -> dict:
    """The listening machines' figures: ``audio_metrics`` (per file written) and ``speech``
    (per kind: ``original`` and ``resynth`` WER, CER and speaker similarity over ``n`` held-out
    utterances, MOS of the prompt and of its resynthesis; ``continuation``).

    Held-out resynthesis is written to ``out_dir/resynth_heldout/`` and scored by
    ``evaluate_speech`` into ``out_dir/speech/``; the prompt's resynthesis is scored against
    the prompt (WER against the words inside it) and the continuation against the prompt's
    voice (speaker similarity; it has no reference text).
    """
    from dataclasses import replace

    from speechlm.audio import load_audio, save_audio
    from speechlm.evaluate.speech import Clip, evaluate_speech, score_clips
    from speechlm.generate.continuation import resynthesize

    texted = sorted((u for u in utts if u.text), key=lambda u: u.id)
    spread = {round(i * (len(texted) - 1) / max(1, n - 1)) for i in range(min(n, len(texted)))}
    pick = [texted[i] for i in sorted(spread)]  # spread over the held-out voices
    wav_dir, score_dir = out_dir / "resynth_heldout", out_dir / "speech"
    wav_dir.mkdir(parents=True, exist_ok=True)
    for u in pick:
        ref = load_audio(u.audio, SAMPLE_RATE, u.start, u.end)
        save_audio(wav_dir / f"{u.id}.wav", resynthesize(tokenizer, vocoder, ref, SAMPLE_RATE)[1],
                   vocoder.sample_rate)
    manifest = score_dir / "manifest.jsonl"
    score_dir.mkdir(parents=True, exist_ok=True)
    # every held-out transcript builds the ASR's LM (a few would make it recite them) and every
    # held-out utterance may serve the speaker baselines; only the picked ones have audio here
    manifest.write_text("".join(u.to_json() + "\n" for u in texted))
    try:
        agg = evaluate_speech(wav_dir, manifest, score_dir, metrics="wer,speaker",
                              progress=False)["aggregate"]
    except SpeechLMError:  # nothing scorable (e.g. a barely trained vocoder's silence): the
        # figures say so, the reasons are in speech.json; the continuation itself still stands
        agg = json.loads((score_dir / "speech.json").read_text())["aggregate"]

    prompt = load_audio(files["prompt"], SAMPLE_RATE)
    words = _prompt_words(prompt_utt, len(prompt) / SAMPLE_RATE)
    as_prompt = replace(prompt_utt, audio=str(files["prompt"]), text=words, start=None, end=None)
    clip = lambda name: Clip(files[name], load_audio(files[name], SAMPLE_RATE),  # noqa: E731
                             as_prompt, prompt)
    rows = score_clips([clip("resynth")], texted, score_dir,
                       "wer,speaker,mos" if words else "speaker,mos")
    rows += score_clips([clip("continuation")], texted, score_dir, "speaker,mos")
    by_file = {r["id"]: r for r in rows}
    r, c = by_file["resynth"], by_file["continuation"]
    figures = {
        "prompt": {"wer": r.get("ceiling_wer"), "mos": r.get("reference_dnsmos_ovrl")},
        "resynth": {"wer": r.get("wer"), "speaker_similarity": r.get("speaker_similarity"),
                    "mos": r.get("dnsmos_ovrl")},
        "continuation": {"speaker_similarity": c.get("speaker_similarity"),
                         "mos": c.get("dnsmos_ovrl")},
    }
    for name, row in (("resynth", r), ("continuation", c)):
        if "skipped" in row:
            figures[name]["skipped"] = row["skipped"]
    return {
        "speech": {
            "original": {"wer": agg.get("ceiling_wer"), "cer": agg.get("ceiling_cer"),
                         "speaker_similarity": agg.get("same_speaker_similarity"),
                         "mos": figures["prompt"]["mos"]},
            "resynth": {"wer": agg.get("wer"), "cer": agg.get("cer"),
                        "speaker_similarity": agg.get("speaker_similarity"),
                        "mos": figures["resynth"]["mos"]},
            "continuation": figures["continuation"],
            "utterances": agg["n_scored"], "skipped": agg["n_skipped"],
            "prompt_words": words,
        },
        "audio_metrics": figures,
    }


def _run_generate(ctx: RunContext, conf: GenerateConfig, d: Path) -> dict:
    info = continue_heldout_prompt(ctx.dir(conf.model), ctx.dir("data") / VALID, d, conf)
    info["audio"] = {name: ctx.rel(path) for name, path in info["audio"].items()}  # generate/...
    return info


def _plan_generate(ctx: RunContext, conf: GenerateConfig) -> dict:
    return {"continuation": f"{conf.prompt_seconds:g} s prompt -> up to {conf.max_seconds:g} s, "
                            f"temperature {conf.temperature:g}, top-k {conf.top_k}, "
                            f"top-p {conf.top_p:g}, repetition penalty "
                            f"{conf.repetition_penalty:g}"}


STAGES.add("generate", Stage("generate", _run_generate, _plan_generate, config=GenerateConfig,
                             needs=("data", "vocoder"), extra_needs=model_stage))
