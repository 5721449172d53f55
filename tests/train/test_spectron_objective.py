"""The ``spectron`` objective's examples: SpeechGPT's chain up to the text answer, then frames."""

import numpy as np
import pytest

from speechlm.errors import ConfigError
from speechlm.models.modeling_spectron import SPEC
from speechlm.sequences import speechgpt as sg
from speechlm.sequences.example import IGNORE
from speechlm.sequences.vocab import SpeechVocab
from speechlm.train.spectron import spectron_chain_example

ROW = {"prompt_units": [3, 1, 4], "prompt_text": "who ate the cake",
       "response_text": "emma ate the cake.", "response_frames": np.ones((5, 8)).tolist()}


@pytest.fixture(scope="module")
def vocab():
    from speechlm.train.textlm import train_text_tokenizer

    tok = train_text_tokenizer(["who ate the cake emma ate the cake."] * 20, vocab_size=60)
    return SpeechVocab.extend(tok, 10).with_tokens([*sg.MARKERS, SPEC])


def test_the_chain_ends_in_spec_and_the_loss_starts_at_the_transcript(vocab):
    ex = spectron_chain_example(ROW, vocab)
    ids, labels = ex["input_ids"], ex["labels"]
    m = vocab.marker
    first = ids.index(m(sg.TQ))
    assert ids[:first] == sg.prompt_ids(vocab, sg.human_speech(vocab, ROW["prompt_units"]))
    assert labels[:first] == [IGNORE] * first and labels[first:] == ids[first:]
    assert ids[first:] == [m(sg.TQ), *vocab.text_to_ids(ROW["prompt_text"]), m(sg.TA),
                           *vocab.text_to_ids(ROW["response_text"]), m(SPEC)]
    assert ex["frames"].shape == (5, 8) and ex["frames"].dtype == np.float32


def test_the_objective_takes_no_arguments_and_starts_from_a_model():
    from speechlm.train import TrainConfig

    base = {"data": "d", "output_dir": "o", "objective": "spectron", "init_from": "m"}
    with pytest.raises(ConfigError, match="objective_args.beta: objective spectron takes none"):
        TrainConfig.from_dict({**base, "init": "from_model", "objective_args": {"beta": 1}})
    with pytest.raises(ConfigError, match="init: objective spectron starts from"):
        TrainConfig.from_dict({**base, "init": "warm"})
