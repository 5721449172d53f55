"""Synthetic training corpora: grammar text spoken by espeak-ng voices, with gold alignments.

``synthesize_corpus`` writes ``out_dir/wav/<id>.wav`` (16 kHz, 16-bit), ``out_dir/manifest.jsonl``
(with ``words`` and ``phones`` alignments) and ``out_dir/summary.json``. Texts, voices, rates and
pitches (and, for a styled corpus, styles and their delivery) are all drawn in the parent from
the seed before any audio is made. libespeak-ng keeps hidden state between utterances (its output
depends slightly on what it spoke before, even after re-initialising), so utterances are made in
fixed chunks of ``CHUNK``, each in a fresh process: the corpus is then byte-identical for any
worker count.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechlm.corpus.fresh import FreshProcesses
from speechlm.corpus.grammar import Grammar, words_of
from speechlm.corpus.manifest import Utterance, write_manifest
from speechlm.corpus.styles import check_styles, delivery, styled_text
from speechlm.errors import ConfigError

SAMPLE_RATE = 16000
# espeak-ng voice variants (voices/!v) on the en-us language act as speakers; the held-out
# ones never speak training data, so benchmarks measure generalisation to new voices. Units
# generalise to a new voice only as far as the training voices cover its range: on 6 h of
# speech, 88 training voices instead of 23 raised a 5-gram unit LM's held-out lexical accuracy
# from 0.653 to 0.677 (three k-means seeds each). Every other espeak-ng 1.52 variant is used
# except: Alicia, Demonic, f2, f3, f5, sandro, victor, whisper and whisperf, whose output differs
# from process to process (not reproducible); anikaRobot (anika with an echo) and mike2, near
# copies of held-out voices; and "Mr serious", whose name has a space.
TRAIN_VOICES: list[str] = [f"en-us+{v}" for v in (
    "m1", "m2", "m3", "m4", "m5", "m6", "m8", "paul", "robert", "adam", "klatt", "john", "ian",
    "Gene", "f1", "f4", "steph", "belinda", "grandma", "Annie", "Andrea", "aunty", "shelby",
    "Alex", "Andy", "announcer", "antonio", "AnxiousAndy", "benjamin", "boris", "caleb", "croak",
    "david", "Denis", "Diogo", "ed", "edward", "edward2", "fast", "Gene2", "grandpa", "gustave",
    "Henrique", "Hugo", "iven", "iven2", "iven3", "iven4", "Jacky", "kaukovalta", "klatt2",
    "klatt3", "klatt4", "klatt5", "klatt6", "Lee", "marcelo", "Marco", "Mario", "max", "Michael",
    "michel", "miguel", "Nguyen", "norbert", "pablo", "pedro", "quincy", "Reed", "RicishayMax",
    "RicishayMax2", "RicishayMax3", "rob", "robosoft", "robosoft2", "robosoft3", "robosoft4",
    "robosoft5", "robosoft6", "robosoft7", "robosoft8", "steph2", "steph3", "Storm", "travis",
    "Tweaky", "UniRobot", "zac",
)]
HELDOUT_VOICES: list[str] = [f"en-us+{v}" for v in ("m7", "Mike", "linda", "anika")]
RATE_RANGE = (140, 195)  # words per minute
PITCH_RANGE = (35, 66)  # espeak's 0-100 pitch scale
CHUNK = 64  # utterances per fresh worker process (the unit of determinism)


@dataclass(frozen=True)
class Job:
    """Everything one utterance's audio depends on."""

    id: str
    text: str
    voice: str
    rate: int
    pitch: int
    path: str
    seed: int  # for the C rand() espeak uses for roughness/noise
    style: str | None = None
    range: int = 50  # espeak's defaults: an unstyled job sounds as before styles existed
    volume: int = 100
    wordgap: int = 0


def speak_chunk(jobs: list[Job]) -> list[dict]:
    """Synthesise jobs to their wav paths (call in a fresh process); returns their alignments."""
    from speechlm.audio import save_audio
    from speechlm.corpus.espeak import Espeak

    espeak = Espeak.get()
    results = []
    for job in jobs:
        spoken = espeak.speak(job.text, job.voice, job.rate, job.pitch, SAMPLE_RATE,
                              seed=job.seed, range=job.range, volume=job.volume,
                              wordgap=job.wordgap)
        save_audio(job.path, spoken.wav, SAMPLE_RATE)
        results.append({"id": job.id, "duration": round(spoken.duration, 4),
                        "words": [list(w) for w in spoken.words],
                        "phones": [list(p) for p in spoken.phones]})
    return results


