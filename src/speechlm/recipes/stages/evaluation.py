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
from speechlm.errors import ConfigError
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


def _model_stage(conf) -> tuple[str, ...]:
    """The stage whose model an eval or generate stage uses (``model`` unless it says)."""
    return (conf.model,)



def _plan_eval(ctx: RunContext, conf: EvalConfig) -> dict:
    return {"scoring": f"{conf.scoring} of log-probabilities, batch {conf.batch_size}"}


STAGES.add("eval", Stage("eval", _run_eval, _plan_eval, config=EvalConfig,
                         needs=("benchmark",), extra_needs=_model_stage))


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
                if k not in ("prompt_seconds", "model")}


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
    units = [] if streams.units is None else np.asarray(streams.units).tolist()
    (out_dir / "continuation.json").write_text(json.dumps(
        {"prompt_id": utt.id, "prompt_text": utt.text, "prompt_seconds": conf.prompt_seconds,
         "units": units}, indent=1))
    return {"prompt_id": utt.id, "prompt_text": utt.text, "sample_rate": sr,
            "prompt_seconds": len(wav) / SAMPLE_RATE, "continuation_seconds": len(audio) / sr,
            "resynth_seconds": len(resynth) / sr,
            "audio": {name: str(path) for name, path in files.items()}}


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
                             needs=("data", "vocoder"), extra_needs=_model_stage))
