"""Run each task in a fresh process: the corpus makers' worker pool.

libespeak-ng keeps hidden state between utterances, so every synthesis task (a chunk of
utterances, a dialogue, a scenario) runs in a process of its own and the audio does not depend on
which worker made what. ``multiprocessing.Pool(maxtasksperchild=1)`` does that but can hang for
ever in ``terminate()`` while it replaces a finished worker (CPython gh-78178: a CI run hung 15
minutes at the end of a corpus), and a worker killed by the OS leaves its task waiting for ever;
``ProcessPoolExecutor(max_tasks_per_child=...)`` deadlocks on 3.11-3.13 (gh-115634). Starting
one ``forkserver`` process per task and reading its result from a pipe has neither problem: a
dead worker is an error naming it, and closing kills and joins what is still running.
"""

from __future__ import annotations

import ast
import multiprocessing as mp
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


class WorkerError(RuntimeError):
    """A task's process raised or died before it returned."""


def _run(fn: Callable, args: tuple, conn: Connection) -> None:
    try:
        result = (True, fn(*args))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it
        result = (False, traceback.format_exc())
    conn.send(result)
    conn.close()


class Task:
    """One task running in its own process; ``get`` waits for its result."""

    def __init__(self, process: mp.process.BaseProcess, conn: Connection, name: str):
        self.process, self.conn, self.name = process, conn, name
        self.done = False  # its result was read and its process reaped

    def get(self) -> Any:
        """The task's return value; raises ``WorkerError`` if it raised or its process died."""
        try:
            ok, value = self.conn.recv()
        except EOFError:  # the process ended without sending: killed or crashed
            self.process.join()
            raise WorkerError(f"{self.name}: worker process died (exit code "
                              f"{self.process.exitcode}) before returning") from None
        finally:
            self.conn.close()
        self.process.join()
        self.done = True
        if not ok:
            raise WorkerError(f"{self.name} failed in its worker:\n{value}")
        return value

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


class FreshProcesses:
    """Start one ``forkserver`` process per task; at most ``workers`` run when used via ``imap``.

    ``preload`` names modules the forkserver imports once, so a fresh process is cheap; the
    calling script's own top-level imports are added (see ``main_imports``). Use as a context
    manager: leaving it kills the tasks still running (their results are not needed).
    """

    def __init__(self, workers: int, preload: list[str]):
        self.workers = workers
        self.ctx = mp.get_context("forkserver")
        self.ctx.set_forkserver_preload([*preload, *main_imports()])
        self.running: list[Task] = []

    def submit(self, fn: Callable, *args: Any, name: str = "task") -> Task:
        """Start ``fn(*args)`` in a new process now; the caller bounds how many run at once."""
        recv, send = self.ctx.Pipe(duplex=False)
        process = self.ctx.Process(target=_run, args=(fn, args, send), daemon=True)
        process.start()
        send.close()  # the child holds the only writer: its death reads as EOF here
        task = Task(process, recv, name)
        # a task is kept until its result is read: one that exited unread still needs reaping
        self.running = [t for t in self.running if not t.done] + [task]
        return task

    def imap(self, fn: Callable, items: Iterable, name: Callable[[Any], str] = str
             ) -> Iterator[Any]:
        """``fn(item)`` for each item, in order, with up to ``workers`` processes at once."""
        items = iter(items)
        pending: deque[Task] = deque()
        while True:
            while len(pending) < self.workers:
                item = next(items, _END)
                if item is _END:
                    break
                pending.append(self.submit(fn, item, name=name(item)))
            if not pending:
                return
            yield pending.popleft().get()

    def close(self) -> None:
        """Kill and reap every task whose result was not read."""
        for task in self.running:
            task.kill()
        self.running = []

    def __enter__(self) -> FreshProcesses:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_END = object()


def main_imports() -> list[str]:
    """The loaded modules the calling script imports at its top level, for the forkserver.

    Every forkserver child re-runs the calling script (``__main__``) before its task, and
    Python < 3.14 ignores "__main__" in the preload list (CPython gh-137996). For the
    ``speechlm`` console script that re-imported torch in every child: synthesis ran at ~120
    instead of ~450 s of audio per second. With the script's imports preloaded, re-running it
    finds them in ``sys.modules``. Only modules this process already loaded are named, so the
    forkserver imports nothing new.
    """
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path:
        return []
    try:
        tree = ast.parse(Path(path).read_bytes())
    except (OSError, SyntaxError, ValueError):
        return []
    names: set[str] = set()
    todo = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                   ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))  # if/try/with blocks run on import
    return sorted(n for n in names if n in sys.modules)
