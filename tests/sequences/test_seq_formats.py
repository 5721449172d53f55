"""Sequence formats on hand-made rows: exact ids, word-boundary interleaving, mixing, packing."""

from __future__ import annotations

import numpy as np
import pytest
from test_seq_vocab import text_tokenizer

from speechlm.sequences.formats import (
    interleaved,
    make_sequence,
    speech_only,
    speech_text,
    text_only,
    text_speech,
    word_unit_spans,
)
from speechlm.sequences.packing import pack
from speechlm.sequences.vocab import SpeechVocab

# 3 words at 10 frames/s: "the" = units 0 0 (0.0-0.4 s), "cat" = 3 (0.4-0.6), "sat" = 1 2 (0.6-1.0)
ROW = {
    "units": [0, 0, 3, 1, 2],
    "durations": [2, 2, 2, 2, 2],
    "text": "the cat sat",
    "words": [{"label": "the", "start": 0.0, "end": 0.4},
              {"label": "cat", "start": 0.4, "end": 0.6},
              {"label": "sat", "start": 0.6, "end": 1.0}],
}


@pytest.fixture(scope="module")
def ext() -> SpeechVocab:
    # text ids: the=4 cat=5 sat=6; [SPEECH]=7 [TEXT]=8; unit u -> 9 + u; BOS=1 EOS=2
    return SpeechVocab.extend(text_tokenizer(), 4)


def test_speech_only_exact_ids():
    v = SpeechVocab.speech_only(4)  # unit u -> 6 + u
    s = speech_only(ROW, v)
    assert s.input_ids == [1, 4, 6, 6, 9, 7, 8, 2]
    assert s.labels == s.input_ids


def test_text_and_concatenated_formats_exact_ids(ext):
    assert text_only(ROW, ext).input_ids == [1, 8, 4, 5, 6, 2]
    assert speech_text(ROW, ext).input_ids == [1, 7, 9, 9, 12, 10, 11, 8, 4, 5, 6, 2]
    assert text_speech(ROW, ext).input_ids == [1, 8, 4, 5, 6, 7, 9, 9, 12, 10, 11, 2]


def test_word_unit_spans_cut_at_word_starts():
    # unit starts: 0.0 0.2 0.4 0.6 0.8 -> words start at units 0, 2, 3
    assert word_unit_spans(ROW["words"], ROW["durations"], 10.0) == [(0, 2), (2, 3), (3, 5)]
    # silence before the first word belongs to it; a word starting mid-unit takes the next unit
    words = [{"label": "a", "start": 0.3, "end": 0.5}, {"label": "b", "start": 0.5, "end": 1.0}]
    assert word_unit_spans(words, ROW["durations"], 10.0) == [(0, 3), (3, 5)]


def test_interleaved_switching_every_word_exact_ids(ext):
    rng = np.random.default_rng(0)
    starts_with_speech = np.random.default_rng(0).random() < 0.5
    s = interleaved(ROW, ext, rng, p_switch=1.0, frame_rate=10.0)
    speech_first = [1, 7, 9, 9, 8, 5, 7, 10, 11, 2]
    text_first = [1, 8, 4, 7, 12, 8, 6, 2]
    assert s.input_ids == (speech_first if starts_with_speech else text_first)


def test_interleaved_without_switches_is_one_span(ext):
    for seed in range(4):
        ids = interleaved(ROW, ext, np.random.default_rng(seed), p_switch=0.0,
                          frame_rate=10.0).input_ids
        assert ids in ([1, 7, 9, 9, 12, 10, 11, 2], [1, 8, 4, 5, 6, 2])


def test_interleaving_respects_word_boundaries():
    """On random sentences every span is a run of whole words; spans cover them in order."""
    rng = np.random.default_rng(1)
    lexicon = {f"w{i}": rng.integers(0, 6, size=rng.integers(1, 4)).tolist() for i in range(6)}
    names = list(lexicon)
    core_words = ["<pad>", "<s>", "</s>", "<unk>", *names]
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(WordLevel({w: i for i, w in enumerate(core_words)}, unk_token="<unk>"))
    core.pre_tokenizer = WhitespaceSplit()
    v = SpeechVocab.extend(PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>",
                                                   eos_token="</s>", pad_token="<pad>"), 6)
    switches = 0
    for trial in range(50):
        seq = [names[i] for i in rng.integers(0, 6, size=rng.integers(2, 9))]
        units, durs, words, t = [], [], [], 0.0
        for w in seq:
            d = rng.integers(1, 4, size=len(lexicon[w])).tolist()
            words.append({"label": w, "start": t, "end": t + sum(d) / 50})
            t += sum(d) / 50
            units += lexicon[w]
            durs += d
        row = {"units": units, "durations": durs, "words": words, "text": " ".join(seq)}
        ids = interleaved(row, v, np.random.default_rng(trial), p_switch=0.5, frame_rate=50.0)
        ids = ids.input_ids
        assert ids[0] == v.bos_id and ids[-1] == v.eos_id
        # split into (marker, body) spans
        spans, cur = [], None
        for i in ids[1:-1]:
            if i in (v.speech_id, v.text_id):
                cur = (i, [])
                spans.append(cur)
            else:
                cur[1].append(i)
        switches += len(spans) - 1
        k = 0  # next word to cover
        for marker, body in spans:
            assert body, "empty span"
            if marker == v.text_id:
                got = v.tokenizer.convert_ids_to_tokens(body)
                assert got == seq[k:k + len(got)]
                k += len(got)
            else:
                got_units = v.ids_to_units(body).tolist()
                j, acc = k, []
                while len(acc) < len(got_units):
                    acc += lexicon[seq[j]]
                    j += 1
                assert acc == got_units, "speech span does not end at a word boundary"
                k = j
        assert k == len(seq)
    assert switches > 20


