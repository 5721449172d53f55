"""Recipe loading and command-line overrides."""

import pytest

from speechlm.errors import ConfigError
from speechlm.recipes import available_recipes, load_recipe


def test_shipped_recipes_have_tiny_and_paper_scales():
    assert {"gslm", "twist"} <= set(available_recipes())
    for name in ("gslm", "twist"):
        tiny, paper = load_recipe(name, "tiny"), load_recipe(name, "paper")
        assert tiny["corpus"]["hours"] > 0 and paper["corpus"] is None
        assert paper["tokenizer"]["kind"] == "hubert"
    assert load_recipe("twist", "paper")["tokenizer"]["units"] == 500
    assert load_recipe("gslm", "paper")["tokenizer"]["layer"] == 6


def test_overrides_set_nested_values_with_yaml_types():
    cfg = load_recipe("gslm", "tiny", ["train.max_steps=7", "tokenizer.kind=logmel",
                                       "train.lr=1e-3", "corpus.hours=0.1"])
    assert cfg["train"]["max_steps"] == 7
    assert cfg["train"]["lr"] == pytest.approx(1e-3)
    assert cfg["tokenizer"]["kind"] == "logmel"
    assert cfg["corpus"]["hours"] == pytest.approx(0.1)


@pytest.mark.parametrize("bad, needle", [
    ("trian.max_steps=3", "trian.max_steps"),
    ("train.max_steps", "key=value"),
    ("train.seed.x=1", "train.seed"),
])
def test_bad_overrides_name_the_key(bad, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_recipe("gslm", "tiny", [bad])


def test_unknown_recipe_and_scale_list_the_valid_names():
    with pytest.raises(ConfigError, match="gslm"):
        load_recipe("nope")
    with pytest.raises(ConfigError, match="tiny"):
        load_recipe("gslm", "huge")
