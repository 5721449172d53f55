"""The one ``speechlm`` command; each package contributes its sub-commands from its ``cli`` module.

Sub-command modules keep heavy imports (torch, transformers) inside the command functions so that
``speechlm --help`` stays fast.
"""

from __future__ import annotations

import sys

import typer

from speechlm.corpus.cli import corpus_app, synth_app
from speechlm.evaluate.cli import eval_app
from speechlm.generate.cli import generate, resynth
from speechlm.recipes.cli import run
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
app.command("generate")(generate)
app.command("resynth")(resynth)
app.command("run")(run)


def main() -> None:
    """Entry point: a ``SpeechLMError`` becomes a one-line cause on stderr and exit status 1."""
    from speechlm.errors import SpeechLMError

    try:
        app()
    except SpeechLMError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
