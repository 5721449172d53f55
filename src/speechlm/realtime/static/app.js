// speechlm real-time client: microphone -> WebSocket (/ws) -> speaker, with a live transcript,
// an event log and the server's step-time stats. The protocol is in speechlm/realtime/server.py.
"use strict";

const $ = (id) => document.getElementById(id);
const EVENT_LABELS = {
  answering: "answering", interrupted: "interrupted (you cut in)", silent: "silent (not a query)",
  backchannel: "backchannel", word: "word",
};

// Streaming resampler from the audio context's rate to the server's. Downsampling averages each
// output sample's window of input (a box filter: cheap anti-aliasing, enough for speech);
// upsampling interpolates linearly. State carries across blocks, so block edges add no clicks.
class Resampler {
  constructor(inRate, outRate) {
    this.step = inRate / outRate;
    this.rest = new Float32Array(0);
    this.pos = 0;
  }

  push(block) {
    const buf = new Float32Array(this.rest.length + block.length);
    buf.set(this.rest);
    buf.set(block, this.rest.length);
    const out = [];
    let pos = this.pos;
    if (this.step >= 1) {
      while (pos + this.step <= buf.length) {
        const a = Math.floor(pos), b = Math.floor(pos + this.step);
        let sum = 0;
        for (let i = a; i < b; i++) sum += buf[i];
        out.push(sum / Math.max(1, b - a));
        pos += this.step;
      }
    } else {
      while (Math.floor(pos) + 1 < buf.length) {
        const a = Math.floor(pos), f = pos - a;
        out.push(buf[a] * (1 - f) + buf[a + 1] * f);
        pos += this.step;
      }
    }
    const keep = Math.floor(pos);
    this.rest = buf.slice(keep);
    this.pos = pos - keep;
    return Float32Array.from(out);
  }
}

const client = {
  ws: null, ctx: null, stream: null, nodes: [], resampler: null,
  info: null, pending: [], pendingLength: 0, playAt: 0,
  txSamples: 0, rxFrames: 0, rxSamples: 0,
};

function setStatus(state, text) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = text || state;
}

function logEvent(kind, time, text) {
  const li = document.createElement("li");
  li.dataset.kind = kind;
  li.textContent = `${time.toFixed(2)} s  ${EVENT_LABELS[kind] || kind}${text ? ": " + text : ""}`;
  const list = $("events");
  list.appendChild(li);
  list.scrollTop = list.scrollHeight;
}

function onEvent(ev) {
  const transcript = $("transcript");
  if (ev.kind === "word") {
    transcript.append((transcript.textContent && !transcript.textContent.endsWith("\n") ? " " : "")
      + ev.text);
    return;
  }
  if (ev.kind === "answering" && transcript.textContent) transcript.append("\n");
  if (ev.kind === "interrupted") {
    const cut = document.createElement("span");
    cut.className = "cut";
    cut.textContent = " [cut]";
    transcript.append(cut);
  }
  logEvent(ev.kind, ev.time, ev.text);
}

function showStats(s) {
  const step = s.step_ms, lat = s.latency_ms;
  if (!step.n) return;
  $("stats").textContent =
    `step p50 ${step.p50.toFixed(1)} / p90 ${step.p90.toFixed(1)} ms ` +
    `(${(100 * s.step_ratio).toFixed(0)}% of a ${s.frame_ms.toFixed(0)} ms frame) · ` +
    `latency p50 ${lat.p50.toFixed(1)} / p90 ${lat.p90.toFixed(1)} ms`;
}

// Gapless playback: each frame is scheduled right after the previous one; after an underrun
// the queue restarts a little ahead of now, so that network jitter does not click.
function play(samples) {
  const ctx = client.ctx;
  const buffer = ctx.createBuffer(1, samples.length, client.info.sample_rate);
  buffer.copyToChannel(samples, 0);
  const source = ctx.createBufferSource();
  source.buffer = buffer;
  source.connect(ctx.destination);
  if (client.playAt < ctx.currentTime + 0.01) client.playAt = ctx.currentTime + 0.06;
  source.start(client.playAt);
  client.playAt += buffer.duration;
  client.rxFrames += 1;
  client.rxSamples += samples.length;
  $("rx-frames").textContent = client.rxFrames;
  $("rx-seconds").textContent = (client.rxSamples / client.info.sample_rate).toFixed(2);
}

