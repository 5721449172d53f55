"""eval duplex's scoring on hand-made timelines with known answers."""

import pytest

from speechlm.errors import ConfigError
from speechlm.evaluate.duplex import DuplexEvalSettings, aggregate, model_ipus, score_scenario

ST = DuplexEvalSettings()


def user(start, end, kind="query", addressed=True):
    return {"start": start, "end": end, "kind": kind, "addressed": addressed, "text": ""}


def test_ipus_merge_short_silences_and_drop_stray_frames():
    fr = 50.0
    speaking = [False] * 10 + [True] * 20 + [False] * 5 + [True] * 20 + [False] * 20 + [True] * 2
    # 5 silent frames (0.1 s) < 0.2 s merge; the final 2 frames (0.04 s) are dropped
    assert model_ipus(speaking, fr, 0.2, 0.1) == [(0.2, 1.1)]
    assert model_ipus([False] * 5, fr, 0.2, 0.1) == []


def test_query_answered_with_its_latency_and_a_missed_one():
    rec = {"user": [user(0.5, 2.0), user(6.0, 7.0)],
           "assistant": [], "states": [{"time": 2.4, "token": "answer"},
                                       {"time": 7.4, "token": "answer"}]}
    s = score_scenario(rec, [(2.3, 4.0)], ST)  # answers the first after 0.3 s, not the second
    assert s["turn"] == [True, False] and s["query"] == [True, False]
    assert s["turn_latency"] == [pytest.approx(0.3)]
    agg = aggregate([s], [0.002, 0.004, 0.006], 50.0)
    assert agg["answer_rate"] == 0.5 and agg["response_latency_s"] == pytest.approx(0.3)
    assert agg["step_time_ratio"] == pytest.approx(0.2)  # median 4 ms of a 20 ms frame


def test_interruption_stop_latency_and_not_speaking():
    rec = {"user": [user(0.5, 2.0), user(4.0, 4.5, "command")], "assistant": [],
           "states": [{"time": 2.4, "token": "answer"}, {"time": 4.3, "token": "irq"}]}
    s = score_scenario(rec, [(2.4, 4.35)], ST)
    assert s["interrupt"] == [True] and s["irq_latency"] == [pytest.approx(0.35)]
    never = score_scenario(rec, [(2.4, 3.5)], ST)  # it had stopped before the user cut in
    assert never["interrupt"] == [] and never["irq_not_speaking"] == [True]
    late = score_scenario(rec, [(2.4, 7.0)], ST)  # kept talking 3 s over the user
    assert late["interrupt"] == [False]


def test_false_reply_on_non_query_audio_until_the_next_query():
    rec = {"user": [user(0.5, 2.0, "statement", False), user(5.0, 6.0)], "assistant": [],
           "states": [{"time": 2.3, "token": "silent"}, {"time": 6.3, "token": "answer"}]}
    quiet = score_scenario(rec, [(6.3, 8.0)], ST)
    assert quiet["nonquery"] == [False] and quiet["query"] == [True]
    chatty = score_scenario(rec, [(2.5, 3.5), (6.3, 8.0)], ST)
    assert chatty["nonquery"] == [True]
    assert aggregate([quiet, chatty], [], 50.0)["false_reply_rate"] == 0.5


def test_false_replies_are_split_by_the_kind_of_non_query_audio():
    rec = {"user": [user(0.5, 2.0, "sidetalk", False), user(3.0, 4.0, "noise", False),
                    user(8.0, 9.0)], "assistant": [],
           "states": [{"time": 2.3, "token": "silent"}, {"time": 4.3, "token": "silent"},
                      {"time": 9.3, "token": "answer"}]}
    s = score_scenario(rec, [(2.4, 2.9), (9.3, 10.0)], ST)  # replies to the side talk only
    assert s["nonquery"] == [True, False] and s["nonquery_source"] == ["sidetalk", "noise"]
    quiet = score_scenario(rec, [(9.3, 10.0)], ST)
    by = aggregate([s, quiet], [], 50.0)["false_replies_by_source"]
    assert by == {"noise": {"rate": 0.0, "n": 2}, "sidetalk": {"rate": 0.5, "n": 2}}


