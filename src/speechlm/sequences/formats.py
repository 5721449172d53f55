"""Sequence formats: pure functions from one token-dataset row to an :class:`Example`.

A format is a :class:`FormatSpec` in the ``FORMATS`` registry: its function, the dataset columns
and vocabulary ranges and markers it needs, and its parameters with their defaults. A training
config mixes formats by ratio (``formats: {speech_only: 1.0, interleaved: {ratio: 0.5,
p_switch: 0.3}}``); an unknown format or parameter, a missing column or a vocabulary without the
needed tokens is an error naming the key and the valid choices.

The single-stream formats below start with BOS and end with EOS (``eos=False`` gives the prompt
form used for scoring and generation); each modality span starts with its marker. The loss is
taken on every token (the causal shift happens inside the HF model).

| name          | layout                                               | used by              |
| ------------- | ---------------------------------------------------- | -------------------- |
| speech_only   | BOS [SPEECH] u1..un EOS                              | GSLM, TWIST          |
| text_only     | BOS [TEXT] t1..tm EOS                                | text replay          |
| speech_text   | BOS [SPEECH] u.. [TEXT] t.. EOS                      | SpiRit-LM (ASR-like) |
| text_speech   | BOS [TEXT] t.. [SPEECH] u.. EOS                      | SpiRit-LM (TTS-like) |
| interleaved   | BOS [TEXT] w1 w2 [SPEECH] u(w3) u(w4) [TEXT] ... EOS | SUTLM, SpiRit-LM     |

Other modules register more formats (``FORMAT_MODULES``) with :func:`register_format`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.registry import Registry
from speechlm.sequences.example import Example
from speechlm.sequences.vocab import SPEECH_MARKER, TEXT_MARKER, SpeechVocab

TEXT = "text"  # the pseudo-range "text tokens of the text tokenizer" (extend vocabularies)
CODECS = "codecs"  # the pseudo-range "codec0 .. codec{K-1}", K from the token dataset's codec


def inventory_sizes() -> dict[str, int]:
    """The ranges whose size is one of the toolkit's fixed inventories, not the data's:
    ``phonemes`` (VALL-E, VioLA) and ``chars`` (VioLA)."""
    from speechlm.corpus.phones import PHONEME_INVENTORY
    from speechlm.sequences.viola import CHARS

    return {"phonemes": len(PHONEME_INVENTORY), "chars": len(CHARS)}
# modules that register formats beyond the ones defined here
FORMAT_MODULES = ("speechlm.sequences.formats", "speechlm.sequences.instruction",
                  "speechlm.sequences.multistream", "speechlm.sequences.expressive",
                  "speechlm.sequences.dialogue", "speechlm.sequences.valle",
                  "speechlm.sequences.viola", "speechlm.sequences.speechgpt")


@dataclass(frozen=True)
class FormatSpec:
    """A format: ``fn(row, vocab, rng, **params) -> Example`` and what it needs."""

    name: str
    fn: Callable[..., Any]
    columns: tuple[str, ...]  # token-dataset columns it reads
    ranges: tuple[str, ...] = ("units",)  # vocabulary ranges ("text": the text tokenizer)
    markers: tuple[str, ...] = ()  # marker tokens it writes
    params: Mapping[str, Any] = field(default_factory=dict)  # name -> default
    context: tuple[str, ...] = ()  # params filled from the dataset's info.json (frame_rate)
    output: str = "example"  # what fn returns: "example" (Example) or "pair" (PreferencePair)
    summary: str = ""
    # per-row values it needs (column -> the param that turns the need on, None: always); a
    # row without them is trained as speech_only (fallback "speech_only") or left out
    # ("skip": a zero-length example, for formats whose rows have no units, e.g. TTS), and a
    # dataset with none of them is refused
    needs: Mapping[str, str | None] = field(default_factory=dict)
    fallback: str = "speech_only"

    def needed(self, params: Mapping[str, Any]) -> list[str]:
        """The columns whose values this use of the format needs in each row."""
        return [c for c, on in self.needs.items() if on is None or params.get(on)]


FORMATS: Registry[FormatSpec] = Registry("format", FORMAT_MODULES)


def register_format(name: str, columns: Sequence[str], ranges: Sequence[str] = ("units",),
                    markers: Sequence[str] = (), params: Mapping[str, Any] | None = None,
                    context: Sequence[str] = (), output: str = "example",
                    summary: str = "", needs: Mapping[str, str | None] | None = None,
                    fallback: str = "speech_only") -> Callable:
    """Decorator: register the decorated function as format ``name``."""
    if fallback not in ("speech_only", "skip"):
        raise ValueError(f"format {name}: fallback must be speech_only or skip, got {fallback}")

    def deco(fn: Callable) -> Callable:
        FORMATS.add(name, FormatSpec(name, fn, tuple(columns), tuple(ranges), tuple(markers),
                                     dict(params or {}), tuple(context), output, summary,
                                     dict(needs or {}), fallback))
        return fn
    return deco


# ---- the single-stream formats ---------------------------------------------------------------
def _units(row: Mapping, vocab: SpeechVocab) -> list[int]:
    return vocab.units_to_ids(row["units"]).tolist()


def _end(vocab: SpeechVocab, eos: bool) -> list[int]:
    return [vocab.eos_id] if eos else []


@register_format("speech_only", columns=("units",), markers=(SPEECH_MARKER,),
                 params={"eos": True}, summary="BOS [SPEECH] units EOS")
def speech_only(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None,
                eos: bool = True) -> Example:
    """``BOS [SPEECH] units EOS`` (no EOS with ``eos=False``: a prompt)."""
    return Example.single([vocab.bos_id, vocab.speech_id, *_units(row, vocab), *_end(vocab, eos)])


@register_format("text_only", columns=("text",), ranges=(TEXT,), markers=(TEXT_MARKER,),
                 params={"eos": True}, summary="BOS [TEXT] text EOS", needs={"text": None})
def text_only(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None,
              eos: bool = True) -> Example:
    """``BOS [TEXT] text EOS``."""
    return Example.single([vocab.bos_id, vocab.text_id, *vocab.text_to_ids(row["text"]),
                           *_end(vocab, eos)])


@register_format("speech_text", columns=("units", "text"), ranges=("units", TEXT),
                 markers=(SPEECH_MARKER, TEXT_MARKER), params={"eos": True},
                 summary="BOS [SPEECH] units [TEXT] text EOS", needs={"text": None})
def speech_text(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None,
                eos: bool = True) -> Example:
    """``BOS [SPEECH] units [TEXT] text EOS``: speech followed by its transcript."""
    return Example.single([vocab.bos_id, vocab.speech_id, *_units(row, vocab), vocab.text_id,
                           *vocab.text_to_ids(row["text"]), *_end(vocab, eos)])


@register_format("text_speech", columns=("units", "text"), ranges=("units", TEXT),
                 markers=(SPEECH_MARKER, TEXT_MARKER), params={"eos": True},
                 summary="BOS [TEXT] text [SPEECH] units EOS", needs={"text": None})
def text_speech(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator | None = None,
                eos: bool = True) -> Example:
    """``BOS [TEXT] text [SPEECH] units EOS``: a transcript followed by its speech."""
    return Example.single([vocab.bos_id, vocab.text_id, *vocab.text_to_ids(row["text"]),
                           vocab.speech_id, *_units(row, vocab), *_end(vocab, eos)])


def word_unit_spans(words, durations, frame_rate: float) -> list[tuple[int, int]]:
    """Split the unit sequence at word starts: ``[(first_unit, end_unit)]`` per word.

    Unit ``k`` starts at ``sum(durations[:k]) / frame_rate`` seconds (see
    :func:`word_token_spans`).
    """
    starts = np.concatenate([[0], np.cumsum(np.asarray(durations, dtype=np.int64))[:-1]])
    return word_token_spans(words, starts / float(frame_rate))


def word_token_spans(words, times: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, end)]`` per word over tokens at sorted ``times`` (seconds), cut at word starts.

    A token belongs to the last word that starts at or before its time (tokens before the
    first word go to the first word), so every span boundary is a word start and the spans
    tile the whole sequence.
    """
    word_starts = np.asarray([w["start"] for w in words], dtype=np.float64)
    # first token whose time is >= each word start (word 0 takes everything before it)
    cuts = np.searchsorted(times, word_starts - 1e-9, side="left")
    cuts[0] = 0
    cuts = np.maximum.accumulate(cuts)
    ends = np.append(cuts[1:], len(times))
    return [(int(a), int(b)) for a, b in zip(cuts, ends, strict=True)]