// Resampled microphone audio goes out in whole model frames (20 ms at 50 Hz).
function send(block) {
  const ws = client.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !client.ready) return;
  const pcm = client.resampler.push(block);
  client.pending.push(pcm);
  client.pendingLength += pcm.length;
  const frame = client.info.frame_samples;
  if (client.pendingLength < frame) return;
  const all = new Float32Array(client.pendingLength);
  let at = 0;
  for (const p of client.pending) { all.set(p, at); at += p.length; }
  const whole = all.length - (all.length % frame);
  ws.send(all.slice(0, whole).buffer);
  client.pending = [all.slice(whole)];
  client.pendingLength = all.length - whole;
  client.txSamples += whole;
  $("tx-seconds").textContent = (client.txSamples / client.info.sample_rate).toFixed(2);
}

async function startCapture() {
  const raw = new URLSearchParams(location.search).has("raw");
  client.stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: !raw, noiseSuppression: !raw, autoGainControl: !raw },
  });
  const ctx = client.ctx;
  const source = ctx.createMediaStreamSource(client.stream);
  const mute = ctx.createGain();  // capture nodes must reach the destination to be pulled
  mute.gain.value = 0;
  mute.connect(ctx.destination);
  let node;
  if (ctx.audioWorklet) {
    await ctx.audioWorklet.addModule("capture-worklet.js");
    node = new AudioWorkletNode(ctx, "speechlm-capture", { numberOfInputs: 1, numberOfOutputs: 1 });
    node.port.onmessage = (e) => send(e.data);
  } else {  // older browsers: the deprecated ScriptProcessor, on the main thread
    node = ctx.createScriptProcessor(2048, 1, 1);
    node.onaudioprocess = (e) => send(new Float32Array(e.inputBuffer.getChannelData(0)));
  }
  source.connect(node);
  node.connect(mute);
  client.nodes = [source, node, mute];
  client.resampler = new Resampler(ctx.sampleRate, client.info.sample_rate);
}

function onMessage(msg) {
  if (typeof msg.data !== "string") {
    play(new Float32Array(msg.data));
    return;
  }
  const m = JSON.parse(msg.data);
  if (m.type === "ready") {
    client.ready = true;
    setStatus("ready", `ready: ${m.sample_rate} Hz, ${m.frame_rate} frames/s`);
  } else if (m.type === "event") {
    onEvent(m);
  } else if (m.type === "stats") {
    showStats(m);
  } else if (m.type === "error") {
    logEvent("error", client.ctx ? client.ctx.currentTime : 0, `${m.reason}: ${m.message}`);
    if (m.fatal) setStatus("error", `error: ${m.reason}`);
  }
}

async function start() {
  $("start").textContent = "Stop";
  setStatus("connecting", "connecting");
  try {
    client.info = await (await fetch("info")).json();
    client.ctx = new AudioContext();
    await client.ctx.resume();
    client.playAt = 0;
    await startCapture();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}${client.info.ws_path}`);
    ws.binaryType = "arraybuffer";
    client.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify(
      { type: "hello", sample_rate: client.info.sample_rate, format: "f32" }));
    ws.onmessage = (m) => { if (client.ws === ws) onMessage(m); };  // none after stop()
    ws.onclose = (e) => {
      if (client.ws === ws) {
        setStatus($("status").dataset.state === "error" ? "error" : "closed",
          `closed (${e.code}${e.reason ? " " + e.reason : ""})`);
        stop(false);
      }
    };
  } catch (err) {
    setStatus("error", `error: ${err.message || err}`);
    stop(false);
  }
}

function stop(byUser = true) {
  const ws = client.ws;
  client.ws = null;
  client.ready = false;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000, "bye");
  if (client.stream) client.stream.getTracks().forEach((t) => t.stop());
  client.nodes.forEach((n) => n.disconnect());
  if (client.ctx) client.ctx.close();
  Object.assign(client, { stream: null, nodes: [], ctx: null, pending: [], pendingLength: 0 });
  $("start").textContent = "Start";
  if (byUser) setStatus("idle", "stopped");
}

$("start").addEventListener("click", () => (client.ws || client.ctx ? stop() : start()));
