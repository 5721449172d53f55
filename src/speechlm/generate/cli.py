"""``speechlm generate`` (continue spoken prompts), ``speechlm resynth`` (tokenizer + vocoder)."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def generate(
    model: Path = typer.Option(..., "--model", help="Model directory (with speech_tokenizer/)."),
    prompt: list[Path] = typer.Option(None, "--prompt", help="Prompt audio (repeat for a batch)."),
    out: Path = typer.Option(..., "--out", help="out.wav for one prompt, a folder for several."),
    prompt_list: Path | None = typer.Option(None, "--prompt-list",
                                            help="Text file with one prompt path per line."),
    temperature: float = typer.Option(1.0, "--temperature"),
    top_k: int = typer.Option(0, "--top-k", help="0 disables top-k filtering."),
    top_p: float = typer.Option(1.0, "--top-p"),
    max_seconds: float = typer.Option(10.0, "--max-seconds", help="Length cap of a continuation."),
    min_seconds: float | None = typer.Option(
        None, "--min-seconds",
        help="End of sequence is not sampled before this much speech (default: 1 s, or "
             "--max-seconds when shorter); 0 lets the model stop at once."),
    seed: int = typer.Option(0, "--seed"),
    repetition_penalty: float = typer.Option(
        1.0, "--repetition-penalty",
        help="Penalise every unit already in the prompt or the continuation (CTRL: a positive "
             "logit is divided by it, a negative one multiplied); 1.0 is off, 1.2 is usual."),
    vocoder: Path | None = typer.Option(None, "--vocoder",
                                        help="Vocoder dir (default MODEL/vocoder)."),
    batch_size: int = typer.Option(8, "--batch-size"),
    with_prompt: bool = typer.Option(False, "--with-prompt",
                                     help="Prepend the prompt audio to the written continuation."),
    device: str = typer.Option("cpu", "--device"),
    fixed_channel: str | None = typer.Option(
        None, "--fixed-channel",
        help="dgslm, stereo prompt: keep this channel (a or b) as recorded over its last "
             "--max-seconds and generate only the other; without it both channels continue."),
) -> None:
    """Continue spoken prompts with a speech LM; writes audio and the units as JSON.

    A two-channel model (dgslm) continues a stereo prompt into a stereo file.
    """
    from speechlm.generate.batch import generate_files

    prompts = list(prompt or [])
    if prompt_list is not None:
        from speechlm.errors import SpeechLMError

        if not prompt_list.is_file():
            raise SpeechLMError(f"{prompt_list}: prompt list not found")
        base = prompt_list.parent
        prompts += [Path(p) if Path(p).is_absolute() else base / p
                    for p in prompt_list.read_text().split("\n") if p.strip()]
    summary = generate_files(
        model, prompts, out, temperature=temperature, top_k=top_k, top_p=top_p,
        max_seconds=max_seconds, seed=seed, vocoder=vocoder, batch_size=batch_size,
        min_seconds=min(1.0, max_seconds) if min_seconds is None else min_seconds,
        with_prompt=with_prompt, device=device, repetition_penalty=repetition_penalty,
        fixed_channel=_channel(fixed_channel),
    )
    typer.echo(json.dumps(summary))


def _channel(name: str | None) -> int | None:
    if name is None:
        return None
    if name.lower() not in ("a", "b"):
        from speechlm.errors import SpeechLMError

        raise SpeechLMError(f"--fixed-channel: a or b (the stereo file's first or second "
                            f"channel), got {name!r}")
    return "ab".index(name.lower())


def resynth(
    input: Path = typer.Argument(..., help="Input audio."),
    output: Path = typer.Argument(..., help="Output audio (.wav)."),
    model: Path | None = typer.Option(None, "--model",
                                      help="Model directory (speech_tokenizer/ + vocoder/)."),
    tokenizer: Path | None = typer.Option(None, "--tokenizer", help="Tokenizer dir override."),
    vocoder: Path | None = typer.Option(None, "--vocoder", help="Vocoder dir override."),
) -> None:
    """Tokenise a file and vocode the tokens back (no language model): hear what units keep."""
    from speechlm.audio import load_audio, save_audio
    from speechlm.errors import SpeechLMError
    from speechlm.generate.continuation import has_units, no_unit_message, resynthesize
    from speechlm.tokenizers import load_tokenizer
    from speechlm.vocoders import load_vocoder

    if model is None and (tokenizer is None or vocoder is None):
        raise SpeechLMError("resynth: pass --model DIR, or both --tokenizer and --vocoder")
    tok_dir = tokenizer or model / "speech_tokenizer"
    voc_dir = vocoder or model / "vocoder"
    if not voc_dir.is_dir():
        raise SpeechLMError(f"{voc_dir}: no vocoder; fit one with `speechlm vocoder fit-fallback "
                            f"--manifest M --tokenizer {tok_dir} --out {voc_dir}`")
    tok = load_tokenizer(tok_dir)
    voc = load_vocoder(voc_dir)
    wav = load_audio(input, int(tok.sample_rate))
    streams, audio = resynthesize(tok, voc, wav, int(tok.sample_rate))
    if not has_units(streams):  # an empty file would look like a success
        raise SpeechLMError(f"{input}: {no_unit_message(len(wav) / tok.sample_rate)}")
    save_audio(output, audio, voc.sample_rate)
    typer.echo(json.dumps({"out": str(output), "units": int(len(streams.units)),
                           "seconds": round(len(audio) / voc.sample_rate, 3)}))


def tts(
    model: Path = typer.Option(..., "--model",
                               help="A valle, viola or codec_delayed model directory."),
    text: str = typer.Option(..., "--text", help="What to say."),
    prompt: Path | None = typer.Option(None, "--prompt",
                                       help="A few seconds of the voice to speak in (WAV)."),
    out: Path = typer.Option(..., "--out", help="Output WAV (a .json record is written beside)."),
    prompt_text: str | None = typer.Option(
        None, "--prompt-text",
        help="What the prompt says (default: transcribed by the bundled English ASR)."),
    temperature: float = typer.Option(1.0, "--temperature"),
    top_k: int = typer.Option(0, "--top-k", help="0 disables top-k filtering."),
    max_seconds: float | None = typer.Option(
        None, "--max-seconds", help="Length cap (default: 0.25 s per phoneme symbol)."),
    min_seconds: float | None = typer.Option(
        None, "--min-seconds",
        help="End of speech is not sampled before this (default: 0.03 s per phoneme symbol)."),
    seed: int = typer.Option(0, "--seed"),
    language: str = typer.Option("en-us", "--language",
                                 help="espeak-ng voice that phonemises the text."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Zero-shot text to speech with a codec LM (VALL-E, VioLA): TEXT in the voice of the
    prompt."""
    from speechlm.generate.tts import TtsSettings, tts_file

    record = tts_file(model, text, prompt, out, prompt_text,
                      TtsSettings(temperature=temperature, top_k=top_k, seed=seed,
                                  max_seconds=max_seconds, min_seconds=min_seconds,
                                  language=language), device)
    typer.echo(json.dumps(record))


