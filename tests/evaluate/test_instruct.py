"""Scoring spoken QA answers: the right slot value, and no other."""

import pytest

from speechlm.errors import ConfigError
from speechlm.evaluate.instruct import correct, named_values
from speechlm.recipes.config import load_recipe


def test_an_answer_is_right_when_it_names_the_value_and_no_other():
    cands = ["tom", "ben", "lily"]
    assert correct("emma planted the flowers.", "emma", cands)
    assert correct("Emma!", "emma", cands)
    assert not correct("tom planted the flowers.", "emma", cands)
    assert not correct("emma or tom", "emma", cands)  # hedging names two values
    assert not correct("", "emma", cands)
    assert not correct("emmanuel", "emma", cands)  # words, not substrings
    assert named_values("ben and lily went home", cands) == {"ben", "lily"}


@pytest.mark.parametrize("key", ["init_from", "data", "output_dir", "model"])
def test_finetuning_stages_refuse_the_keys_the_recipe_sets(key):
    with pytest.raises(ConfigError, match=f"sft_chain.{key}: set by the recipe"):
        load_recipe("speechgpt", "tiny", [f"sft_chain.{key}=x"])


def test_the_held_out_question_type_must_exist():
    with pytest.raises(ConfigError, match="instructions.heldout_qtype"):
        load_recipe("speechgpt", "tiny", ["instructions.heldout_qtype=why"])
