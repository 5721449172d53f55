"""The WebSocket server around a scripted engine: protocol, bad input, isolation, load."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from scripted_engine import ScriptedEngine, bursts
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from speechlm.realtime.server import ErrorReason, RealtimeServer, ServerConfig

SR = 16000
QUIET = ServerConfig(stats_interval_s=0)  # stats only on request: replies are predictable


def _bench():
    path = Path(__file__).parents[2] / "bench" / "realtime_load.py"
    spec = importlib.util.spec_from_file_location("realtime_load", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["realtime_load"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def reference(engine: ScriptedEngine, pcm: np.ndarray) -> tuple[bytes, list[dict]]:
    """What a session of ``engine`` says to ``pcm`` outside the server: f32 audio, events."""
    session = engine.session()
    outputs = session.push(pcm)
    session.close()
    audio = b"".join(np.asarray(o.audio, "<f4").tobytes() for o in outputs)
    return audio, [{"type": "event", **e.to_dict()} for o in outputs for e in o.events]


@asynccontextmanager
async def running(engine: ScriptedEngine, config: ServerConfig = QUIET):
    async with RealtimeServer(engine, config).listen("127.0.0.1", 0) as server:
        yield server


@dataclass
class Reply:
    ready: dict = field(default_factory=dict)
    audio: bytearray = field(default_factory=bytearray)
    frames: int = 0
    events: list[dict] = field(default_factory=list)
    frames_before_event: list[int] = field(default_factory=list)
    stats: list[dict] = field(default_factory=list)


async def converse(port: int, pcm: np.ndarray, fmt: str = "f32", chunk_s: float = 0.02,
                   speed: float = 4.0) -> Reply:
    """Say ``pcm`` (``speed`` x real time) and collect every output frame, then the stats."""
    reply = Reply()
    async with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "sample_rate": SR, "format": fmt}))
        reply.ready = json.loads(await ws.recv())
        assert reply.ready["type"] == "ready", reply.ready
        expected = len(pcm) // reply.ready["frame_samples"]
        chunk = int(chunk_s * SR)
        data = (pcm.astype("<f4") if fmt == "f32"
                else np.round(np.clip(pcm, -1, 1) * 32767).astype("<i2"))

        async def send() -> None:
            for start in range(0, len(data), chunk):
                await ws.send(data[start:start + chunk].tobytes())
                await asyncio.sleep(chunk_s / speed)

        sender = asyncio.create_task(send())
        while reply.frames < expected:
            msg = await ws.recv()
            if isinstance(msg, bytes):
                reply.frames += 1
                reply.audio += msg
            else:
                m = json.loads(msg)
                assert m["type"] in ("event", "stats"), m
                if m["type"] == "event":
                    reply.events.append(m)
                    reply.frames_before_event.append(reply.frames)
                else:
                    reply.stats.append(m)  # periodic ones
        await sender
        await ws.send(json.dumps({"type": "stats"}))
        while True:  # the last frame's events, then the stats asked for
            m = json.loads(await ws.recv())
            if m["type"] == "stats":
                reply.stats.append(m)
                return reply
            reply.events.append(m)
            reply.frames_before_event.append(reply.frames)


async def expect_error(ws, reason: ErrorReason) -> dict:
    m = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert m["type"] == "error" and m["reason"] == reason.value, m
    return m


async def until(condition, timeout: float = 5.0) -> None:
    t0 = time.perf_counter()
    while not condition():
        assert time.perf_counter() - t0 < timeout, "timed out"
        await asyncio.sleep(0.01)


def test_happy_path_outputs_in_order():
    engine = ScriptedEngine()
    pcm = bursts([(0.2, 0.8)], 2.5)  # one query; the answer (1 s of tone) fits in the 2.5 s

    async def go() -> Reply:
        async with running(engine) as server:
            reply = await converse(server.port, pcm)
            await until(lambda: server.active == 0)
            return reply

    reply = asyncio.run(go())
    audio, events = reference(ScriptedEngine(), pcm)
    assert reply.ready == {"type": "ready", "sample_rate": 16000, "frame_rate": 50.0,
                           "frame_samples": 320, "format": "f32", "max_message_bytes": 64000,
                           "max_queued_s": 2.0}
    assert reply.frames == 125 and len(reply.audio) == 125 * 320 * 4
    assert bytes(reply.audio) == audio
    assert reply.events == events
    # 0.3 s of silence after the burst ends at 0.8 s: answer at 1.1 s, a word every 0.2 s
    assert [(e["kind"], e["time"]) for e in events[:2]] == [("answering", 1.1), ("word", 1.1)]
    assert [e["text"] for e in events[1:]] == ["hello", "there", "how", "can", "I"]
    # a frame's events follow its audio: the answer's frame is the 55th
    assert reply.frames_before_event[:2] == [55, 55]
    tone = np.frombuffer(bytes(reply.audio), "<f4")[55 * 320 - 320:105 * 320]
    assert np.abs(tone).max() == pytest.approx(0.3, abs=1e-3)
    stats = reply.stats[-1]
    assert stats["frames"] == 125 and stats["step_ms"]["n"] == 125
    assert stats["latency_ms"]["n"] == 125 and stats["latency_ms"]["p50"] >= 0
    assert engine.open == 0 and engine.samples_pushed == len(pcm)


def test_s16_format_in_and_out():
    engine = ScriptedEngine()
    pcm = bursts([(0.1, 0.5)], 1.6)

    async def go() -> Reply:
        async with running(engine) as server:
            return await converse(server.port, pcm, fmt="s16")

    reply = asyncio.run(go())
    assert reply.ready["format"] == "s16" and len(reply.audio) == 80 * 320 * 2
    _, events = reference(ScriptedEngine(), np.round(pcm * 32767) / 32768)
    assert reply.events == events and events[0]["kind"] == "answering"
    audio = np.frombuffer(bytes(reply.audio), "<i2") / 32767
    ref_audio = np.frombuffer(reference(ScriptedEngine(), pcm)[0], "<f4")
    assert np.abs(audio - ref_audio).max() < 2 / 32767


def test_interruption_and_silent_events():
    # a 60-ms blip is not a query (silent); a query; the user cuts into the answer at 1.4 s
    pcm = bursts([(0.1, 0.16), (0.6, 0.9), (1.4, 1.8)], 2.6)

    async def go() -> Reply:
        async with running(ScriptedEngine()) as server:
            return await converse(server.port, pcm)

    kinds = [e["kind"] for e in asyncio.run(go()).events if e["kind"] != "word"]
    assert kinds == ["silent", "answering", "interrupted", "answering"]


def test_bad_input_is_named_while_a_healthy_client_is_served():
    # a slow model (2 ms a frame) so that a flood piles up while a push is in flight
    engine = ScriptedEngine(delay_s=0.002)
    config = ServerConfig(stats_interval_s=0, max_queued_s=1.0)
    healthy_pcm = bursts([(0.2, 0.6)], 2.0)

    async def bad_clients(port: int) -> None:
        url = f"ws://127.0.0.1:{port}/ws"
        hello = json.dumps({"type": "hello", "sample_rate": SR, "format": "f32"})
        async with connect(url) as ws:  # recoverable mistakes: reported, connection kept
            await ws.send("{not json")
            await expect_error(ws, ErrorReason.BAD_JSON)
            await ws.send("[1, 2]")
            await expect_error(ws, ErrorReason.BAD_JSON)
            await ws.send(json.dumps({"type": "dance"}))
            await expect_error(ws, ErrorReason.UNKNOWN_TYPE)
            await ws.send(json.dumps({"type": "ready"}))
            await expect_error(ws, ErrorReason.UNKNOWN_TYPE)
            await ws.send(np.zeros(320, "<f4").tobytes())
            await expect_error(ws, ErrorReason.AUDIO_BEFORE_HELLO)
            await ws.send(json.dumps({"type": "hello", "sample_rate": 44100}))
            m = await expect_error(ws, ErrorReason.WRONG_SAMPLE_RATE)
            assert "16000" in m["message"] and m["fatal"] is False
            await ws.send(json.dumps({"type": "hello", "sample_rate": SR, "format": "mp3"}))
            await expect_error(ws, ErrorReason.BAD_FORMAT)
            await ws.send(hello)
            assert json.loads(await ws.recv())["type"] == "ready"
            await ws.send(hello)
            await expect_error(ws, ErrorReason.DUPLICATE_HELLO)
            await ws.send(b"\0" * 6)
            await expect_error(ws, ErrorReason.BAD_AUDIO)
            await ws.send(np.zeros(320, "<f4").tobytes())  # still serving: one frame back
            assert len(await asyncio.wait_for(ws.recv(), 5)) == 320 * 4
        async with connect(url, max_size=None) as ws:  # oversized: fatal, closed 1009
            await ws.send(hello)
            await ws.recv()
            await ws.send(np.zeros(SR + 1, "<f4").tobytes())
            m = await expect_error(ws, ErrorReason.FRAME_TOO_LARGE)
            assert "64000" in m["message"] and m["fatal"] is True
            await ws.wait_closed()
            assert ws.close_code == 1009
        async with connect(url, max_size=None) as ws:  # a flood: 5 s at once, fatal, 1008
            await ws.send(hello)
            await ws.recv()
            with contextlib.suppress(ConnectionClosed):  # the server may close mid-way
                for _ in range(25):
                    await ws.send(np.zeros(SR // 5, "<f4").tobytes())
            reasons = []
            with pytest.raises(ConnectionClosed):
                while True:
                    msg = await asyncio.wait_for(ws.recv(), 5)
                    if isinstance(msg, str):
                        reasons.append(json.loads(msg)["reason"])
            assert reasons == ["flood"] and ws.close_code == 1008

    async def go() -> tuple[Reply, RealtimeServer]:
        async with running(engine, config) as server:
            healthy = asyncio.create_task(converse(server.port, healthy_pcm, speed=1.0))
            await bad_clients(server.port)
            reply = await healthy
            await until(lambda: server.active == 0)
            return reply, server

    reply, server = asyncio.run(go())
    audio, events = reference(ScriptedEngine(), healthy_pcm)
    assert bytes(reply.audio) == audio and reply.events == events
    assert engine.open == 0 and engine.opened == 4 and not server.active


def test_engine_failure_is_named_and_others_go_on():
    class Fragile(ScriptedEngine):
        def session(self):
            session = super().session()
            if self.opened == 1:
                session.push = lambda pcm: 1 / 0
            return session

    engine = Fragile()

    async def go() -> Reply:
        async with running(engine) as server:
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send(json.dumps({"type": "hello", "sample_rate": SR}))
                await ws.recv()
                await ws.send(np.zeros(320, "<f4").tobytes())
                m = await expect_error(ws, ErrorReason.ENGINE_FAILED)
                assert "ZeroDivisionError" in m["message"]
                await ws.wait_closed()
                assert ws.close_code == 1011
            return await converse(server.port, bursts([], 0.5))

    assert asyncio.run(go()).frames == 25 and engine.open == 0


def test_busy_server_refuses_with_a_name():
    async def go() -> None:
        async with running(ScriptedEngine(), ServerConfig(max_sessions=1)) as server:
            url = f"ws://127.0.0.1:{server.port}/ws"
            async with connect(url) as first, connect(url) as second:
                await expect_error(second, ErrorReason.BUSY)
                await second.wait_closed()
                assert second.close_code == 1013
                await first.send(json.dumps({"type": "hello", "sample_rate": SR}))
                assert json.loads(await first.recv())["type"] == "ready"

    asyncio.run(go())


def test_sessions_are_isolated_and_a_dropped_one_leaks_nothing():
    engine = ScriptedEngine()
    a, b = bursts([(0.1, 0.5)], 2.0), bursts([(0.7, 1.2)], 2.0, amplitude=0.2)
    silence = np.zeros(SR, np.float32)

    async def go() -> tuple[Reply, Reply, Reply]:
        async with running(engine) as server:
            reply_a, reply_b = await asyncio.gather(converse(server.port, a),
                                                    converse(server.port, b))
            # mid-utterance drop: speech heard, the connection vanishes without a close frame
            async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send(json.dumps({"type": "hello", "sample_rate": SR}))
                await ws.recv()
                await ws.send(bursts([(0.0, 0.5)], 0.5).tobytes())
                await until(lambda: engine.samples_pushed >= len(a) + len(b) + SR // 2)
                ws.transport.abort()
            await until(lambda: server.active == 0 and engine.open == 0)
            # a new session must not answer the dropped one's utterance
            return reply_a, reply_b, await converse(server.port, silence)

    reply_a, reply_b, reply_c = asyncio.run(go())
    for reply, pcm in ((reply_a, a), (reply_b, b), (reply_c, silence)):
        audio, events = reference(ScriptedEngine(), pcm)
        assert bytes(reply.audio) == audio and reply.events == events
    assert reply_a.events[0]["time"] == 0.8 and reply_b.events[0]["time"] == 1.5
    assert reply_c.events == [] and not np.frombuffer(bytes(reply_c.audio), "<f4").any()


def test_disconnect_while_the_model_works_frees_the_session():
    engine = ScriptedEngine(delay_s=0.01)  # 0.5 s of audio: a 250-ms push

    async def go() -> RealtimeServer:
        async with running(engine) as server:
            for _ in range(3):
                async with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                    await ws.send(json.dumps({"type": "hello", "sample_rate": SR}))
                    await ws.recv()
                    await ws.send(bursts([(0.0, 0.5)], 0.5).tobytes())
                    await asyncio.sleep(0.05)  # the push is in flight
                    ws.transport.abort()
            await until(lambda: server.active == 0 and engine.open == 0)
            assert len(server.finished) == 3
            return server

    asyncio.run(go())
    assert engine.opened == 3 and engine.open == 0 and engine.overlaps == 0


def test_periodic_stats():
    async def go() -> Reply:
        async with running(ScriptedEngine(), ServerConfig(stats_interval_s=0.1)) as server:
            return await converse(server.port, bursts([], 1.0), speed=1.0)

    stats = asyncio.run(go()).stats
    assert len(stats) >= 4
    assert {"frames", "step_ms", "latency_ms", "step_ratio", "frame_ms"} <= set(stats[0])
    assert stats[-1]["frame_ms"] == 20.0 and stats[-1]["step_ms"]["n"] == 50


def test_http_serves_the_page_and_info():
    def get(url: str) -> tuple[int, str, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.headers["Content-Type"], r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers["Content-Type"], e.read()

    async def go() -> dict:
        async with running(ScriptedEngine()) as server:
            base = f"http://127.0.0.1:{server.port}"
            paths = ["/", "/app.js", "/capture-worklet.js", "/info", "/nope", "/../server.py",
                     "/ws"]
            return {p: await asyncio.to_thread(get, base + p) for p in paths}

    got = asyncio.run(go())
    assert got["/"][0] == 200 and got["/"][1].startswith("text/html")
    assert b'id="start"' in got["/"][2]
    assert got["/app.js"][:2] == (200, "text/javascript; charset=utf-8")
    assert got["/capture-worklet.js"][0] == 200
    assert json.loads(got["/info"][2]) == {"sample_rate": 16000, "frame_rate": 50.0,
                                           "frame_samples": 320, "ws_path": "/ws"}
    assert got["/nope"][0] == 404 and got["/../server.py"][0] == 404
    assert got["/ws"][0] == 426  # a plain GET of the WebSocket path asks for an upgrade


def test_load_four_sessions_at_real_time(capsys):
    bench = _bench()
    engine = ScriptedEngine()
    # 3 s each, every session a different query timing: each must get its own answer
    inputs = [bursts([(0.2 + 0.1 * i, 0.7 + 0.1 * i)], 3.0) for i in range(4)]

    async def go() -> list:
        async with running(engine, ServerConfig(stats_interval_s=0.5)) as server:
            return await bench.run_sessions(f"ws://127.0.0.1:{server.port}/ws", inputs, SR,
                                            chunk_s=0.02, speed=1.0)

    t0 = time.perf_counter()
    results = asyncio.run(go())
    wall = time.perf_counter() - t0
    for result, pcm in zip(results, inputs, strict=True):
        audio, events = reference(ScriptedEngine(), pcm)
        assert result.frames == result.expected == 150 and not result.errors
        assert bytes(result.audio) == audio and result.events == events
        assert result.stats["step_ms"]["n"] == 150 and result.stats["latency_ms"]["n"] == 150
        assert len(result.round_trip) == 150
    assert [r.events[0]["time"] for r in results] == [1.0, 1.1, 1.2, 1.3]
    assert engine.open == 0 and engine.opened == 4
    with capsys.disabled():  # the figures, for the log (timings are reported, not asserted)
        print()
        summary = bench.report(results, frame_ms=20.0)
        print(f"load: 4 sessions x 3 s at real time in {wall:.2f} s wall; worst p99 ms: "
              f"step {summary['worst']['step_ms']['p99']}, "
              f"latency {summary['worst']['latency_ms']['p99']}, "
              f"round trip {summary['worst']['round_trip_ms']['p99']}")


def test_cli_missing_model_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "speechlm.cli", "serve", "--model",
                        str(tmp_path / "none"), "--port", "0"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and r.stderr.strip() == f"error: {tmp_path / 'none'}: model " \
                                                     "directory not found"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("parent_ignores", [False, True])
def test_cli_serves_until_interrupted(tmp_path, sig, parent_ignores):
    # the real engine is swapped for the scripted one: this pins the command, not the model
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); from scripted_engine import ScriptedEngine\n"
        "import speechlm.realtime.engine as e; e.load_engine = lambda *a, **k: ScriptedEngine()\n"
        "from speechlm.cli import main; sys.argv = ['speechlm', *sys.argv[2:]]; main()\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # a background job's parent hands it SIGINT and SIGTERM ignored: it must stop all the same
    ignore = (lambda: [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)]
              ) if parent_ignores else None
    proc = subprocess.Popen([sys.executable, "-c", script, str(Path(__file__).parent), "serve",
                             "--model", str(tmp_path), "--port", str(port)],
                            stderr=subprocess.PIPE, text=True, preexec_fn=ignore)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/info", timeout=1) as r:
                    assert json.load(r)["sample_rate"] == SR
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "no server"
                time.sleep(0.1)
        proc.send_signal(sig)
        # shutdown waits at most SHUTDOWN_S (5 s) for connections, then the interpreter exits
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert f"on http://127.0.0.1:{port}/" in proc.stderr.read()


def test_a_client_stuck_mid_handshake_does_not_hold_the_shutdown(monkeypatch, caplog):
    import speechlm.realtime.server as srv

    monkeypatch.setattr(srv, "SHUTDOWN_S", 0.5)  # websockets would wait its 10-s open timeout

    async def go() -> None:
        async with RealtimeServer(ScriptedEngine()).listen("127.0.0.1", 0) as server:
            _, w = await asyncio.open_connection("127.0.0.1", server.port)
            w.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")  # never finishes its request
            await w.drain()
            await asyncio.sleep(0.2)

    with caplog.at_level("WARNING", logger="speechlm.realtime.server"):
        asyncio.run(go())
    assert "stopped with connections still closing" in caplog.text
