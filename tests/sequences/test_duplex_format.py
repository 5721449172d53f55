"""The duplex format: the text stream's placement, shifting, windows and padding."""

import numpy as np
import pytest

from speechlm.sequences.duplex import (
    ANSWER,
    BOS,
    IRQ,
    SILENT,
    SPECIALS,
    duplex_collate,
    duplex_windows,
    scenario_row,
    shifted,
    text_stream,
    text_vocab,
    transcript_stream,
    transcript_vocab,
    window_starts,
)
from speechlm.sequences.example import IGNORE

RECORD = {
    "id": "s0", "kind": "interrupt", "subkind": "command",
    "states": [{"time": 1.0, "token": "answer"}, {"time": 2.0, "token": "irq"},
               {"time": 3.0, "token": "silent"}],
    "assistant": [{"words": [["emma", 1.0, 1.3], ["ran", 1.32, 1.5], ["zorp", 1.8, 1.9]]}],
}


def test_vocab_is_specials_then_sorted_words():
    vocab = text_vocab([RECORD])
    assert vocab[: len(SPECIALS)] == list(SPECIALS)
    assert vocab[len(SPECIALS):] == ["emma", "ran", "zorp"]
    assert text_vocab([RECORD], words=False) == list(SPECIALS)


def test_states_and_words_land_on_their_frames_without_collisions():
    vocab = text_vocab([{"assistant": [{"words": [["emma", 0, 0], ["ran", 0, 0]]}]}])
    ids = {t: i for i, t in enumerate(vocab)}
    out = text_stream(RECORD, 200, 50.0, vocab)
    # <answer> at frame 50; "emma" starts at the same frame, so it moves to 51; "ran" at 66
    assert out[50] == ids[ANSWER] and out[51] == ids["emma"] and out[66] == ids["ran"]
    assert out[90] == ids["<unk>"]  # a word not in the vocabulary
    assert out[100] == ids[IRQ] and out[150] == ids[SILENT]
    assert np.count_nonzero(out) == 6  # everything else is <pad> (id 0)
    states_only = text_stream(RECORD, 200, 50.0, vocab, words=False)
    assert np.flatnonzero(states_only).tolist() == [50, 100, 150]


def test_row_cuts_channels_to_the_shorter_and_shifts_streams():
    vocab = text_vocab([RECORD])
    row = scenario_row(RECORD, np.arange(160) % 7, np.arange(170) % 5, 50.0, vocab)
    assert len(row["listen"]) == len(row["speak"]) == len(row["text"]) == 160
    s = shifted(row, n_units=7, text_bos=vocab.index(BOS))
    assert s["speak_in"][0] == 7 and s["text_in"][0] == vocab.index(BOS)
    assert (s["speak_in"][1:] == s["speak_labels"][:-1]).all()
    assert (s["text_in"][1:] == s["text_labels"][:-1]).all()
    assert (s["listen"] == np.asarray(row["listen"])).all()  # the listening channel is not shifted


def test_windows_cover_every_frame_and_keep_the_true_previous_frame():
    assert window_starts(100, 512) == [0]
    assert window_starts(1000, 400) == [0, 200, 400, 600]
    row = {"listen": list(range(1000)), "speak": list(range(1000)), "text": [0] * 1000}
    wins = duplex_windows(row, n_units=5000, text_bos=1, seq_len=400)
    assert [len(w["listen"]) for w in wins] == [400] * 4
    # a window that starts mid-row sees the real previous unit, not BOS
    assert wins[1]["speak_in"][0] == 199 and wins[0]["speak_in"][0] == 5000


def test_collate_pads_with_ignored_labels():
    a = {k: np.array([1, 2, 3]) for k in ("listen", "speak_in", "text_in", "speak_labels",
                                           "text_labels")}
    b = {k: np.array([4]) for k in a}
    batch = duplex_collate(n_units=9)([a, b])
    assert batch["listen"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["speak_labels"].tolist() == [[1, 2, 3], [4, -100, -100]]
    assert batch["text_in"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]


@pytest.mark.parametrize("time", [-1.0, 99.0])
def test_times_outside_the_scenario_are_clamped(time):
    rec = {"states": [{"time": time, "token": "answer"}], "assistant": []}
    out = text_stream(rec, 10, 50.0, list(SPECIALS))
    assert np.count_nonzero(out) == 1


def test_own_dropout_turns_only_speech_frames_to_silence():
    from speechlm.sequences.duplex import drop_own

    own = np.array([9] + [0] * 500 + [3, 4] * 1000)  # BOS, silence, then speech
    out = drop_own(own, 0.1, silence=0, rng=np.random.default_rng(0))
    assert out[0] == 9 and (out[1:501] == 0).all()
    changed = out[501:] != own[501:]
    assert (out[501:][changed] == 0).all()
    assert 0.07 < changed.mean() < 0.13
    assert (drop_own(own, 0.0, 0, np.random.default_rng(0)) == own).all()


HEARD = {"user": [{"words": [["where", 0.2, 0.4], ["did", 0.4, 0.41]]},
                  {"words": [["emma", 1.0, 1.3]]}, {"text": "", "kind": "noise"}]}


def test_transcript_labels_each_heard_word_over_its_frames():
    vocab = transcript_vocab([HEARD])
    assert vocab == ["<unk>", "did", "emma", "where"]
    out = transcript_stream(HEARD, 60, 50.0, ["<unk>", "emma", "where"])
    # "where": frames 10..19; "did" is 0.01 s long: its start frame only, and not in this
    # vocabulary (<unk>, 0); "emma": frames 50..59 (end 1.3 s = frame 65, cut at 60)
    assert out[10:20].tolist() == [2] * 10 and out[20] == 0
    assert out[50:60].tolist() == [1] * 10
    want = np.full(60, IGNORE)
    want[10:20], want[20], want[50:60] = 2, 0, 1
    assert out.tolist() == want.tolist()  # nothing heard: ignored


def test_transcript_rides_along_unshifted_and_pads_ignored():
    record = {**RECORD, **HEARD}
    vocab, heard = text_vocab([record]), transcript_vocab([record])
    row = scenario_row(record, np.arange(40) % 7, np.arange(40) % 5, 50.0, vocab,
                       transcript=heard)
    assert "transcript" not in scenario_row(record, np.arange(40) % 7, np.arange(40) % 5, 50.0,
                                            vocab)
    s = shifted(row, n_units=7, text_bos=vocab.index(BOS))
    assert s["transcript_labels"].tolist() == row["transcript"]
    assert s["transcript_labels"][10] == heard.index("where")
    batch = duplex_collate(7)([s, {k: v[:30] for k, v in s.items()}])
    assert batch["transcript_labels"][1, 30:].eq(IGNORE).all()
    assert batch["transcript_labels"][0].tolist() == row["transcript"]
    assert "transcript_labels" not in duplex_collate(7)([shifted(
        scenario_row(record, np.arange(40) % 7, np.arange(40) % 5, 50.0, vocab), 7, 1)])
