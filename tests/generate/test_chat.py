"""``reply``: decoding SpeechGPT's template part by part, and streaming the spoken answer."""

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from speechlm.errors import ConfigError
from speechlm.generate.chat import default_mode, reply
from speechlm.sequences.speechgpt import MARKERS, speechgpt_chain, speechgpt_text_qa
from speechlm.sequences.vocab import SpeechVocab
from speechlm.tokenizers.streams import Streams

ROW = {"prompt_units": [3, 1, 4, 1, 5], "prompt_text": "who ate the cake",
       "response_text": "emma ate the cake.", "response_units": [2, 7, 1, 8, 2, 8, 1, 8, 2, 8,
                                                                  4, 5, 9]}


class StubTokenizer:
    """Every recording becomes ROW's question units (the model under test memorised them)."""

    sample_rate, frame_rate, n_units = 16000, 50.0, 10

    def encode(self, waveforms, sample_rate):
        return [Streams(self.frame_rate, units=np.array(ROW["prompt_units"]))]


class StubVocoder:
    """Ten samples per unit, so the audio shows which units were spoken and in how many chunks."""

    sample_rate = 16000

    def __init__(self):
        self.calls = []

    def synthesize(self, streams):
        self.calls.append(list(streams.units))
        return np.repeat(np.asarray(streams.units, dtype=np.float32), 10)


@dataclass
class StubLM:
    model: object
    vocab: SpeechVocab
    speech_tokenizer: StubTokenizer = field(default_factory=StubTokenizer)
    meta: dict = field(default_factory=lambda: {"formats": {"speechgpt_chain": 0.5}})
    dir: Path = Path("stub")
    architecture: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(
        name="causal_lm"))


@pytest.fixture(scope="module")
def lm():
    """A 2-layer Llama that has memorised ROW's spoken and written turns."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from speechlm.train.textlm import train_text_tokenizer

    tok = train_text_tokenizer(["who ate the cake emma ate the cake."] * 20, vocab_size=60)
    vocab = SpeechVocab.extend(tok, 10).with_tokens(MARKERS)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=vocab.size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    batch = [torch.tensor([f(ROW, vocab).input_ids]) for f in (speechgpt_chain,
                                                               speechgpt_text_qa)]
    for _ in range(80):
        for ids in batch:
            loss = model(input_ids=ids, labels=ids).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
    return StubLM(model.eval(), vocab)


def test_chain_reply_writes_transcript_answer_and_speech(lm):
    voc = StubVocoder()
    chunks = []
    r = reply(lm, np.zeros(16000, np.float32), 16000, temperature=0, vocoder=voc,
              chunk_units=4, min_seconds=0, on_audio=chunks.append)
    assert (r.mode, r.question_text, r.text) == ("chain", ROW["prompt_text"],
                                                 ROW["response_text"])
    assert r.units == ROW["response_units"]
    # streamed: every 4 units a chunk, then the rest, and the chunks add up to the answer
    assert voc.calls == [ROW["response_units"][i:i + 4] for i in range(0, 13, 4)]
    assert len(chunks) == 4
    assert np.array_equal(r.audio, np.repeat(np.float32(ROW["response_units"]), 10))
    assert 0 < r.time_to_first_audio_s <= r.seconds


def test_written_question_gets_the_same_answer_without_a_transcript(lm):
    r = reply(lm, text="Who ate the cake", temperature=0, speak=False)
    assert (r.question_text, r.text, r.audio) == ("who ate the cake", ROW["response_text"], None)
    assert r.units == ROW["response_units"]


def test_min_seconds_keeps_speech_going_and_max_seconds_caps_it(lm):
    # 5 question units in 1 s: 5 units a second; 1 s of answer is then 5 units at most
    r = reply(lm, np.zeros(16000, np.float32), 16000, temperature=0, speak=False,
              max_seconds=1.0)
    assert r.units == ROW["response_units"][:5]


def test_bad_requests_are_named(lm):
    with pytest.raises(ConfigError, match="exactly one"):
        reply(lm, speak=False)
    with pytest.raises(ConfigError, match="direct answers speech"):
        reply(lm, text="who ate the cake", mode="direct", speak=False)
    with pytest.raises(ConfigError, match="mode"):
        reply(lm, text="who", mode="shout", speak=False)
    with pytest.raises(ConfigError, match="mode omni: the model is a causal_lm model"):
        reply(lm, text="who", mode="omni", speak=False)
    with pytest.raises(ConfigError, match="not a SpeechGPT"):
        default_mode(StubLM(lm.model, lm.vocab, meta={"formats": {"speech_only": 1.0}}))