@register_format("interleaved", columns=("units", "durations", "words"), ranges=("units", TEXT),
                 markers=(SPEECH_MARKER, TEXT_MARKER), params={"p_switch": 0.3,
                                                               "frame_rate": 50.0},
                 context=("frame_rate",), summary="word-level switches between text and units",
                 needs={"words": None})
def interleaved(row: Mapping, vocab: SpeechVocab, rng: np.random.Generator, p_switch: float = 0.3,
                frame_rate: float = 50.0) -> Example:
    """Word-level interleaving: start in a random modality and switch at word boundaries.

    After each word the modality flips with probability ``p_switch``; a text span is the
    tokenised words joined by spaces, a speech span is the units of those words (see
    :func:`word_unit_spans`); each span starts with its marker. Rows without word alignments
    fall back to :func:`speech_only`.
    """
    words = row.get("words")
    if not words:
        return speech_only(row, vocab)
    spans = word_unit_spans(words, row["durations"], frame_rate)
    units = vocab.units_to_ids(row["units"])
    speech = bool(rng.random() < 0.5)
    flips = rng.random(len(words)) < p_switch
    ids = [vocab.bos_id]
    group: list[int] = []  # word indices of the current span

    def flush() -> None:
        if not group:
            return
        if speech:
            ids.append(vocab.speech_id)
            ids.extend(units[spans[group[0]][0]:spans[group[-1]][1]].tolist())
        else:
            ids.append(vocab.text_id)
            ids.extend(vocab.text_to_ids(" ".join(words[i]["label"] for i in group)))
        group.clear()

    for i in range(len(words)):
        if i > 0 and flips[i]:
            flush()
            speech = not speech
        group.append(i)
    flush()
    ids.append(vocab.eos_id)
    return Example.single(ids)


