"""The one ``speechlm`` command; each package contributes its sub-commands from its ``cli`` module.

Sub-command modules keep heavy imports (torch, transformers) inside the command functions so that
``speechlm --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from speechlm.codec.cli import codec_app
from speechlm.corpus.cli import corpus_app, synth_app
from speechlm.evaluate.cli import eval_app
from speechlm.generate.cli import chat, generate, resynth, tts, viola
from speechlm.realtime.cli import serve
from speechlm.recipes.cli import run
from speechlm.ssl.cli import ssl_app
from speechlm.tokenizers.cli import tokenize, tokenizer_app
from speechlm.train.cli import train
from speechlm.vocoders.cli import vocoder_app

app = typer.Typer(
    help="speechlm: train, evaluate and run Speech Language Models (GSLM, TWIST, ...).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(synth_app, name="synth", help="Make synthetic speech corpora and benchmark sets.")
app.add_typer(corpus_app, name="corpus", help="Import audio corpora into manifests.")
app.add_typer(tokenizer_app, name="tokenizer", help="Fit and inspect speech tokenizers.")
app.command("tokenize")(tokenize)
app.command("train")(train)
app.add_typer(eval_app, name="eval", help="Zero-shot evaluation (sWUGGY, sBLIMP, StoryCloze...).")
app.add_typer(vocoder_app, name="vocoder", help="Train unit-to-speech vocoders.")
app.add_typer(ssl_app, name="ssl",
              help="Pre-train self-supervised speech encoders (HuBERT, wav2vec 2.0, CPC).")
app.add_typer(codec_app, name="codec", help="Train neural audio codecs (DAC, residual VQ).")
app.command("generate")(generate)
app.command("resynth")(resynth)
app.command("tts")(tts)
app.command("viola")(viola)
app.command("chat")(chat)
app.command("run")(run)
app.command("serve")(serve)


def main() -> None:
    """Entry point: a ``SpeechLMError`` becomes a one-line cause on stderr and exit status 1.

    So does an ``OSError`` (a read-only or full disk, a file where a folder is needed): it names
    the path, whichever stage hit it.
    """
    import os

    from speechlm.errors import SpeechLMError

    # TRL's trainers report usage to the hub unless told not to; speechlm sends nothing
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        app()
    except SpeechLMError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except OSError as e:
        print(f"error: {os_error_message(e)}", file=sys.stderr)
        sys.exit(1)


def os_error_message(e: OSError) -> str:
    """``path: what went wrong`` for a file-system error, with the fix where there is one."""
    import errno

    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f) or "file system"
    hint = {errno.ENOSPC: "the disk is full; free space or write elsewhere",
            errno.EROFS: "read-only file system; write elsewhere (--out)",
            errno.EACCES: "permission denied; write elsewhere (--out) or fix the permissions",
            errno.ENOTDIR: "a file stands where a folder is needed; choose another --out",
            errno.EEXIST: "a file stands where a folder is needed; choose another --out",
            }.get(e.errno, e.strerror or str(e))
    return f"{where}: {hint}"


if __name__ == "__main__":
    main()
