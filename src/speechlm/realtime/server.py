"""The real-time WebSocket server: I/O only, one engine ``Session`` per connection.

HTTP and WebSocket share one port. ``GET /`` serves the browser page (``static/``), ``GET /info``
the audio settings as JSON, and the WebSocket lives at ``/ws``.

Protocol (JSON text messages carry a ``type``, one of ``MessageType``; binary messages are audio):

client -> server
    ``{"type": "hello", "sample_rate": 16000, "format": "f32"}`` first; ``format`` is ``f32``
    (little-endian float32) or ``s16`` (little-endian int16), mono. ``sample_rate`` must equal
    the engine's: a wrong rate is refused (``wrong_sample_rate`` names the expected one) rather
    than resampled, so that the server's CPU goes to the model and the client, which has the
    audio, resamples once. A refused hello may be sent again, corrected.
    Then binary audio messages, any length up to ``max_message_bytes``, at real time.
    ``{"type": "stats"}`` at any time asks for a ``stats`` message.

server -> client
    ``{"type": "ready", "sample_rate", "frame_rate", "frame_samples", "format", ...}`` once the
    session is open. Then, per model frame, in order: one binary message with the frame's audio
    (``frame_samples`` samples in the hello's format, silence included, so the output keeps the
    input's clock), followed by one ``{"type": "event", "kind", "time", "text"}`` per event of
    that frame (``Event.to_dict``). ``{"type": "stats", ...}`` every ``stats_interval_s`` and on
    request: per-session step time (model compute per frame) and latency (a frame's last input
    sample arriving -> its output sent) as p50/p90/p99 in ms. ``{"type": "error", "reason",
    "message", "fatal"}`` with ``reason`` an ``ErrorReason``; after a fatal one the server
    closes the connection.

Malformed JSON, unknown types, audio before hello, a second hello and odd-length audio are
reported and the message dropped. A message over ``max_message_bytes`` (``frame_too_large``),
more than ``max_queued_s`` of audio waiting for the model (``flood``), a full server (``busy``)
and an engine failure are fatal. A disconnect, at any point, closes that session and frees it;
the other sessions go on.

Model work runs in a thread pool sized to the cores, one push in flight per session, so a slow
session delays only itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from speechlm.errors import ConfigError
from speechlm.realtime.events import Engine, Output, Session

log = logging.getLogger(__name__)

WS_PATH = "/ws"
SHUTDOWN_S = 5.0  # longest a stopping server waits for its connections to close
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # speechlm serve stops on either
_CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                  ".css": "text/css; charset=utf-8"}
_DTYPES = {"f32": np.dtype("<f4"), "s16": np.dtype("<i2")}


class MessageType(StrEnum):
    HELLO = "hello"  # client: opens the session
    READY = "ready"  # server: the session is open
    EVENT = "event"  # server: one Event of a frame
    STATS = "stats"  # client: asks; server: step time and latency percentiles
    ERROR = "error"  # server: a named refusal


class ErrorReason(StrEnum):
    BAD_JSON = "bad_json"  # a text message that is not a JSON object
    UNKNOWN_TYPE = "unknown_type"  # missing or unknown "type"
    AUDIO_BEFORE_HELLO = "audio_before_hello"
    DUPLICATE_HELLO = "duplicate_hello"
    BAD_FORMAT = "bad_format"  # hello's format is not f32 / s16
    WRONG_SAMPLE_RATE = "wrong_sample_rate"
    BAD_AUDIO = "bad_audio"  # byte count not a whole number of samples
    FRAME_TOO_LARGE = "frame_too_large"  # fatal
    FLOOD = "flood"  # fatal: audio arrives faster than the model consumes it
    BUSY = "busy"  # fatal: max_sessions are open
    ENGINE_FAILED = "engine_failed"  # fatal


_FATAL = {ErrorReason.FRAME_TOO_LARGE, ErrorReason.FLOOD, ErrorReason.BUSY,
          ErrorReason.ENGINE_FAILED}
# WebSocket close codes (RFC 6455): policy violation, message too big, try later, server error
_CLOSE_CODES = {ErrorReason.FRAME_TOO_LARGE: 1009, ErrorReason.FLOOD: 1008,
                ErrorReason.BUSY: 1013, ErrorReason.ENGINE_FAILED: 1011}


@dataclass
class ServerConfig:
    max_message_bytes: int = 0  # one binary message; 0: one second of f32 audio
    max_queued_s: float = 2.0  # audio waiting for the model before a flood is declared
    max_sessions: int = 32
    stats_interval_s: float = 1.0  # periodic stats; 0 sends them only on request
    workers: int = 0  # model threads; 0: the cores

    def __post_init__(self) -> None:
        for name, low in (("max_message_bytes", 0), ("max_queued_s", 1e-3), ("max_sessions", 1),
                          ("stats_interval_s", 0), ("workers", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"server {name}: at least {low}, got {getattr(self, name)}")


class Percentiles:
    """A bounded window of samples (seconds) reported as p50/p90/p99 in milliseconds."""

    def __init__(self, window: int = 10_000) -> None:
        self.values: deque[float] = deque(maxlen=window)

    def add(self, seconds: float) -> None:
        self.values.append(seconds)

    def summary(self) -> dict:
        if not self.values:
            return {"n": 0}
        p = np.percentile(np.fromiter(self.values, float), [50, 90, 99]) * 1000
        return {"n": len(self.values), "p50": round(float(p[0]), 3),
                "p90": round(float(p[1]), 3), "p99": round(float(p[2]), 3)}


class RealtimeServer:
    """Serves an ``Engine`` over WebSocket; ``async with server.listen(host, port)`` runs it."""

    def __init__(self, engine: Engine, config: ServerConfig | None = None) -> None:
        self.engine = engine
        self.config = config or ServerConfig()
        self.max_message_bytes = self.config.max_message_bytes or engine.sample_rate * 4
        self.pool: ThreadPoolExecutor | None = None  # made by listen()
        self.active = 0  # open connections holding (or about to hold) a session
        self.finished: deque[dict] = deque(maxlen=1000)  # last stats of closed sessions
        self.static = _load_static()
        self.port = 0

    @contextlib.asynccontextmanager
    async def listen(self, host: str = "127.0.0.1", port: int = 0):
        """Bind and serve until the block exits; ``self.port`` is the bound port (0: a free one)."""
        self.pool = ThreadPoolExecutor(self.config.workers or os.cpu_count() or 1,
                                       thread_name_prefix="speechlm-realtime")
        # websockets' own limit sits above ours so that ours answers with a named error
        server: Server = await serve(
            self._handle, host, port, process_request=self._http,
            max_size=self.max_message_bytes * 2 + 65536, compression=None)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            # a client stuck mid-handshake holds wait_closed up to websockets' open timeout
            # (10 s): a stopping server does not wait on it longer than SHUTDOWN_S
            try:
                await asyncio.wait_for(server.wait_closed(), SHUTDOWN_S)
            except TimeoutError:
                log.warning("stopped with connections still closing after %.0f s", SHUTDOWN_S)
            self.pool.shutdown(wait=True)

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """Plain HTTP on the same port: the page and /info; None lets /ws upgrade."""
        path = request.path.split("?", 1)[0]
        if path == WS_PATH:
            return None
        if path == "/info":
            info = {"sample_rate": self.engine.sample_rate, "frame_rate": self.engine.frame_rate,
                    "frame_samples": self.engine.frame_samples, "ws_path": WS_PATH}
            return _response(200, json.dumps(info).encode(), "application/json")
        name = "index.html" if path == "/" else path.lstrip("/")
        if name in self.static:
            body, ctype = self.static[name]
            return _response(200, body, ctype)
        return _response(404, b"not found\n", "text/plain; charset=utf-8")

    async def _handle(self, ws: ServerConnection) -> None:
        if self.active >= self.config.max_sessions:
            await _Connection.refuse(ws, ErrorReason.BUSY,
                                     f"{self.active} sessions are open; try again later")
            return
        self.active += 1
        conn = _Connection(self, ws)
        try:
            await conn.run()
        finally:
            await conn.cleanup()
            self.active -= 1
            self.finished.append(conn.stats())


class _Connection:
    """One client's state: its session, input queue and measurements; shared with no one."""

    def __init__(self, server: RealtimeServer, ws: ServerConnection) -> None:
        self.server, self.ws, self.engine = server, ws, server.engine
        self.loop = asyncio.get_running_loop()
        self.session: Session | None = None
        self.dtype = _DTYPES["f32"]
        self.queue: asyncio.Queue[tuple[float, np.ndarray]] = asyncio.Queue()
        self.queued = 0  # samples received and not yet pushed
        self.arrivals: deque[tuple[int, float]] = deque()  # (input sample end, arrival time)
        self.samples_in = 0
        self.frames_out = 0
        self.step = Percentiles()
        self.latency = Percentiles()
        self.worker: asyncio.Task | None = None
        self.inflight: asyncio.Future | None = None
        self.last_stats = time.perf_counter()
        self.send_lock = asyncio.Lock()
        self.closing: asyncio.Task | None = None  # set by a fatal error

    @staticmethod
    async def refuse(ws: ServerConnection, reason: ErrorReason, message: str) -> None:
        """A fatal error before the session opens: name it, close, drop what the client sent."""
        with contextlib.suppress(ConnectionClosed):
            await ws.send(_error(reason, message))
        closing = asyncio.create_task(_close(ws, reason))
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass
        await closing

    async def run(self) -> None:
        try:
            async for msg in self.ws:
                if self.closing is not None:
                    # after a fatal error, keep reading: websockets stops reading a socket whose
                    # messages pile up, and would then miss the client's close frame
                    continue
                if isinstance(msg, bytes):
                    await self.on_audio(msg)
                else:
                    await self.on_text(msg)
        except ConnectionClosed:
            pass  # a client that vanishes mid-utterance: cleanup() frees its session

    async def send(self, *messages: str | bytes) -> None:
        """Send as one group: a stats reply never falls between a frame's audio and events."""
        async with self.send_lock:
            for m in messages:
                await self.ws.send(m)

    async def fail(self, reason: ErrorReason, message: str) -> None:
        if reason not in _FATAL:
            return await self.send(_error(reason, message))
        if self.closing is None:
            with contextlib.suppress(ConnectionClosed):
                await self.send(_error(reason, message))
            self.closing = asyncio.create_task(_close(self.ws, reason))

    async def on_text(self, text: str) -> None:
        try:
            msg = json.loads(text)
        except ValueError as e:
            return await self.fail(ErrorReason.BAD_JSON, f"not JSON: {e}")
        if not isinstance(msg, dict):
            return await self.fail(ErrorReason.BAD_JSON, "a message is a JSON object")
        try:
            kind = MessageType(msg.get("type"))
        except ValueError:
            return await self.fail(ErrorReason.UNKNOWN_TYPE,
                                   f"type {msg.get('type')!r}: the client sends 'hello' or "
                                   "'stats'")
        if kind is MessageType.HELLO:
            await self.on_hello(msg)
        elif kind is MessageType.STATS:
            await self.send(json.dumps(self.stats()))
        else:
            await self.fail(ErrorReason.UNKNOWN_TYPE, f"type {kind.value!r} is sent by the server")

    async def on_hello(self, msg: dict) -> None:
        if self.session is not None:
            return await self.fail(ErrorReason.DUPLICATE_HELLO, "the session is already open")
        fmt, rate = msg.get("format", "f32"), msg.get("sample_rate")
        if fmt not in _DTYPES:
            return await self.fail(ErrorReason.BAD_FORMAT,
                                   f"format {fmt!r}: one of {', '.join(_DTYPES)}")
        if rate != self.engine.sample_rate:
            return await self.fail(ErrorReason.WRONG_SAMPLE_RATE,
                                   f"sample_rate {rate!r}: this server takes "
                                   f"{self.engine.sample_rate} Hz mono audio; resample it")
        self.dtype = _DTYPES[fmt]
        try:
            self.session = await self.loop.run_in_executor(self.server.pool, self.engine.session)
        except Exception as e:
            log.exception("engine could not open a session")
            return await self.fail(ErrorReason.ENGINE_FAILED, f"{type(e).__name__}: {e}")
        self.worker = asyncio.create_task(self.work())
        await self.send(json.dumps({
            "type": MessageType.READY.value, "sample_rate": self.engine.sample_rate,
            "frame_rate": self.engine.frame_rate, "frame_samples": self.engine.frame_samples,
            "format": fmt, "max_message_bytes": self.server.max_message_bytes,
            "max_queued_s": self.server.config.max_queued_s}))

    async def on_audio(self, data: bytes) -> None:
        arrival = time.perf_counter()
        if self.session is None:
            return await self.fail(ErrorReason.AUDIO_BEFORE_HELLO, "send hello first")
        if len(data) > self.server.max_message_bytes:
            return await self.fail(ErrorReason.FRAME_TOO_LARGE,
                                   f"{len(data)} bytes: at most "
                                   f"{self.server.max_message_bytes} per message")
        if len(data) % self.dtype.itemsize:
            return await self.fail(ErrorReason.BAD_AUDIO,
                                   f"{len(data)} bytes is not a whole number of "
                                   f"{self.dtype.itemsize}-byte samples")
        pcm = np.frombuffer(data, self.dtype)
        pcm = (pcm.astype(np.float32) / 32768 if self.dtype.kind == "i"
               else np.nan_to_num(pcm.astype(np.float32), nan=0.0, posinf=1.0, neginf=-1.0))
        self.queued += len(pcm)
        if self.queued > self.server.config.max_queued_s * self.engine.sample_rate:
            step = self.step.summary()
            return await self.fail(ErrorReason.FLOOD,
                                   f"{self.queued / self.engine.sample_rate:.2f} s of audio "
                                   f"queued (at most {self.server.config.max_queued_s} s): "
                                   "audio comes faster than real time or the model is slower "
                                   f"(step p50 {step.get('p50', 0)} ms per "
                                   f"{1000 / self.engine.frame_rate:.0f}-ms frame)")
        self.queue.put_nowait((arrival, pcm))

    async def work(self) -> None:
        """Push queued audio to the session, one call in flight, and send the outputs."""
        try:
            while self.closing is None:
                items = [await self.queue.get()]
                while not self.queue.empty():  # catch up in one call when behind
                    items.append(self.queue.get_nowait())
                for arrival, pcm in items:
                    self.samples_in += len(pcm)
                    self.arrivals.append((self.samples_in, arrival))
                pcm = np.concatenate([p for _, p in items])
                self.queued -= len(pcm)
                t0 = time.perf_counter()
                self.inflight = self.loop.run_in_executor(self.server.pool,
                                                          self.session.push, pcm)
                outputs = await asyncio.shield(self.inflight)
                if self.closing is not None:
                    return
                if outputs:
                    per_frame = (time.perf_counter() - t0) / len(outputs)
                    for _ in outputs:
                        self.step.add(per_frame)
                await self.send_outputs(outputs)
        except ConnectionClosed:
            pass
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the engine's: name it to the client, keep the server
            log.exception("engine failed")
            await self.fail(ErrorReason.ENGINE_FAILED, f"{type(e).__name__}: {e}")

    async def send_outputs(self, outputs: list[Output]) -> None:
        for out in outputs:
            self.frames_out += 1
            end = self.frames_out * self.engine.frame_samples  # the frame's last input sample
            while self.arrivals and self.arrivals[0][0] < end:
                self.arrivals.popleft()
            arrival = self.arrivals[0][1] if self.arrivals else time.perf_counter()
            audio = np.asarray(out.audio, np.float32)
            if self.dtype.kind == "i":
                audio = np.round(np.clip(audio, -1, 1) * 32767)
            events = [json.dumps({"type": MessageType.EVENT.value, **ev.to_dict()})
                      for ev in out.events]
            async with self.send_lock:
                await self.ws.send(audio.astype(self.dtype).tobytes())
                self.latency.add(time.perf_counter() - arrival)
                for m in events:
                    await self.ws.send(m)
        interval = self.server.config.stats_interval_s
        if interval and time.perf_counter() - self.last_stats >= interval:
            self.last_stats = time.perf_counter()
            await self.send(json.dumps(self.stats()))

    def stats(self) -> dict:
        step = self.step.summary()
        period_ms = 1000 / self.engine.frame_rate
        return {"type": MessageType.STATS.value, "frames": self.frames_out,
                "audio_in_s": round(self.samples_in / self.engine.sample_rate, 3),
                "queued_s": round(self.queued / self.engine.sample_rate, 3),
                "frame_ms": round(period_ms, 3), "step_ms": step,
                "step_ratio": round(step["p50"] / period_ms, 4) if step["n"] else None,
                "latency_ms": self.latency.summary()}

    async def cleanup(self) -> None:
        """Stop the worker, wait for a push in flight (the session is not thread-safe), close."""
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        if self.inflight is not None:
            with contextlib.suppress(Exception):
                await self.inflight
        if self.session is not None:
            await self.loop.run_in_executor(self.server.pool, self.session.close)
            self.session = None
        if self.closing is not None:
            await self.closing


