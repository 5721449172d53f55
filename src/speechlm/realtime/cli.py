"""``speechlm serve``: talk to a duplex speech LM from a browser, over WebSocket."""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    model: Path = typer.Option(..., "--model",
                               help="Model directory of a duplex speech LM (speechlm run duplex)."),
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Interface to listen on; 0.0.0.0 serves the network (browsers "
                                  "allow the microphone only on localhost or behind HTTPS)."),
    port: int = typer.Option(..., "--port", help="TCP port of the page and the WebSocket."),
    max_sessions: int = typer.Option(32, "--max-sessions", help="Concurrent conversations."),
    max_queued_s: float = typer.Option(
        2.0, "--max-queued-s",
        help="A client whose audio waits longer than this for the model is closed (flood)."),
    workers: int = typer.Option(0, "--workers", help="Model threads; 0: one per core."),
    device: str = typer.Option("cpu", "--device", help="Where the model runs (cpu, cuda)."),
    stop_on_irq: bool = typer.Option(
        True, help="The interrupt token ends the model's turn at once (LSLM); off: its own "
        "units decide when it stops."),
) -> None:
    """Serve a model for live conversations: open http://HOST:PORT/ and press Start.

    The page streams the microphone to the model and plays its answers as they come.

    It shows a live transcript, the model's turn-taking events and its step time.

    Programs can talk to the WebSocket at /ws (protocol: speechlm.realtime.server).
    """
    from speechlm.errors import SpeechLMError

    if not model.is_dir():
        raise SpeechLMError(f"{model}: model directory not found")
    if not 0 <= port <= 65535:
        raise SpeechLMError(f"--port {port}: a TCP port is 0-65535")

    import asyncio
    import logging

    import torch

    from speechlm.realtime.engine import EngineSettings, load_engine
    from speechlm.realtime.server import ServerConfig, serve_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # sessions step in parallel worker threads, each a tiny per-frame job: one intra-op thread
    # each, or their thread pools fight over the cores
    torch.set_num_threads(1)
    engine = load_engine(model, EngineSettings(stop_on_irq=stop_on_irq), device=device)
    config = ServerConfig(max_sessions=max_sessions, max_queued_s=max_queued_s, workers=workers)
    typer.echo(f"serving {model} on http://{host}:{port}/ (Ctrl-C stops)", err=True)
    try:
        asyncio.run(serve_forever(engine, host, port, config))
    except KeyboardInterrupt:
        pass
    except OSError as e:  # a port in use or not ours to bind: not a file-system error
        raise SpeechLMError(f"{host}:{port}: {e.strerror or e}") from None
