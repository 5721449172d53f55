"""Real-time server under load: N sessions stream speech at once; step time and latency.

Serves the model dir's engine in-process on a free loopback port (or targets a running
``speechlm serve`` with --url), opens --sessions WebSocket clients that each stream --seconds of
espeak speech with pauses in 20-ms messages at real time, and prints per session and overall:
the server's step time (model compute per frame) and latency (a frame's last sample arriving ->
its output sent) as p50/p90/p99, the ratio step time / frame period (< 1 keeps up), and the
client's round trip (a frame's last sample sent -> its output received).

    .venv/bin/python bench/realtime_load.py --model RUN/model [--sessions 4] [--seconds 10]
    .venv/bin/python bench/realtime_load.py --url ws://127.0.0.1:8000/ws --sessions 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass, field

import numpy as np
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


@dataclass
class SessionResult:
    expected: int  # output frames the input completes
    frames: int = 0
    audio: bytearray = field(default_factory=bytearray)
    events: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    round_trip: list[float] = field(default_factory=list)  # seconds, one per frame
    stats: dict = field(default_factory=dict)  # the server's, asked for at the end


async def stream_session(url: str, pcm: np.ndarray, sample_rate: int, chunk_s: float = 0.02,
                         speed: float = 1.0) -> SessionResult:
    """Stream float32 ``pcm`` in ``chunk_s`` messages (``speed`` x real time, 0: at once)."""
    async with connect(url, max_size=None, compression=None) as ws:
        await ws.send(json.dumps({"type": "hello", "sample_rate": sample_rate, "format": "f32"}))
        ready = json.loads(await ws.recv())
        if ready.get("type") != "ready":
            return SessionResult(expected=0, errors=[ready])
        frame = ready["frame_samples"]
        res = SessionResult(expected=len(pcm) // frame)
        chunk = max(1, int(round(chunk_s * sample_rate)))
        sent: list[tuple[int, float]] = []  # (input sample end, send time)

        async def sender() -> None:
            t0 = time.perf_counter()
            for i, start in enumerate(range(0, len(pcm), chunk)):
                if speed:
                    await asyncio.sleep(max(0.0, t0 + i * chunk_s / speed - time.perf_counter()))
                sent.append((min(start + chunk, len(pcm)), time.perf_counter()))
                await ws.send(pcm[start:start + chunk].astype("<f4").tobytes())

        task = asyncio.create_task(sender())
        at = 0
        try:
            while res.frames < res.expected:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    res.frames += 1
                    res.audio += msg
                    end = res.frames * frame
                    while sent[at][0] < end:
                        at += 1
                    res.round_trip.append(time.perf_counter() - sent[at][1])
                    continue
                m = json.loads(msg)
                if m["type"] == "event":
                    res.events.append(m)
                elif m["type"] == "error":
                    res.errors.append(m)
            await ws.send(json.dumps({"type": "stats"}))
            while not res.stats:  # the last frame's events come before the stats reply
                m = json.loads(await ws.recv())
                if m["type"] == "stats":
                    res.stats = m
                elif m["type"] == "event":
                    res.events.append(m)
        except ConnectionClosed:
            pass  # a fatal error closed it: res.errors says why
        finally:
            task.cancel()
        return res


async def run_sessions(url: str, inputs: list[np.ndarray], sample_rate: int,
                       chunk_s: float = 0.02, speed: float = 1.0) -> list[SessionResult]:
    """One concurrent client per input."""
    return list(await asyncio.gather(*(stream_session(url, pcm, sample_rate, chunk_s, speed)
                                       for pcm in inputs)))


def report(results: list[SessionResult], frame_ms: float | None = None) -> dict:
    """Print and return per-session figures, the worst session's, and pooled round trips."""
    keys = ("step_ms", "latency_ms", "round_trip_ms")
    rows = [{"session": str(i), "frames": f"{r.frames}/{r.expected}",
             "errors": [e.get("reason") for e in r.errors],
             "step_ms": r.stats.get("step_ms", {}), "latency_ms": r.stats.get("latency_ms", {}),
             "round_trip_ms": _percentiles(r.round_trip)} for i, r in enumerate(results)]
    worst = {"session": "worst", "frames": "", "errors": []}
    worst.update({k: {p: max((r[k].get(p, 0) for r in rows), default=0)
                      for p in ("p50", "p90", "p99")} for k in keys})
    pooled = {"session": "all", "frames": f"{sum(r.frames for r in results)}/"
                                          f"{sum(r.expected for r in results)}", "errors": [],
              "step_ms": {}, "latency_ms": {},
              "round_trip_ms": _percentiles([t for r in results for t in r.round_trip])}
    print(f"{'session':>7} {'frames':>11} | {'step ms p50/p90/p99':>22} | "
          f"{'latency ms p50/p90/p99':>24} | {'round trip ms p50/p90/p99':>26} | errors")
    for row in [*rows, worst, pooled]:
        print(f"{row['session']:>7} {row['frames']:>11} | {_ppp(row['step_ms']):>22} | "
              f"{_ppp(row['latency_ms']):>24} | {_ppp(row['round_trip_ms']):>26} | "
              f"{','.join(row['errors']) or '-'}")
    summary = {"sessions": rows, "worst": worst, "round_trip_ms": pooled["round_trip_ms"]}
    if frame_ms:
        summary["step_ratio_p50_p99"] = [round(worst["step_ms"][p] / frame_ms, 4)
                                         for p in ("p50", "p99")]
        print(f"step time / frame period ({frame_ms:.1f} ms), worst session: "
              f"p50 {summary['step_ratio_p50_p99'][0]:.3f}, "
              f"p99 {summary['step_ratio_p50_p99'][1]:.3f} (below 1 keeps up with real time)")
    return summary