def viola(
    model: Path = typer.Option(..., "--model", help="A viola model directory."),
    task: str = typer.Option(..., "--task", help="asr (speech -> text), st (speech -> "
                             "translated text) or mt (text -> translated text)."),
    audio: Path | None = typer.Option(None, "--audio", help="The speech (asr, st)."),
    text: str | None = typer.Option(None, "--text", help="The text to translate (mt)."),
    source: str = typer.Option("en", "--source", help="The input's language token."),
    target: str = typer.Option("es", "--target", help="The translation's language token."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Recognise or translate with a VioLA model; prints a JSON record with the output text.
    (Its TTS task is speechlm tts.)"""
    from speechlm.audio import load_audio
    from speechlm.generate.viola import viola_text
    from speechlm.models.speech_lm import load_speech_lm

    lm = load_speech_lm(model, device)
    rate = int(lm.speech_tokenizer.sample_rate)
    wav = None if audio is None else load_audio(audio, rate)
    out = viola_text(lm, task, wav, rate, text, source, target)
    typer.echo(json.dumps({"task": task, "source": source, "target": target,
                           "input": str(audio) if audio is not None else text, "output": out},
                          ensure_ascii=False))


def chat(
    model: Path = typer.Option(..., "--model",
                               help="An instruction-tuned model directory (speechgpt recipe)."),
    audio: Path | None = typer.Option(None, "--audio", help="The spoken question (any rate)."),
    text: str | None = typer.Option(None, "--text", help="A written question instead."),
    out: Path | None = typer.Option(None, "--out", help="Write the spoken answer here (WAV; "
                                    "a .json record is written beside it)."),
    mode: str | None = typer.Option(
        None, "--mode", help="chain (transcript, text answer, then speech), direct (speech "
        "only), omni or spectron; default: what the model was trained for."),
    max_seconds: float = typer.Option(6.0, "--max-seconds", help="Length cap of the spoken "
                                      "answer."),
    temperature: float = typer.Option(0.8, "--temperature", help="Sampling of the spoken "
                                      "answer's units (the text is greedy)."),
    top_k: int = typer.Option(20, "--top-k", help="0 disables top-k filtering."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the whole record as JSON."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Answer a spoken or written question: the text answer on stdout, the spoken one in
    --out."""
    from speechlm.audio import load_audio, save_audio
    from speechlm.errors import SpeechLMError
    from speechlm.generate.chat import reply
    from speechlm.models.speech_lm import load_speech_lm

    if (audio is None) == (text is None):
        raise SpeechLMError("give the question with --audio FILE or --text \"...\" (one)")
    lm = load_speech_lm(model, device)
    rate = int(lm.speech_tokenizer.sample_rate)
    wav = None if audio is None else load_audio(audio, rate)
    r = reply(lm, wav, rate, text, mode=mode, max_seconds=max_seconds, temperature=temperature,
              top_k=top_k, seed=seed, speak=out is not None)
    record = {"question": str(audio) if audio is not None else text, **r.record()}
    if out is not None:
        if r.audio is None or not len(r.audio):
            raise SpeechLMError(f"{out}: the model ended its spoken answer at once; nothing "
                                "to write (try another --seed)")
        save_audio(out, r.audio, r.sample_rate)
        record["out"] = str(out)
        out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    typer.echo(json.dumps(record) if as_json else r.text)