def _jobs(out: Path, seed: int, voices: list[str], styles: list[str] | None) -> Iterator[Job]:
    grammar = Grammar(np.random.default_rng([seed, 0]))
    params = np.random.default_rng([seed, 1])
    # styles and their jitter from a stream of their own: the unstyled draws stay as they were
    style_rng = np.random.default_rng([seed, 2])
    i = 0
    while True:
        style = styles[int(style_rng.integers(len(styles)))] if styles else None
        text = styled_text(grammar, style) if style else grammar.utterance()
        voice = voices[int(params.integers(len(voices)))]
        rate = int(params.integers(*RATE_RANGE))
        pitch = int(params.integers(*PITCH_RANGE))
        uid = f"syn{i:07d}"
        job = Job(uid, text, voice, rate, pitch, str(out / "wav" / f"{uid}.wav"),
                  int(params.integers(2**31)))
        if style:  # the style's delivery replaces the voice-variety rate and pitch
            d = delivery(style, style_rng)
            job = dataclasses.replace(job, style=style, rate=d.rate, pitch=d.pitch,
                                      range=d.range, volume=d.volume, wordgap=d.wordgap)
        yield job
        i += 1


def synthesize_corpus(out_dir: str | Path, hours: float, seed: int = 0,
                      workers: int | None = None, voices: list[str] | None = None,
                      styles: list[str] | None = None) -> dict:
    """Make about ``hours`` of speech in ``out_dir``; returns the summary (also summary.json).

    With ``styles`` (names from ``speechlm.corpus.styles.STYLES``), each utterance draws one of
    them uniformly: its delivery is the style's (jittered) and its text carries the style's
    words; the manifest's ``style`` field holds the label.

    Stops at the first utterance that brings the total to ``hours``. A finished corpus with the
    same settings is not made again. Workers are ``forkserver`` processes, so a script calling
    this must guard its top level with ``if __name__ == "__main__":``.
    """
    from speechlm.progress import progress_bar

    if not (isinstance(hours, int | float) and hours > 0):
        raise ConfigError(f"hours: must be > 0, got {hours!r}")
    if workers is not None and workers < 1:
        raise ConfigError(f"workers: must be >= 1, got {workers}")
    check_styles(styles)
    out = Path(out_dir)
    voices = list(voices or TRAIN_VOICES)
    settings = {"hours_requested": hours, "seed": seed, "voices": voices}
    if styles:  # only then: an unstyled summary stays byte-identical to older ones
        settings["styles"] = list(styles)
    summary_path = out / "summary.json"
    if summary_path.exists():
        old = json.loads(summary_path.read_text())
        # "styles" is compared even when not set: a styled corpus is no unstyled one
        if all(old.get(k) == settings.get(k) for k in [*settings, "styles"]):
            return old
    (out / "wav").mkdir(parents=True, exist_ok=True)
    workers = workers or min(4, os.cpu_count() or 1)
    target = hours * 3600.0
    utts: list[Utterance] = []
    total = 0.0
    jobs = _jobs(out, seed, voices, styles)
    pending: deque = deque()  # (chunk, task) in job order
    with FreshProcesses(workers, ["speechlm.corpus.synth", "speechlm.corpus.espeak",
                                  "speechlm.audio"]) as pool, \
            progress_bar(total=target, unit="s", desc="synthesising", leave=False) as bar:
        while total < target:
            # keep every worker busy, but do not queue far more speech than still needed
            per_utt = total / len(utts) if utts else 3.0
            needed = (target - total) / per_utt
            while len(pending) < workers and (
                    not pending or len(pending) * CHUNK < 1.2 * needed):
                chunk = [next(jobs) for _ in range(CHUNK)]
                pending.append((chunk, pool.submit(speak_chunk, chunk,
                                                   name=f"utterances {chunk[0].id}..")))
            chunk, task = pending.popleft()
            for job, res in zip(chunk, task.get(), strict=True):
                if total >= target:  # made past the target: drop it
                    Path(job.path).unlink(missing_ok=True)
                    continue
                utts.append(Utterance(
                    id=job.id, audio=f"wav/{job.id}.wav", duration=res["duration"],
                    sample_rate=SAMPLE_RATE, text=job.text, speaker=job.voice,
                    words=res["words"], phones=res["phones"], style=job.style))
                total += res["duration"]
                bar.update(res["duration"])
    # chunks still in flight were killed on leaving the pool: their files are not needed
    for chunk, _ in pending:
        for job in chunk:
            Path(job.path).unlink(missing_ok=True)
    write_manifest(out / "manifest.jsonl", utts)
    summary = {
        "hours": round(total / 3600.0, 4),
        "utterances": len(utts),
        "speakers": len({u.speaker for u in utts}),
        "words": sum(len(u.words or []) for u in utts),
        "vocabulary": len({w for u in utts for w in words_of(u.text or "")}),
        "sample_rate": SAMPLE_RATE,
        **settings,
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