def _percentiles(seconds: list[float]) -> dict:
    if not seconds:
        return {}
    p = np.percentile(seconds, [50, 90, 99]) * 1000
    return {"n": len(seconds), "p50": round(float(p[0]), 3), "p90": round(float(p[1]), 3),
            "p99": round(float(p[2]), 3)}


def _ppp(p: dict) -> str:
    return "/".join(f"{p[k]:.1f}" for k in ("p50", "p90", "p99")) if "p50" in p else "-"


def speech(seconds: float, sample_rate: int, seed: int) -> np.ndarray:
    """Espeak sentences separated by pauses (the model's cue to answer), ``seconds`` long."""
    from speechlm.corpus.espeak import Espeak

    rng = np.random.default_rng(seed)
    lines = ["what time is it", "tell me a story about the sea", "can you hear me",
             "what is the weather like today", "please say that again"]
    parts, n = [], int(seconds * sample_rate)
    while sum(map(len, parts)) < n:
        said = Espeak.get().speak(lines[rng.integers(len(lines))], "en-us",
                                  sample_rate=sample_rate, seed=int(rng.integers(1 << 16)))
        parts += [said.wav, np.zeros(int(rng.uniform(0.8, 2.0) * sample_rate), np.float32)]
    return np.concatenate(parts)[:n].astype(np.float32)


def step_vs_recompute(model, frames: int = 200, context: int = 250) -> dict:
    """The fast path against its baseline, in this run, on one thread: a frame by the KV-cache
    step (``DuplexLM.step``) against a frame by a full forward over the last ``context``
    frames (what a model without a streaming step must run each frame)."""
    import torch

    n, text = model.config.n_units, model.config.n_text
    g = torch.Generator().manual_seed(0)
    streams = [torch.randint(0, m, (1, context + frames), generator=g) for m in (n, n, text)]
    with torch.inference_mode(), model.streaming(1) as state:
        for t in range(context):  # a full context first: the step attends over as much
            model.step(state, *(s[:, t] for s in streams))
        t0 = time.perf_counter()
        for t in range(context, context + frames):
            model.step(state, *(s[:, t] for s in streams))
        step = (time.perf_counter() - t0) / frames
        t0 = time.perf_counter()
        for t in range(context, context + frames):
            model(*(s[:, t - context + 1:t + 1] for s in streams))
        full = (time.perf_counter() - t0) / frames
    return {"step_ms": round(step * 1e3, 3), "recompute_ms": round(full * 1e3, 3),
            "speedup": round(full / step, 2), "context_frames": context}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="model directory (the engine runs in this process)")
    ap.add_argument("--url", help="a running server's WebSocket, instead of --model")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0, help="audio streamed per session")
    ap.add_argument("--chunk-ms", type=float, default=20.0, help="audio per message")
    ap.add_argument("--speed", type=float, default=1.0, help="x real time; 0 sends at once")
    ap.add_argument("--sample-rate", type=int, default=16000, help="with --url only")
    ap.add_argument("--device", default="cpu", help="with --model: cpu or cuda")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    if bool(args.model) == bool(args.url):
        ap.error("give --model or --url")

    async def go(url: str, sample_rate: int) -> list[SessionResult]:
        inputs = [speech(args.seconds, sample_rate, seed=i) for i in range(args.sessions)]
        return await run_sessions(url, inputs, sample_rate, args.chunk_ms / 1000, args.speed)

    t0 = time.perf_counter()
    if args.url:
        results = asyncio.run(go(args.url, args.sample_rate))
    else:
        import torch

        from speechlm.realtime.engine import load_engine
        from speechlm.realtime.server import ServerConfig, serve_in_thread

        torch.set_num_threads(1)  # as `speechlm serve` runs its sessions
        engine = load_engine(args.model, device=args.device)
        fast = step_vs_recompute(engine.model)
        print(f"model step with its KV cache {fast['step_ms']} ms/frame vs a full forward over "
              f"the last {fast['context_frames']} frames {fast['recompute_ms']} ms/frame: "
              f"{fast['speedup']}x")
        # the queue limit is lifted so that a slow model shows its latency instead of a flood
        config = ServerConfig(max_queued_s=3600, max_sessions=max(32, args.sessions),
                              stats_interval_s=0)
        with serve_in_thread(engine, config=config) as server:
            results = asyncio.run(go(f"ws://127.0.0.1:{server.port}/ws", engine.sample_rate))
    frame_ms = next((r.stats["frame_ms"] for r in results if r.stats), None)
    summary = report(results, frame_ms)
    if not args.url:
        summary["step_vs_recompute"] = fast
    summary.update(sessions_n=args.sessions, seconds=args.seconds, speed=args.speed,
                   wall_s=round(time.perf_counter() - t0, 2))
    print(json.dumps({k: v for k, v in summary.items() if k != "sessions"}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