def test_pause_takeover_versus_backchannel():
    story = [user(0.5, 2.0, "story"), user(2.8, 4.0, "story"), user(4.9, 6.0, "story")]
    rec = {"user": story, "assistant": [{"kind": "backchannel"}],
           "states": [{"time": 6.3, "token": "answer"}]}
    s = score_scenario(rec, [(2.2, 2.5), (4.1, 5.6), (6.3, 7.0)], ST)
    assert s["pause"] == [False, True]  # a 0.3-s backchannel; then 1.5 s of talk over a pause
    assert s["backchannels"] == [pytest.approx(0.3)]
    agg = aggregate([s], [], 50.0)
    assert agg["takeover_rate_pause"] == 0.5
    assert agg["backchannels_per_min"] == pytest.approx(1 / (5.5 / 60), rel=1e-3)


def test_settings_are_checked():
    with pytest.raises(ConfigError, match="window"):
        DuplexEvalSettings(window=0)


def test_shift_after_moves_only_the_later_timeline():
    from speechlm.evaluate.duplex import interruption_point, shift_after

    rec = {"user": [user(0.5, 2.0), user(4.0, 4.5, "command")],
           "assistant": [{"start": 2.4, "end": 4.3, "kind": "answer"}],
           "states": [{"time": 2.4, "token": "answer"}, {"time": 4.3, "token": "irq"}],
           "duration": 6.0}
    assert interruption_point(rec) == (2.0, 4.0)
    moved = shift_after(rec, 4.0, 1.2)
    assert [(u["start"], u["end"]) for u in moved["user"]] == [(0.5, 2.0),
                                                               (pytest.approx(2.8), 3.3)]
    assert [s["time"] for s in moved["states"]] == [2.4, pytest.approx(3.1)]
    assert moved["duration"] == pytest.approx(4.8) and rec["duration"] == 6.0
    assert interruption_point({**rec, "states": rec["states"][:1]}) is None


class _Talker:
    """An engine stand-in that speaks from frame 10 on until 5 frames after the microphone gets
    loud (what a model that yields does); it logs like a DuplexSession."""

    sample_rate, frame_rate, frame_samples = 16000, 50.0, 320

    def session(self):
        from types import SimpleNamespace

        from speechlm.realtime.events import Output

        eng = self

        class S:
            def __init__(self):
                self.log = SimpleNamespace(speak=[], step_s=[])
                self.frames, self.loud_at = 0, None

            def push(self, pcm):
                outs = []
                for _ in range(len(pcm) // eng.frame_samples):
                    if self.loud_at is None and abs(pcm).max() > 0.1:
                        self.loud_at = self.frames
                    talk = self.frames >= 10 and (self.loud_at is None
                                                  or self.frames < self.loud_at + 5)
                    self.log.speak.append(int(talk))
                    self.frames += 1
                    outs.append(Output(audio=pcm[:0], speaking=talk))
                return outs

            def close(self):
                pass

        return S()


def test_cut_in_is_timed_on_the_models_answer():
    import numpy as np

    from speechlm.evaluate.duplex import run_interruption

    rec = {"user": [user(0.0, 0.1), user(4.0, 4.5, "command")], "assistant": [],
           "states": [{"time": 0.3, "token": "answer"}, {"time": 4.3, "token": "irq"}]}
    wav = np.zeros(16000 * 6, np.float32)
    wav[4 * 16000:int(4.5 * 16000)] = 0.5  # the command, 4 s in
    log, skipped = run_interruption(_Talker(), wav, rec, after=0.5)
    # it speaks from frame 10 (0.2 s); after 25 frames of answer (0.7 s) the command plays
    assert skipped == pytest.approx(4.0 - 0.7)
    speaking = np.asarray(log.speak)
    assert speaking[10:35].all() and speaking[35:40].all() and not speaking[40:].any()
    assert len(speaking) == int((6.0 - skipped) * 50)