async def _close(ws: ServerConnection, reason: ErrorReason) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.close(_CLOSE_CODES.get(reason, 1008), reason.value)


def _error(reason: ErrorReason, message: str) -> str:
    return json.dumps({"type": MessageType.ERROR.value, "reason": reason.value,
                       "message": message, "fatal": reason in _FATAL})


def _response(status: int, body: bytes, content_type: str) -> Response:
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(body))), ("Content-Type", content_type),
                       ("Cache-Control", "no-store")])
    return Response(status, "OK" if status == 200 else "Not Found", headers, body)


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files by name, read once: only these names are served (no path walking)."""
    root = resources.files("speechlm.realtime") / "static"
    return {f.name: (f.read_bytes(), _CONTENT_TYPES.get(os.path.splitext(f.name)[1],
                                                         "application/octet-stream"))
            for f in root.iterdir() if f.is_file()}


@contextlib.contextmanager
def serve_in_thread(engine: Engine, host: str = "127.0.0.1", port: int = 0,
                    config: ServerConfig | None = None) -> Iterator[RealtimeServer]:
    """Run the server on its own event loop in a thread (tests, benchmarks, notebooks)."""
    server = RealtimeServer(engine, config)
    started, stop = threading.Event(), None
    errors: list[BaseException] = []

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        try:
            async with server.listen(host, port):
                started.set()
                await stop.wait()
        except BaseException as e:  # a bind failure: re-raised in the caller
            errors.append(e)
            started.set()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    started.wait()
    if errors:
        raise errors[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


async def serve_forever(engine: Engine, host: str, port: int,
                        config: ServerConfig | None = None) -> None:
    """``speechlm serve``: run until SIGINT (Ctrl-C) or SIGTERM, then close every session."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    # our own handlers: a process started with these signals ignored or blocked (inherited
    # from its parent, as a background job's are) must still stop when told to
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop.set)
    server = RealtimeServer(engine, config)
    try:
        async with server.listen(host, port):
            log.info("serving on http://%s:%d/ (WebSocket at %s)", host, server.port, WS_PATH)
            await stop.wait()
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
