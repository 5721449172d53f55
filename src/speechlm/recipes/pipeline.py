"""``speechlm run``: a recipe's stages, in the order it lists them, in one run directory.

Each stage writes ``RUN/<stage>/`` and a ``.done`` file holding its configuration (its own
settings and, recursively, those of the stages it reads), its wall time and its figures. A
finished stage is skipped when the run is started again; an interrupted stage starts over,
except those that resume by themselves (tokenisation, training, the HiFi-GAN). A finished stage
whose configuration has since changed is an error rather than a silent re-use of stale results.
Every path a record holds is relative to the run directory (absolute only outside it), so a
moved run directory resumes.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console

from speechlm.config import describe_changes
from speechlm.errors import ConfigError
from speechlm.recipes.config import Recipe
from speechlm.recipes.stages import STAGES, RunContext

console = Console(stderr=True)


class Run:
    """A run directory and its stage book-keeping."""

    def __init__(self, out: Path):
        self.out = Path(out).resolve()
        self.out.mkdir(parents=True, exist_ok=True)

    def stage(self, name: str, conf: dict, fn: Callable[[Path], dict | None]) -> dict:
        """Run ``fn(stage_dir)`` unless ``name`` already finished with the same ``conf``."""
        stage_dir = self.out / name
        done = stage_dir / ".done"
        conf = self.portable(conf)
        if done.exists():
            record = json.loads(done.read_text())
            if record["config"] != conf:
                raise ConfigError(
                    f"stage '{name}' in {self.out} finished with another configuration "
                    f"({describe_changes(record['config'], conf)}); use a new --out or delete "
                    f"{stage_dir}")
            console.print(f"[dim]- {name}: done ({record['seconds']:.0f}s), skipped[/dim]")
            return record
        console.rule(f"[bold]{name}")
        stage_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        info = fn(stage_dir) or {}
        record = {"config": conf, "seconds": time.perf_counter() - start,
                  "info": self.portable(info)}
        done.write_text(json.dumps(record, indent=1))
        return record

    def portable(self, value: Any) -> Any:
        """``value`` as plain JSON, any path inside the run directory made relative to it.

        Stages record relative paths already; this also catches the figures library functions
        return (a checkpoint that training resumed from, say).
        """
        root = str(self.out)

        def rel(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: rel(x) for k, x in v.items()}
            if isinstance(v, list):
                return [rel(x) for x in v]
            if isinstance(v, str) and (v == root or v.startswith(root + "/")):
                return v[len(root) + 1:] or "."
            return v

        return rel(json.loads(json.dumps(value, default=str)))


def stage_config(ctx: RunContext, name: str) -> dict:
    """What ``RUN/<name>/.done`` records: the settings of ``name`` and of every stage it reads,
    by section (``{"corpus": {...}, ..., "train": {...}}``)."""
    spec = STAGES.get(name)
    conf = ctx.conf(name)
    record: dict = {}
    for need in spec.needs_of(conf):
        record.update(stage_config(ctx, need))
    if spec.config is not None:
        record[spec.key] = spec.values(ctx, conf)
    return record


def plan_recipe(ctx: RunContext) -> dict[str, dict]:
    """Each stage's plan (no work done); raises ``ConfigError`` for what cannot run, naming
    the key with its section (``vocoder.hifigan: ...``)."""
    plans = {}
    for name in ctx.recipe.stages:
        spec = STAGES.get(name)
        try:
            plans[name] = spec.plan(ctx, ctx.conf(name))
        except ConfigError as e:
            raise ConfigError(f"{spec.key}.{e}") from None
    return plans


def run_recipe(recipe: Recipe, out: Path, manifest: Path | None = None) -> dict:
    """Run every stage of a loaded recipe into ``out``; returns the results dictionary."""
    ctx = RunContext(recipe, out, manifest)
    plan_recipe(ctx)  # what only shows with the inputs (a vocoder's hop) fails before any work
    run = Run(ctx.out)
    with run_lock(ctx.out):
        for name in recipe.stages:
            spec = STAGES.get(name)
            work = functools.partial(spec.run, ctx, ctx.conf(name))
            ctx.records[name] = run.stage(name, stage_config(ctx, name), work)
            if spec.finish is not None:
                spec.finish(ctx)
        from speechlm.recipes.report import write_report

        return write_report(ctx)


LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold ``RUN/.lock`` for the whole run; a second run on the same directory is refused.

    An advisory ``flock``: the kernel releases it when the holder ends, however it ends, so a
    killed run leaves no stale lock behind. The file names the holder for the message.
    """
    import fcntl
    import os
    import socket

    path = Path(out) / LOCK_FILE
    f = open(path, "a+")  # noqa: SIM115 - held open for the whole run
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ConfigError(f"{out} is in use by another speechlm run ({holder}); wait for it "
                              "to finish or use another --out") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        yield
    finally:
        f.close()
