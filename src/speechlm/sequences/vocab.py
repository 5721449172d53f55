"""One vocabulary for a single-stream speech LM, saved as a standard HF tokenizer directory.

Two layouts:

- ``speech_only(n_units)``: a fresh word-level vocabulary (GSLM, TWIST with ``replace``):
  ``<pad> <s> </s> <unk> [SPEECH] [TEXT]`` followed by the unit tokens ``<u0> ...``.
- ``extend(text_tokenizer, n_units)``: the text tokenizer's own vocabulary, then the markers and
  unit tokens appended as added tokens (SpiRit-LM, AudioPaLM).

Unit tokens (and the optional pitch/style tokens) are contiguous id ranges, so the hot path maps
units to ids by adding an integer offset; the token strings only exist so that
``AutoTokenizer.from_pretrained`` sees a complete vocabulary.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from speechlm.errors import ConfigError

LAYOUT_FILE = "speech_vocab.json"
SPEECH_MARKER = "[SPEECH]"
TEXT_MARKER = "[TEXT]"


def unit_token(i: int) -> str:
    """The token string of unit ``i`` (only used to build and display the vocabulary)."""
    return f"<u{i}>"


@dataclass(frozen=True)
class VocabLayout:
    """Where each kind of token lives in the id space (saved as ``speech_vocab.json``)."""

    mode: str  # "speech_only" or "extend"
    n_units: int
    unit_offset: int
    bos_id: int
    eos_id: int
    pad_id: int
    speech_id: int
    text_id: int
    size: int
    n_pitch: int = 0
    pitch_offset: int = -1
    n_style: int = 0
    style_offset: int = -1
    n_text: int = 0  # ids below this are the text tokenizer's own (extend mode)


class SpeechVocab:
    """A HF tokenizer plus the integer layout of its speech tokens; see the module docstring."""

    def __init__(self, tokenizer, layout: VocabLayout):
        self.tokenizer = tokenizer
        self.layout = layout

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def speech_only(cls, n_units: int, n_pitch: int = 0, n_style: int = 0) -> SpeechVocab:
        """A word-level vocabulary of specials, markers and units only (no text tokens)."""
        from tokenizers import Tokenizer
        from tokenizers.models import WordLevel
        from tokenizers.pre_tokenizers import WhitespaceSplit
        from transformers import PreTrainedTokenizerFast

        if n_units <= 0:
            raise ConfigError(f"n_units must be positive, got {n_units}")
        specials = ["<pad>", "<s>", "</s>", "<unk>", SPEECH_MARKER, TEXT_MARKER]
        tokens = specials + [unit_token(i) for i in range(n_units)]
        tokens += [f"<p{i}>" for i in range(n_pitch)] + [f"<st{i}>" for i in range(n_style)]
        core = Tokenizer(WordLevel({t: i for i, t in enumerate(tokens)}, unk_token="<unk>"))
        core.pre_tokenizer = WhitespaceSplit()
        tok = PreTrainedTokenizerFast(
            tokenizer_object=core, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
            unk_token="<unk>", additional_special_tokens=[SPEECH_MARKER, TEXT_MARKER],
        )
        offset = len(specials)
        layout = VocabLayout(
            mode="speech_only", n_units=n_units, unit_offset=offset, bos_id=1, eos_id=2, pad_id=0,
            speech_id=4, text_id=5, size=len(tokens),
            n_pitch=n_pitch, pitch_offset=offset + n_units if n_pitch else -1,
            n_style=n_style, style_offset=offset + n_units + n_pitch if n_style else -1,
        )
        return cls(tok, layout)

    @classmethod
    def extend(cls, text_tokenizer, n_units: int, n_pitch: int = 0,
               n_style: int = 0) -> SpeechVocab:
        """The text tokenizer's vocabulary with markers and unit (pitch, style) tokens appended.

        Text token ids are unchanged, so a warm-started text LM still reads text as before.
        """
        if n_units <= 0:
            raise ConfigError(f"n_units must be positive, got {n_units}")
        tok = copy.deepcopy(text_tokenizer)
        n_text = len(tok)
        if tok.bos_token_id is None:
            tok.add_special_tokens({"bos_token": "<s>"})
        if tok.eos_token_id is None:
            tok.add_special_tokens({"eos_token": "</s>"})
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.add_tokens([SPEECH_MARKER, TEXT_MARKER], special_tokens=True)

        def add_range(names: list[str]) -> int:
            if not names:
                return -1
            tok.add_tokens(names, special_tokens=True)
            first = tok.convert_tokens_to_ids(names[0])
            # the hot path relies on contiguous ids: check it instead of assuming it
            if tok.convert_tokens_to_ids(names[-1]) != first + len(names) - 1:
                raise ConfigError(f"tokens {names[0]}..{names[-1]} did not get contiguous ids; "
                                  "the text tokenizer already contains some of them")
            return first

        unit_offset = add_range([unit_token(i) for i in range(n_units)])
        pitch_offset = add_range([f"<p{i}>" for i in range(n_pitch)])
        style_offset = add_range([f"<st{i}>" for i in range(n_style)])
        layout = VocabLayout(
            mode="extend", n_units=n_units, unit_offset=unit_offset, bos_id=tok.bos_token_id,
            eos_id=tok.eos_token_id, pad_id=tok.pad_token_id,
            speech_id=tok.convert_tokens_to_ids(SPEECH_MARKER),
            text_id=tok.convert_tokens_to_ids(TEXT_MARKER), size=len(tok),
            n_pitch=n_pitch, pitch_offset=pitch_offset, n_style=n_style,
            style_offset=style_offset, n_text=n_text,
        )
        return cls(tok, layout)

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

        path = Path(path)
        layout_file = path / LAYOUT_FILE
        if not layout_file.is_file():
            raise ConfigError(f"{layout_file} not found: {path} is not a speechlm vocabulary or "
                              "model directory")
        layout = VocabLayout(**json.loads(layout_file.read_text()))
        return cls(AutoTokenizer.from_pretrained(path), layout)

    # ---- ids -----------------------------------------------------------------------------
    @property
    def unit_offset(self) -> int:
        """Id of unit 0; unit ``u`` has id ``unit_offset + u``."""
        return self.layout.unit_offset

    @property
    def n_units(self) -> int:
        """Number of unit tokens."""
        return self.layout.n_units

    @property
    def bos_id(self) -> int:
        """Beginning-of-sequence id (first token of every training sequence)."""
        return self.layout.bos_id

    @property
    def eos_id(self) -> int:
        """End-of-sequence id."""
        return self.layout.eos_id

    @property
    def pad_id(self) -> int:
        """Padding id (never in a packed training block)."""
        return self.layout.pad_id

    @property
    def speech_id(self) -> int:
        """The ``[SPEECH]`` marker: what follows are unit tokens."""
        return self.layout.speech_id

    @property
    def text_id(self) -> int:
        """The ``[TEXT]`` marker: what follows are text tokens."""
        return self.layout.text_id

    @property
    def size(self) -> int:
        """Number of ids (the model's ``vocab_size``)."""
        return self.layout.size

    @property
    def has_text(self) -> bool:
        """Whether the vocabulary holds text tokens (``extend`` mode)."""
        return self.layout.mode == "extend"

    def units_to_ids(self, units) -> np.ndarray:
        """Unit indices -> token ids, by offset (int64 array)."""
        u = np.asarray(units, dtype=np.int64)
        if u.size and (u.min() < 0 or u.max() >= self.n_units):
            raise ValueError(f"unit out of range [0, {self.n_units}): "
                             f"{int(u.min())}..{int(u.max())}")
        return u + self.unit_offset

    def ids_to_units(self, ids) -> np.ndarray:
        """Token ids -> unit indices, dropping every id that is not a unit (markers, text, EOS)."""
        i = np.asarray(ids, dtype=np.int64)
        u = i - self.unit_offset
        return u[(u >= 0) & (u < self.n_units)]

    def pitch_to_ids(self, pitch) -> np.ndarray:
        """Pitch-token indices -> ids (needs ``n_pitch > 0``)."""
        if not self.layout.n_pitch:
            raise ConfigError("this vocabulary has no pitch tokens (n_pitch=0)")
        return np.asarray(pitch, dtype=np.int64) + self.layout.pitch_offset

    def style_to_ids(self, style) -> np.ndarray:
        """Style-token indices -> ids (needs ``n_style > 0``)."""
        if not self.layout.n_style:
            raise ConfigError("this vocabulary has no style tokens (n_style=0)")
        return np.asarray(style, dtype=np.int64) + self.layout.style_offset

    def text_to_ids(self, text: str) -> list[int]:
        """Text -> ids with the text tokenizer (``extend`` vocabularies only)."""
        if not self.has_text:
            raise ConfigError("a text format needs a vocabulary with text tokens: set "
                              "init=warm with vocab_mode=extend (the speech-only vocabulary "
                              "has none)")
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]