# ---- a mix of formats, as a training config gives it ---------------------------------------
@dataclass(frozen=True)
class FormatUse:
    """One format of a mix: its spec, its share and its parameters (defaults filled in)."""

    spec: FormatSpec
    ratio: float
    params: dict[str, Any]


def parse_formats(formats: Mapping[str, Any], key: str = "formats") -> list[FormatUse]:
    """``{name: ratio}`` or ``{name: {ratio: r, param: value}}`` -> validated uses."""
    if not isinstance(formats, Mapping) or not formats:
        raise ConfigError(f"{key}: give at least one format, e.g. {{speech_only: 1.0}}; valid: "
                          f"{', '.join(FORMATS.names())}")
    uses = []
    for name, value in formats.items():
        spec = FORMATS.get(name, key=f"{key}.{name}")
        params = dict(value) if isinstance(value, Mapping) else {"ratio": value}
        ratio = params.pop("ratio", 1.0)
        if not isinstance(ratio, int | float) or isinstance(ratio, bool) or ratio < 0:
            raise ConfigError(f"{key}.{name}: ratio must be a non-negative number, got {ratio!r}")
        for p in params:
            if p not in spec.params or p in spec.context:
                settable = [q for q in spec.params if q not in spec.context]
                raise ConfigError(f"{key}.{name}.{p}: unknown parameter; valid: "
                                  f"{', '.join(['ratio', *settable])}")
        uses.append(FormatUse(spec, float(ratio), {**spec.params, **params}))
    if sum(u.ratio for u in uses) <= 0:
        raise ConfigError(f"{key}: ratios sum to zero")
    return uses


def format_tokens(uses: Sequence[FormatUse]) -> tuple[list[str], list[str]]:
    """Markers and ranges the mix needs (in first-use order), for building its vocabulary."""
    markers: list[str] = []
    ranges: list[str] = []
    for u in uses:
        if u.ratio > 0:
            markers += [m for m in u.spec.markers if m not in markers]
            ranges += [r for r in u.spec.ranges if r not in ranges]
    return markers, ranges


def check_formats(uses: Sequence[FormatUse], vocab: SpeechVocab | None = None,
                  columns: Sequence[str] | None = None, key: str = "formats",
                  where: str = "the data") -> None:
    """Refuse a mix the vocabulary or the dataset cannot serve, naming format and missing part."""
    for u in uses:
        if u.ratio <= 0:
            continue
        name = f"{key}.{u.spec.name}"
        if vocab is not None:
            for r in u.spec.ranges:
                if r == TEXT and not vocab.has_text:
                    raise ConfigError(f"{name}: needs text tokens; use init=warm with "
                                      "vocab_mode=extend (the speech-only vocabulary has none)")
                if r == CODECS and not vocab.has_range("codec0"):
                    raise ConfigError(f"{name}: needs codec tokens (codec0, ..); the vocabulary "
                                      f"has {', '.join(vocab.layout.ranges)}")
                if r not in (TEXT, CODECS) and not vocab.has_range(r):
                    raise ConfigError(f"{name}: needs '{r}' tokens; the vocabulary has "
                                      f"{', '.join(vocab.layout.ranges)}")
            missing = [m for m in u.spec.markers if m not in vocab.layout.markers]
            if missing:
                raise ConfigError(f"{name}: the vocabulary lacks markers {missing}")
        if columns is not None:
            missing = [c for c in u.spec.columns if c not in columns]
            if missing:
                raise ConfigError(f"{name}: {where} lacks column(s) {', '.join(missing)}; it has "
                                  f"{', '.join(columns)}")