def test_make_sequence_is_deterministic_and_mixes_by_ratio(ext):
    fmts = {"speech_only": 1.0, "text_only": 3.0}
    seqs = [make_sequence(ROW, ext, fmts, seed=7, index=i, frame_rate=10.0) for i in range(400)]
    again = [make_sequence(ROW, ext, fmts, seed=7, index=i, frame_rate=10.0) for i in range(400)]
    assert [s.input_ids for s in seqs] == [s.input_ids for s in again]
    text_share = np.mean([s.input_ids[1] == ext.text_id for s in seqs])
    assert 0.68 < text_share < 0.82


def test_pack_concatenates_without_padding(ext):
    seqs = [speech_only(ROW, ext), text_only(ROW, ext)]  # 8 + 6 tokens
    ids, labels = pack(seqs, 5)
    assert ids.tolist() == [[1, 7, 9, 9, 12], [10, 11, 2, 1, 8]]
    assert np.array_equal(ids, labels)
    assert pack(seqs, 15)[0].shape == (0, 15)


def test_a_row_without_what_its_format_needs_is_trained_as_speech_only(ext):
    from speechlm.sequences.formats import make_example, parse_formats

    speech = [1, 7, 9, 9, 12, 10, 11, 2]  # BOS [SPEECH] units EOS
    bare = {**ROW, "text": None, "words": None}
    for name in ("text_only", "speech_text", "text_speech", "interleaved"):
        uses = parse_formats({name: 1.0})
        assert make_example(bare, ext, uses, 0, 0, {"frame_rate": 10.0}).input_ids == speech
        assert make_example(ROW, ext, uses, 0, 0, {"frame_rate": 10.0}).input_ids != speech


def test_a_dataset_without_word_times_is_refused_naming_the_aligner():
    from datasets import Dataset

    from speechlm.errors import ConfigError
    from speechlm.sequences.formats import check_rows, parse_formats

    word = {"label": "a", "start": 0.0, "end": 0.1}
    rows = Dataset.from_dict({"units": [[1], [2], [3]], "text": ["a", "", None],
                              "words": [None, None, None]})
    uses = parse_formats({"speech_only": 0.5, "interleaved": 0.5})
    with pytest.raises(ConfigError, match=r"^formats\.interleaved: no row of D has word times "
                                          r".*speechlm corpus align --manifest"):
        check_rows(uses, rows, where="D")
    # some rows with words: trained, the others counted in a warning
    rows = rows.remove_columns("words").add_column("words", [[word], [], None])
    assert check_rows(uses, rows, where="D") == [
        "formats.interleaved: 2 of 3 rows of D have no word times ('words'); they are trained "
        "as speech_only"]
    assert check_rows(parse_formats({"text_only": 1.0}), rows, where="D") == [
        "formats.text_only: 2 of 3 rows of D have no transcripts ('text'); they are trained "
        "as speech_only"]
    # a format share of zero, or a format that needs nothing, is not checked
    assert check_rows(parse_formats({"speech_only": 1.0}), rows.remove_columns("words")) == []


def test_text_only_training_data_trains_an_untranscribed_row_as_its_units(ext, tmp_path):
    """``formats: {text_only: 1}`` reads only ``text``; the row without one still gets its units
    (the fallback's column is read too), and the other rows their text."""
    import pyarrow as pa

    from speechlm.sequences.formats import parse_formats
    from speechlm.tokenizers.job import write_token_table
    from speechlm.train.data import STREAM, format_examples

    table = pa.table({"id": ["a", "b"], "units": [[0, 0, 3], [1, 2]],
                      "durations": [[1, 1, 1], [1, 1]], "text": ["the cat", None]})
    data = write_token_table(tmp_path / "tok", table, tmp_path, n_units=4, frame_rate=50.0)
    out = format_examples(data, ext, parse_formats({"text_only": 1.0}), 0, tmp_path / "cache",
                          progress=False)
    assert [list(r) for r in out[STREAM + "tokens"]] == [[1, 8, 4, 5, 2],
                                                          [1, 7, 10, 11, 2]]
