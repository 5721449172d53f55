"""Recipe stages: the ``STAGES`` registry, the :class:`Stage` spec and what a stage sees.

A recipe YAML lists its stages (``stages: [corpus, data, ...]``); each name is looked up here.
A :class:`Stage` holds the stage's config dataclass (its YAML section is validated when the
recipe loads), the earlier stages it reads, its ``run`` function and its ``plan`` function (what
``speechlm run --dry-run`` prints). Adding a stage is one module that calls ``STAGES.add`` and
its name in ``STAGE_MODULES``; the pipeline is not edited, and any recipe may then list it::

    @dataclass
    class AsrConfig(Config):
        max_utterances: int = positive(100)

    def _run(ctx, conf, d):  # -> figures for .done and the report
        return transcribe(ctx.dir("generate"), d, conf.max_utterances)

    def _plan(ctx, conf):  # what --dry-run prints; no work
        return {"asr": f"{conf.max_utterances} utterances"}

    STAGES.add("asr", Stage("asr", _run, _plan, config=AsrConfig, needs=("generate",)))

Paths: a stage writes inside its own directory ``RUN/<stage>``; what it records (its ``.done``
file, a manifest it writes) holds paths relative to the run directory, or absolute ones only for
files outside the run (``RunContext.rel``), so a moved run directory resumes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from speechlm.config import Config
from speechlm.registry import Registry

if TYPE_CHECKING:
    from speechlm.recipes.config import Recipe

STAGE_MODULES = (
    "speechlm.recipes.stages.corpus",  # corpus, data, benchmark
    "speechlm.recipes.stages.ssl",  # ssl
    "speechlm.recipes.stages.tokens",  # tokenizer, tokens
    "speechlm.recipes.stages.lm",  # textlm, model
    "speechlm.recipes.stages.vocoder",  # vocoder
    "speechlm.recipes.stages.evaluation",  # eval, generate
    "speechlm.recipes.stages.alignment",  # preferences, align
    "speechlm.recipes.stages.style",  # style
    "speechlm.recipes.stages.crossmodal",  # crossmodal
    # dialogues, dialogue_tokens, dialogue_generate, turns, dialogue_eval
    "speechlm.recipes.stages.dialogue",
    "speechlm.recipes.stages.codec_lm",  # codec, nar, delayed, tts
    "speechlm.recipes.stages.audiolm",  # acoustic_tokens, coarse, fine, continuation
    "speechlm.recipes.stages.viola",  # single_asr, single_st, single_mt, single_tts, viola
    "speechlm.recipes.stages.instruct",  # instructions, sft_cross, sft_chain, sft_direct, qa
    "speechlm.recipes.stages.duplex",  # duplex_corpus, duplex_tokens, duplex_eval, fusions
)


@dataclass
class RunContext:
    """What every stage function receives: the recipe, the run directory, the user's inputs."""

    recipe: Recipe
    out: Path | None  # the run directory, absolute (None in a dry run without --out)
    manifest: Path | None = None  # --manifest: an imported corpus instead of synthetic speech
    records: dict[str, dict] = field(default_factory=dict)  # stage -> its .done record

    def __post_init__(self) -> None:
        self.out = None if self.out is None else Path(self.out).resolve()
        self.manifest = None if self.manifest is None else Path(self.manifest).resolve()

    def conf(self, stage: str) -> Any:
        """The validated config of ``stage`` (None for a stage without settings)."""
        return self.recipe.confs[stage]

    def dir(self, stage: str) -> Path:
        """The directory ``stage`` writes: ``RUN/<stage>``."""
        assert self.out is not None, "a dry run has no run directory"
        return self.out / stage

    def rel(self, path: str | Path, start: str | Path | None = None) -> str:
        """``path`` as stored on disk: relative to ``start`` (default the run directory) when
        it lies inside the run directory, absolute otherwise (a user's corpus, a checkpoint)."""
        p = Path(path).resolve()
        if self.out is not None and p.is_relative_to(self.out):
            return os.path.relpath(p, Path(start or self.out).resolve())
        return str(p)


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe.

    ``run(ctx, conf, stage_dir) -> info`` does the work (``info`` goes into ``.done`` and the
    report); ``plan(ctx, conf) -> facts`` describes it without doing any work (no data, no
    weights, no download) and raises ``ConfigError`` for what cannot run, naming the key within
    the stage's section (as ``Config.validate`` does). ``needs`` are earlier stages whose
    outputs it reads (``extra_needs(conf)`` adds more that depend on its config); their recorded
    configurations are part of this stage's, so a changed input is never silently reused.
    ``after`` are stages that must run earlier when the recipe has them, without being inputs
    (the vocoder installs itself into ``RUN/model``). ``finish(ctx)`` runs on every start once
    the stage is done, ran or skipped: cheap work outside its record.
    """

    name: str
    run: Callable[[RunContext, Any, Path], dict | None]
    plan: Callable[[RunContext, Any], dict[str, Any]]
    config: type[Config] | None = None  # None: the stage has no settings (and no section)
    section: str = ""  # its YAML key; default: the stage name (the model stage's is "train")
    parse: Callable[[Any, str], Any] | None = None  # section -> config; default config.from_dict
    needs: tuple[str, ...] = ()
    extra_needs: Callable[[Any], tuple[str, ...]] | None = None
    after: tuple[str, ...] = ()
    record: Callable[[RunContext, Any], dict] | None = None  # default: config_values(conf)
    finish: Callable[[RunContext], None] | None = None

    @property
    def key(self) -> str:
        """The YAML section holding this stage's settings."""
        return self.section or self.name

    def load(self, section: Any) -> Any:
        """The validated config from the recipe's section (errors start with ``key.``)."""
        if self.parse is not None:
            return self.parse(section, f"{self.key}.")
        if self.config is None:
            return None
        return self.config.from_dict(section, prefix=f"{self.key}.")

    def needs_of(self, conf: Any) -> tuple[str, ...]:
        """Every stage this one reads, given its config."""
        return self.needs + (self.extra_needs(conf) if self.extra_needs else ())

    def values(self, ctx: RunContext, conf: Any) -> dict:
        """What this stage records as its own configuration."""
        return self.record(ctx, conf) if self.record else config_values(conf)


STAGES: Registry[Stage] = Registry("stage", STAGE_MODULES)


def config_values(conf: Config | None) -> dict:
    """A config as plain JSON values, unset options (None, {}) left out."""
    if conf is None:
        return {}
    return {k: v for k, v in conf.to_dict().items() if v is not None and v != {}}


def offline_hf_config(ref: str | None) -> Any:
    """The ``transformers`` config of a local folder or an already cached hub id, else None.

    Never downloads: a dry run must work offline and without weights.
    """
    if not ref:
        return None
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref, local_files_only=True)
    except (OSError, ValueError):
        return None


def refuse_recipe_keys(section: dict, prefix: str, paths: dict[str, str]) -> None:
    """A stage section must not set the paths the recipe fills in (``key -> RUN/...``)."""
    from speechlm.errors import ConfigError

    for key, rel in paths.items():
        if key in section:
            raise ConfigError(f"{prefix}{key}: set by the recipe (RUN/{rel}); remove it")