def make_example(row: Mapping, vocab: SpeechVocab, uses: Sequence[FormatUse], seed: int,
                 index: int, context: Mapping[str, Any] | None = None) -> Example:
    """Pick a format for row ``index`` by the ratios and apply it.

    The choice and any random draws of the format depend only on ``(seed, index)``, so the same
    row gets the same example in every process and after a resume. ``context`` fills the
    parameters a format takes from the dataset (``frame_rate``).
    """
    rng = np.random.default_rng([seed, index])
    use = uses[0]
    if len(uses) > 1:
        weights = np.asarray([u.ratio for u in uses], dtype=np.float64)
        use = uses[int(rng.choice(len(uses), p=weights / weights.sum()))]
    params = dict(use.params)
    for k in use.spec.context:
        if context and k in context:
            params[k] = context[k]
    if any(not _has(row, c) for c in use.spec.needed(params)):
        if use.spec.fallback == "speech_only":
            return speech_only(row, vocab)
        ex = use.spec.fn(row, vocab, rng, **params)  # its streams, cut to no step: left out
        return Example({n: a[..., :0] for n, a in ex.streams.items()},
                       {n: m[..., :0] for n, m in ex.masks.items()})
    return use.spec.fn(row, vocab, rng, **params)


def _has(row: Mapping, column: str) -> bool:
    value = row.get(column)
    return value is not None and len(value) > 0


def check_rows(uses: Sequence[FormatUse], rows, where: str = "the data",
               key: str = "formats") -> list[str]:
    """Refuse a format whose per-row needs (word times, a transcript) no row of ``rows`` (a
    ``datasets.Dataset``) meets, naming the fix (``speechlm corpus align`` for word times);
    returns a warning for each format that some rows fail (those are trained as speech_only).
    """
    warnings: list[str] = []
    for u in uses:
        if u.ratio <= 0:
            continue
        for col in u.spec.needed(u.params):
            if col not in rows.column_names:
                continue  # check_formats names a missing column
            n = _n_empty(rows, col)
            if n == len(rows) and n:
                raise ConfigError(f"{key}.{u.spec.name}: no row of {where} has {_WHAT[col]}, so "
                                  f"every such sequence would be speech only; {_FIX[col]}, or "
                                  f"drop {key}.{u.spec.name}")
            if n:
                then = ("trained as speech_only" if u.spec.fallback == "speech_only"
                        else "left out")
                warnings.append(f"{key}.{u.spec.name}: {n} of {len(rows)} rows of {where} have "
                                f"no {_WHAT[col]}; they are {then}")
    return warnings


def _n_empty(rows, column: str) -> int:
    """Rows whose ``column`` is null or empty, counted in Arrow (no Python row objects)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = rows.data.table if hasattr(rows.data, "table") else rows.data
    col = table.column(column)
    if pa.types.is_null(col.type):  # every value None
        return len(col)
    length = pc.utf8_length if pa.types.is_string(col.type) else pc.list_value_length
    return col.null_count + int(pc.sum(pc.equal(length(col), 0)).as_py() or 0)


_WHAT = {"words": "word times ('words')", "text": "transcripts ('text')"}
_FIX = {"words": "add them with `speechlm corpus align --manifest M --out DIR` and train on "
                 "DIR/manifest.jsonl", "text": "import the corpus with its transcripts"}


def make_sequence(row: Mapping, vocab: SpeechVocab, formats: Mapping[str, Any], seed: int,
                  index: int, frame_rate: float) -> Example:
    """:func:`make_example` from a config's ``formats`` mapping (parsed on every call)."""
    return make_example(row, vocab, parse_formats(formats), seed, index,
                        {"frame_rate": frame_rate})
