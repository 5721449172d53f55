"""Recipe loading: every key of every stage validated at load time, overrides, the stage graph."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from speechlm.errors import ConfigError
from speechlm.recipes import available_recipes, load_recipe
from speechlm.recipes.config import RECIPE_DIR
from speechlm.recipes.stages import STAGES


def test_shipped_recipes_have_tiny_and_paper_scales():
    assert {"gslm", "twist"} <= set(available_recipes())
    for name in ("gslm", "twist"):
        tiny, paper = load_recipe(name, "tiny"), load_recipe(name, "paper")
        assert tiny.confs["corpus"].hours > 0 and paper.confs["corpus"] is None
        assert paper.confs["tokenizer"].kind == "hubert"
        assert paper.confs["vocoder"].kind == "hifigan"
    assert load_recipe("twist", "paper").confs["tokenizer"].units == 500
    assert load_recipe("gslm", "paper").confs["tokenizer"].layer == 6
    assert load_recipe("gslm", "tiny").confs["data"].valid_fraction == pytest.approx(0.03)
    assert load_recipe("gslm", "tiny").stages == [
        "corpus", "data", "benchmark", "tokenizer", "tokens", "model", "vocoder", "eval",
        "generate"]
    assert load_recipe("twist", "tiny").stages.index("textlm") == 5


def test_overrides_set_nested_values_with_yaml_types():
    cfg = load_recipe("gslm", "tiny", ["train.max_steps=7", "tokenizer.kind=logmel",
                                       "train.lr=1e-3", "corpus.hours=0.1",
                                       "train.model.hidden_size=64", "data.valid_fraction=0.2"])
    assert cfg.confs["model"].max_steps == 7
    assert cfg.confs["model"].lr == pytest.approx(1e-3)
    assert cfg.confs["model"].model["hidden_size"] == 64
    assert cfg.confs["tokenizer"].kind == "logmel"
    assert cfg.confs["corpus"].hours == pytest.approx(0.1)
    assert cfg.confs["data"].valid_fraction == pytest.approx(0.2)


@pytest.mark.parametrize("bad, needle", [
    ("trian.max_steps=3", "trian.max_steps"),
    ("valid_fraction=0.2", "valid_fraction"),  # moved into the data section
    ("train.max_steps", "key=value"),
    ("train.seed.x=1", "train.seed"),
    ("textlm.steps=5", "textlm.steps"),  # gslm has no textlm stage
])
def test_bad_overrides_name_the_key(bad, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_recipe("gslm", "tiny", [bad])


def test_unknown_recipe_and_scale_list_the_valid_names():
    with pytest.raises(ConfigError, match="gslm"):
        load_recipe("nope")
    with pytest.raises(ConfigError, match="tiny"):
        load_recipe("gslm", "huge")


# ---- every stage's section of every recipe ----------------------------------------------------
def test_a_typo_in_any_stage_section_fails_at_load(recipe, scale):
    stages = load_recipe(recipe, scale).stages
    sections = [STAGES.get(s).key for s in stages if STAGES.get(s).config is not None]
    assert sections
    for section in sections:
        with pytest.raises(ConfigError) as err:
            load_recipe(recipe, scale, [f"{section}.hiden_sise=3"])
        assert str(err.value).startswith(f"{section}.hiden_sise: unknown key; valid keys: ")


def test_a_typo_in_any_hf_model_config_fails_at_load(recipe, scale):
    block = yaml.safe_load((RECIPE_DIR / f"{recipe}.yaml").read_text())["scales"][scale]
    keys = [s for s, v in block.items() if isinstance(v, dict) and isinstance(v.get("model"), dict)]
    for section in keys:  # the ssl section's encoder is a HuBERT unless it says otherwise
        model_type = block[section]["model"].get("model_type", "hubert")
        with pytest.raises(ConfigError, match=rf"^{section}\.model\.hidden_sise: unknown key "
                                              rf"for model_type {model_type}; valid keys: "
                                              r".*hidden_size"):
            load_recipe(recipe, scale, [f"{section}.model.hidden_sise=3"])


@pytest.mark.parametrize("recipe", available_recipes())
@pytest.mark.parametrize("bad, message", [
    ("corpus.hourz=1", "corpus.hourz: unknown key; valid keys: hours, seed, voices"),
    ("tokenizer.unitz=5", "tokenizer.unitz: unknown key; valid keys: kind, units,"),
    ("generate.temprature=1", "generate.temprature: unknown key; valid keys: prompt_seconds"),
    ("train.max_stepz=9", "train.max_stepz: unknown key; valid keys: data, output_dir"),
    ("tokenizer.units=0", "tokenizer.units: must be >= 2, got 0"),
    ("generate.min_seconds=20", "generate.min_seconds: must be <= max_seconds"),
    ("corpus.hours=-1", "corpus.hours: must be > 0, got -1"),
    ("tokenizer.kind=nope", "tokenizer.kind: must be one of mfcc, logmel, hubert"),
    ("data.valid_fraction=1.5", "data.valid_fraction: must be < 1, got 1.5"),
    ("benchmark.pairs=0", "benchmark.pairs: must be > 0, got 0"),
    ("generate.temperature=0", "generate.temperature: must be > 0"),
    ("generate.top_p=1.5", "generate.top_p: must be in (0, 1]"),
    ("generate.top_k=-1", "generate.top_k: must be >= 0"),
    ("vocoder.kind=nope", "vocoder.kind: must be one of fallback, envelope, hifigan"),
    ("eval.scoring=max", "eval.scoring: must be one of sum, mean"),
    ("train.data=x", "train.data: set by the recipe (RUN/tokens/train)"),
    ("tokenizer.layer=6", "tokenizer.layer: not an option of kind 'mfcc'"),
    ("tokenizer.frame_rate=33", "tokenizer.frame_rate: 33.0 Hz does not divide 16000 Hz"),
    ("tokenizer.kind=hubert", "tokenizer.model: kind 'hubert' needs model="),
    ("tokenizer.prosody.n_pich=8", "tokenizer.prosody.n_pich: unknown key"),
    ("vocoder.hifigan.max_steps=8", "vocoder.hifigan: only for kind hifigan"),
])
def test_bad_values_name_the_key_at_load(recipe, bad, message):
    section = bad.split(".")[0]
    stage = "model" if section == "train" else section  # the model stage's section is train
    confs = load_recipe(recipe, "tiny").confs
    if stage not in confs:
        pytest.skip(f"{recipe} has no {section} stage")
    kind_specific = ("tokenizer.layer", "tokenizer.frame_rate", "tokenizer.kind=hubert",
                     "tokenizer.prosody")
    if confs["tokenizer"].kind != "mfcc" and bad.startswith(kind_specific):
        pytest.skip(f"{recipe}'s tokenizer is {confs['tokenizer'].kind}, not mfcc")
    if confs["tokenizer"].causal and bad == "tokenizer.kind=hubert":
        # refused first for being causal (tests/tokenizers/test_streaming.py)
        pytest.skip(f"{recipe}'s tokenizer is causal, which an SSL encoder cannot be")
    with pytest.raises(ConfigError) as err:
        load_recipe(recipe, "tiny", [bad])
    assert str(err.value).startswith(message), str(err.value)


def test_tokenizer_options_depend_on_the_kind():
    ok = load_recipe("gslm", "tiny", ["tokenizer.kind=continuous", "tokenizer.features=hubert",
                                      "tokenizer.model=/ckpt/hubert", "tokenizer.smoothing=null"])
    assert ok.confs["tokenizer"].options() == {"model": "/ckpt/hubert", "features": "hubert"}
    with pytest.raises(ConfigError, match=r"^tokenizer\.smoothing: not an option of kind "
                                          "'encodec'; its options: model, n_codebooks, device"):
        load_recipe("gslm", "tiny", ["tokenizer.kind=encodec", "tokenizer.model=m"])


def test_spectral_options_are_the_front_ends_fields():
    from speechlm.recipes.stages.tokens import SPECTRAL_OPTIONS
    from speechlm.tokenizers.features import SpectralSpec

    assert set(SPECTRAL_OPTIONS) == {f.name for f in dataclasses.fields(SpectralSpec)} - {"kind"}


def test_twist_needs_its_text_lm_and_refuses_unused_keys():
    with pytest.raises(ConfigError, match=r"^train\.model: unused with init=warm"):
        load_recipe("twist", "tiny", ["train.model.hidden_size=64"])
    with pytest.raises(ConfigError, match=r"^textlm\.steps: unused when init_from is set"):
        load_recipe("twist", "paper", ["textlm.steps=5"])
    # a warm start names its text LM, or reads the textlm stage's
    cfg = load_recipe("twist", "tiny", ["train.init_from=/ckpt/opt"])
    assert cfg.confs["model"].init_from == "/ckpt/opt"


def test_hifigan_options_are_validated_at_load():
    base = ["vocoder.kind=hifigan", "vocoder.preset=tiny"]
    cfg = load_recipe("gslm", "tiny", [*base, "vocoder.hifigan.max_steps=3"])
    assert cfg.confs["vocoder"].hifigan_config().max_steps == 3
    for bad, message in [
        ("vocoder.hifigan.max_stepz=3", "vocoder.hifigan.max_stepz: unknown key; valid keys: "),
        ("vocoder.hifigan.max_steps=0", "vocoder.hifigan.max_steps: must be > 0"),
        ("vocoder.hifigan.n_units=5", "vocoder.hifigan.n_units: set from the tokenizer"),
        ("vocoder.hifigan.upsample_rates=[5,4]", "vocoder.hifigan: upsample_kernels: needs one"),
        ("vocoder.preset=huge", "vocoder.preset: must be one of tiny, paper"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_recipe("gslm", "tiny", [*base, bad])
        assert str(err.value).startswith(message), str(err.value)


def test_envelope_options_are_validated_at_load():
    base = ["vocoder.kind=envelope"]
    cfg = load_recipe("gslm", "tiny", [*base, "vocoder.envelope.max_steps=7"])
    assert cfg.confs["vocoder"].envelope_config().max_steps == 7
    for bad, message in [
        ("vocoder.envelope.max_stepz=3", "vocoder.envelope.max_stepz: unknown key; valid keys: "),
        ("vocoder.envelope.kernel=4", "vocoder.envelope.kernel: must be odd"),
        ("vocoder.envelope.n_units=5", "vocoder.envelope.n_units: set from the tokenizer"),
        ("vocoder.hifigan.max_steps=3", "vocoder.hifigan: only for kind hifigan"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_recipe("gslm", "tiny", [*base, bad])
        assert str(err.value).startswith(message), str(err.value)
    with pytest.raises(ConfigError, match="vocoder.preset: only for the trained kinds"):
        load_recipe("gslm", "tiny", ["vocoder.kind=fallback", "vocoder.preset=paper"])


# ---- the stage list ---------------------------------------------------------------------------
def _recipe_file(tmp_path, stages, sections=None) -> str:
    """A recipe listing ``stages``, with gslm's tiny sections (``sections``, default: those of
    the listed stages)."""
    tiny = yaml.safe_load((RECIPE_DIR / "gslm.yaml").read_text())["scales"]["tiny"]
    if sections is None:
        sections = [STAGES.get(s).key for s in stages if s in STAGES]
    tiny = {k: tiny[k] for k in sections if k in tiny}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"name": "mine", "stages": stages, "scales": {"tiny": tiny}}))
    return str(path)


def test_unknown_stage_lists_the_registered_ones(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_recipe(_recipe_file(tmp_path, ["corpus", "data", "tokenise"]))
    msg = str(err.value)
    assert msg.startswith("stages: unknown stage 'tokenise'; valid: ")
    for name in ("corpus", "data", "benchmark", "tokenizer", "tokens", "textlm", "model",
                 "vocoder", "eval", "generate"):
        assert name in msg


@pytest.mark.parametrize("stages, message", [
    (["data", "corpus"], "stages: 'data' reads the output of stage 'corpus', which must come "
                         "before it"),
    (["corpus", "data", "tokenizer", "tokens", "model", "model"], "stages: 'model' is listed "
                                                                  "twice"),
    (["corpus", "data", "tokenizer", "vocoder", "tokens", "model"],
     "stages: 'vocoder' must come after 'model'"),
])
def test_stage_graph_is_checked_at_load(tmp_path, stages, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_recipe(_recipe_file(tmp_path, stages))


def test_a_warm_start_without_a_text_lm_stage_is_refused(tmp_path):
    path = Path(_recipe_file(tmp_path, ["corpus", "data", "tokenizer", "tokens", "model"]))
    doc = yaml.safe_load(path.read_text())
    doc["scales"]["tiny"]["train"] = {"init": "warm"}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match="'model' reads the output of stage 'textlm', which is "
                                          "missing"):
        load_recipe(str(path))


def test_a_recipe_may_leave_stages_out(tmp_path):
    # a section of a stage the recipe does not list is an error that lists the valid sections
    with pytest.raises(ConfigError, match="unknown section '.*' for recipe 'mine'; valid "
                                          "sections: corpus, data, benchmark$"):
        load_recipe(_recipe_file(tmp_path, ["corpus", "data", "benchmark"],
                                 sections=["corpus", "data", "benchmark", "tokenizer"]))
    path = _recipe_file(tmp_path, ["corpus", "data"])
    assert load_recipe(path).stages == ["corpus", "data"]


def test_viola_single_task_baselines_have_the_multi_task_models_size():
    """Every viola_* format declares every range, so one task alone builds the same model."""
    from speechlm.recipes.pipeline import plan_recipe
    from speechlm.recipes.stages import RunContext

    plans = plan_recipe(RunContext(load_recipe("viola", "tiny"), None))
    stages = ("model", "single_asr", "single_st", "single_mt", "single_tts")
    assert len({plans[s]["parameters"] for s in stages}) == 1
    assert len({plans[s]["vocabulary"] for s in stages}) == 1
    assert "100 held-out items per text task" in plans["viola"]["viola"]
