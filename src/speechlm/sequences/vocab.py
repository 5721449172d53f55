"""One vocabulary for every token a model sees, saved as a standard HF tokenizer directory.

The id space is built, never numbered by hand: the four specials (``<pad> <s> </s> <unk>``),
then the *markers* (modality, task and role tokens such as ``[SPEECH]``, ``[TEXT]``,
``[Human]``), then named *ranges* of contiguous ids (``units``, ``pitch``, ``style``,
``phonemes``, ``chars``, ``codec0`` ... ``codecK``). Two modes:

- ``speech_only`` (GSLM, TWIST with ``replace``): a fresh word-level vocabulary of exactly those
  tokens; ``<pad>=0 <s>=1 </s>=2 <unk>=3 [SPEECH]=4 [TEXT]=5``, then unit 0 at 6.
- ``extend`` (SpiRit-LM, AudioPaLM): a text tokenizer's vocabulary unchanged, with the markers
  and ranges appended as added tokens.

A range maps values to ids by adding its offset, so the hot path never touches token strings;
the strings exist so that ``AutoTokenizer.from_pretrained`` sees a complete vocabulary.
:meth:`SpeechVocab.with_tokens` appends markers or ranges to an existing vocabulary (fine-tuning
a model with new task markers) without moving any existing id.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from speechlm.errors import ConfigError

LAYOUT_FILE = "speech_vocab.json"
SPEECH_MARKER = "[SPEECH]"
TEXT_MARKER = "[TEXT]"
SPECIALS = {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "unk": "<unk>"}
DEFAULT_MARKERS = (SPEECH_MARKER, TEXT_MARKER)

# range name -> token string of value i; codebook ranges are codec0, codec1, ...
RANGE_TOKENS = {
    "units": "<u{}>",
    "pitch": "<p{}>",
    "style": "<st{}>",
    "phonemes": "<ph{}>",
    "chars": "<ch{}>",
    "codec": "<c{k}_{}>",
}
_CODEC = re.compile(r"codec(\d+)$")


def range_token(name: str, i: int) -> str:
    """The token string of value ``i`` of range ``name`` (display and HF files only)."""
    m = _CODEC.match(name)
    if m:
        return RANGE_TOKENS["codec"].format(i, k=m.group(1))
    if name not in RANGE_TOKENS or name == "codec":
        valid = [n for n in RANGE_TOKENS if n != "codec"] + ["codec0, codec1, ..."]
        raise ConfigError(f"vocabulary range '{name}' is unknown; valid: {', '.join(valid)}")
    return RANGE_TOKENS[name].format(i)


def with_default_markers(markers: Sequence[str]) -> list[str]:
    """``[SPEECH]``, ``[TEXT]`` first (their ids stay 4 and 5), then the other markers."""
    return [*DEFAULT_MARKERS, *(m for m in markers if m not in DEFAULT_MARKERS)]


def unit_token(i: int) -> str:
    """The token string of unit ``i``."""
    return range_token("units", i)


@dataclass(frozen=True)
class VocabLayout:
    """Where each kind of token lives in the id space (saved as ``speech_vocab.json``)."""

    mode: str  # "speech_only" or "extend"
    size: int
    specials: dict[str, int] = field(default_factory=dict)  # pad, bos, eos, unk
    markers: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (offset, size)
    n_text: int = 0  # ids below this are the text tokenizer's own (extend mode)

    @classmethod
    def from_json(cls, d: dict) -> VocabLayout:
        """Read the saved form (also the flat layout written before named ranges)."""
        if "ranges" not in d:  # speechlm <= 0.1: fixed fields per kind of token
            ranges = {"units": (d["unit_offset"], d["n_units"])}
            for name in ("pitch", "style"):
                if d.get(f"n_{name}"):
                    ranges[name] = (d[f"{name}_offset"], d[f"n_{name}"])
            return cls(mode=d["mode"], size=d["size"], n_text=d.get("n_text", 0),
                       specials={"pad": d["pad_id"], "bos": d["bos_id"], "eos": d["eos_id"]},
                       markers={SPEECH_MARKER: d["speech_id"], TEXT_MARKER: d["text_id"]},
                       ranges=ranges)
        return cls(mode=d["mode"], size=d["size"], specials=d["specials"], markers=d["markers"],
                   ranges={k: (int(v[0]), int(v[1])) for k, v in d["ranges"].items()},
                   n_text=d.get("n_text", 0))


class SpeechVocab:
    """A HF tokenizer plus the integer layout of its specials, markers and ranges."""

    def __init__(self, tokenizer, layout: VocabLayout):
        self.tokenizer = tokenizer
        self.layout = layout

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def build(cls, ranges: Mapping[str, int], markers: Sequence[str] = DEFAULT_MARKERS,
              text_tokenizer=None) -> SpeechVocab:
        """Specials, ``markers`` and ``ranges`` (name -> size, in order); see the module doc.

        Without ``text_tokenizer`` the vocabulary holds only these tokens (``speech_only``);
        with one, they are appended to its vocabulary (``extend``).
        """
        for name, n in ranges.items():
            range_token(name, 0)  # unknown names are refused here
            if not isinstance(n, int) or n <= 0:
                raise ConfigError(f"{name}: the range size must be a positive integer, got {n!r}")
        if text_tokenizer is None:
            return cls._speech_only(ranges, markers)
        return cls(copy.deepcopy(text_tokenizer), VocabLayout(
            mode="extend", size=len(text_tokenizer), n_text=len(text_tokenizer),
            specials={}, markers={}, ranges={}))._appended(markers, ranges, extend_specials=True)

    @classmethod
    def speech_only(cls, n_units: int, n_pitch: int = 0, n_style: int = 0,
                    markers: Sequence[str] = DEFAULT_MARKERS) -> SpeechVocab:
        """A word-level vocabulary of specials, markers and units (+ pitch, style) only."""
        _check_units(n_units)
        return cls.build(_sizes(n_units, n_pitch, n_style), markers)

    @classmethod
    def extend(cls, text_tokenizer, n_units: int, n_pitch: int = 0, n_style: int = 0,
               markers: Sequence[str] = DEFAULT_MARKERS) -> SpeechVocab:
        """The text tokenizer's vocabulary with markers and unit (pitch, style) tokens appended.

        Text token ids are unchanged, so a warm-started text LM still reads text as before.
        """
        _check_units(n_units)
        return cls.build(_sizes(n_units, n_pitch, n_style), markers, text_tokenizer)

    @classmethod
    def _speech_only(cls, ranges: Mapping[str, int], markers: Sequence[str]) -> SpeechVocab:
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.pre_tokenizers import WhitespaceSplit
        from transformers import PreTrainedTokenizerFast

        tokens = list(SPECIALS.values()) + list(markers)
        layout_ranges = {}
        for name, n in ranges.items():
            layout_ranges[name] = (len(tokens), n)
            tokens += [range_token(name, i) for i in range(n)]
        core = Tokenizer(WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
        core.pre_tokenizer = WhitespaceSplit()
        tok = PreTrainedTokenizerFast(
            tokenizer_object=core, bos_token=SPECIALS["bos"], eos_token=SPECIALS["eos"],
            pad_token=SPECIALS["pad"], unk_token=SPECIALS["unk"],
            additional_special_tokens=list(markers),
        )
        ids = {t: i for i, t in enumerate(tokens)}
        return cls(tok, VocabLayout(
            mode="speech_only", size=len(tokens),
            specials={k: ids[t] for k, t in SPECIALS.items()},
            markers={m: ids[m] for m in markers}, ranges=layout_ranges))

    def with_tokens(self, markers: Sequence[str] = (),
                    ranges: Mapping[str, int] | None = None) -> SpeechVocab:
        """A copy with the markers and ranges it lacks appended; existing ids do not move.

        A range that exists must have the requested size (a model's units cannot change).
        """
        new_markers = [m for m in markers if m not in self.layout.markers]
        new_ranges = {}
        for name, n in (ranges or {}).items():
            if name in self.layout.ranges:
                if self.layout.ranges[name][1] != n:
                    raise ConfigError(f"{name}: the vocabulary has {self.layout.ranges[name][1]} "
                                      f"{name} tokens, the data {n}")
            else:
                new_ranges[name] = n
        if not new_markers and not new_ranges:
            return self
        return SpeechVocab(copy.deepcopy(self.tokenizer), self.layout)._appended(
            new_markers, new_ranges)

    def _appended(self, markers: Sequence[str], ranges: Mapping[str, int],
                  extend_specials: bool = False) -> SpeechVocab:
        """Append tokens to this vocabulary's (already copied) tokenizer; returns a new one."""
        tok = self.tokenizer
        specials = dict(self.layout.specials)
        if extend_specials:
            if tok.bos_token_id is None:
                tok.add_special_tokens({"bos_token": SPECIALS["bos"]})
            if tok.eos_token_id is None:
                tok.add_special_tokens({"eos_token": SPECIALS["eos"]})
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            specials = {"pad": tok.pad_token_id, "bos": tok.bos_token_id,
                        "eos": tok.eos_token_id}
            if tok.unk_token_id is not None:
                specials["unk"] = tok.unk_token_id
        layout_markers = dict(self.layout.markers)
        layout_ranges = dict(self.layout.ranges)
        if markers:
            tok.add_tokens(list(markers), special_tokens=True)
            layout_markers.update({m: tok.convert_tokens_to_ids(m) for m in markers})
        for name, n in ranges.items():
            names = [range_token(name, i) for i in range(n)]
            tok.add_tokens(names, special_tokens=True)
            first = tok.convert_tokens_to_ids(names[0])
            # the hot path relies on contiguous ids: check it instead of assuming it
            if tok.convert_tokens_to_ids(names[-1]) != first + n - 1:
                raise ConfigError(f"tokens {names[0]}..{names[-1]} did not get contiguous ids; "
                                  "the text tokenizer already contains some of them")
            layout_ranges[name] = (first, n)
        layout = VocabLayout(mode=self.layout.mode, size=len(tok), specials=specials,
                             markers=layout_markers, ranges=layout_ranges,
                             n_text=self.layout.n_text)
        return SpeechVocab(tok, layout)

    # ---- persistence ---------------------------------------------------------------------
    def save(self, out_dir: str | Path) -> None:
        """Write the HF tokenizer files and ``speech_vocab.json`` (the id layout) to ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(out)
        (out / LAYOUT_FILE).write_text(json.dumps(asdict(self.layout), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> SpeechVocab:
        """Load a vocabulary saved by :meth:`save` (a model directory also works)."""
        from transformers import AutoTokenizer

        from speechlm.config import load_json

        path = Path(path)
        layout_file = path / LAYOUT_FILE
        raw = load_json(layout_file, f"{path} is not a speechlm vocabulary or model directory")
        try:
            layout = VocabLayout.from_json(raw)
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{layout_file}: unreadable vocabulary layout ({e})") from None
        return cls(AutoTokenizer.from_pretrained(path), layout)

    # ---- ranges and markers ----------------------------------------------------------------
    def range(self, name: str) -> tuple[int, int]:
        """``(offset, size)`` of range ``name``; a missing range lists the ones there are."""
        try:
            return self.layout.ranges[name]
        except KeyError:
            raise ConfigError(f"this vocabulary has no '{name}' tokens; it has: "
                              f"{', '.join(self.layout.ranges) or 'no ranges'}") from None

    def has_range(self, name: str) -> bool:
        """Whether range ``name`` exists."""
        return name in self.layout.ranges

    def to_ids(self, name: str, values) -> np.ndarray:
        """Values of range ``name`` -> token ids, by offset (int64 array)."""
        offset, n = self.range(name)
        v = np.asarray(values, dtype=np.int64)
        if v.size and (v.min() < 0 or v.max() >= n):
            raise ValueError(f"{name} value out of range [0, {n}): {int(v.min())}..{int(v.max())}")
        return v + offset

    def from_ids(self, name: str, ids) -> np.ndarray:
        """Token ids -> values of range ``name``, dropping every id outside it."""
        offset, n = self.range(name)
        v = np.asarray(ids, dtype=np.int64) - offset
        return v[(v >= 0) & (v < n)]

    def marker(self, name: str) -> int:
        """Id of marker ``name``; a missing marker lists the ones there are."""
        try:
            return self.layout.markers[name]
        except KeyError:
            raise ConfigError(f"this vocabulary has no marker {name}; it has: "
                              f"{', '.join(self.layout.markers)}") from None

    # ---- named ids ---------------------------------------------------------------------------
    @property
    def bos_id(self) -> int:
        """Beginning-of-sequence id (first token of every training sequence)."""
        return self.layout.specials["bos"]

    @property
    def eos_id(self) -> int:
        """End-of-sequence id."""
        return self.layout.specials["eos"]

    @property
    def pad_id(self) -> int:
        """Padding id (never in a packed training block)."""
        return self.layout.specials["pad"]

    @property
    def speech_id(self) -> int:
        """The ``[SPEECH]`` marker: what follows are unit tokens."""
        return self.marker(SPEECH_MARKER)

    @property
    def text_id(self) -> int:
        """The ``[TEXT]`` marker: what follows are text tokens."""
        return self.marker(TEXT_MARKER)

    @property
    def size(self) -> int:
        """Number of ids (the model's ``vocab_size``)."""
        return self.layout.size

    @property
    def has_text(self) -> bool:
        """Whether the vocabulary holds text tokens (``extend`` mode)."""
        return self.layout.mode == "extend"

    @property
    def unit_offset(self) -> int:
        """Id of unit 0; unit ``u`` has id ``unit_offset + u``."""
        return self.range("units")[0]

    @property
    def n_units(self) -> int:
        """Number of unit tokens."""
        return self.range("units")[1]

    def units_to_ids(self, units) -> np.ndarray:
        """Unit indices -> token ids, by offset (int64 array)."""
        return self.to_ids("units", units)

    def ids_to_units(self, ids) -> np.ndarray:
        """Token ids -> unit indices, dropping every id that is not a unit (markers, text, EOS)."""
        return self.from_ids("units", ids)

    def pitch_to_ids(self, pitch) -> np.ndarray:
        """Pitch-token indices -> ids."""
        return self.to_ids("pitch", pitch)

    def style_to_ids(self, style) -> np.ndarray:
        """Style-token indices -> ids."""
        return self.to_ids("style", style)

    def text_to_ids(self, text: str) -> list[int]:
        """Text -> ids with the text tokenizer (``extend`` vocabularies only)."""
        if not self.has_text:
            raise ConfigError("a text format needs a vocabulary with text tokens: set "
                              "init=warm with vocab_mode=extend (the speech-only vocabulary "
                              "has none)")
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]


def _check_units(n_units: int) -> None:
    if not isinstance(n_units, int | np.integer) or n_units <= 0:
        raise ConfigError(f"n_units must be positive, got {n_units}")


def _sizes(n_units: int, n_pitch: int, n_style: int) -> dict[str, int]:
    sizes = {"units": int(n_units)}
    if n_pitch:
        sizes["pitch"] = int(n_pitch)
    if n_style:
        sizes["style"] = int(n_style)
    return sizes
