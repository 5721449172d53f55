"""Cross-modal zero-shot evaluation after SpiRit-LM's tables: StoryCloze and next-word probes
with the prompt and the ending each spoken or written (S->S, S->T, T->S, T->T).

Items are made here from the grammar, seeded, and spoken by the held-out voices (never the
training ones). A *group* is a prompt with candidate endings, the true one first, each spoken
with the prompt as one utterance (one voice, rate and pitch per group) with gold word times:

- a story: four context sentences; the true ending, a tSC wrong one (the ending of another
  random story) and an sSC one (another scenario's ending told about the same character);
- a probe: the first k words of a sentence; the true next word, or a distractor of the same
  part of speech and form (:func:`word_classes`, so a swap keeps agreement).

Prompt and ending are cut where the first ending word starts, as the ``interleaved`` format
cuts its spans (:func:`~speechlm.sequences.formats.word_token_spans`): speech tokens before it
are the prompt's, the rest the ending's. The written forms are the words' labels joined by
spaces, as interleaved text spans are. Both sides of an item share the prompt cut from the true
utterance, so the summed log-probability of the sequence ranks the ending's conditional
likelihood. One sequence per direction (:func:`direction_ids`; no EOS, as scored prompts)::

    S->S  BOS [SPEECH] prompt-speech ending-speech
    S->T  BOS [SPEECH] prompt-speech [TEXT] ending-text
    T->S  BOS [TEXT] prompt-text [SPEECH] ending-speech
    T->T  BOS [TEXT] prompt-text ending-text          (one text span, tokenised joined)

Speech is what the model's speech example holds: units, or for an expressive model units,
pitch and style tokens merged by time. Accuracy is the pairwise rule (1 / 0.5 / 0,
``speechlm.evaluate.pairwise``). A model without text tokens measures S->S only; the other
directions are reported as not applicable, never as 0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError, SpeechLMError
from speechlm.evaluate.pairwise import pairwise_accuracy
from speechlm.evaluate.report import CHANCE
from speechlm.generate.crossmodal import DIRECTIONS, check_directions

TASKS = {"tsc": "StoryCloze: another story's ending (tSC)",
         "ssc": "StoryCloze: another scenario's ending, same character (sSC)",
         "nextword": "next word: a word of the same class"}
ENCODE_BATCH = 16  # utterances per call of the speech tokenizer
NO_TEXT = ("the model's vocabulary has no text tokens (train it with init: warm from a text LM, "
           "vocab_mode: extend and an interleaved format)")


def figure_name(task: str, direction: str) -> str:
    """The figure's name in a run's ``results.json``: ``tsc`` and ``S->T`` -> ``tsc_s2t``."""
    return f"{task}_{direction.replace('->', '2').lower()}"


# ---- the sequences of one item (pure) -------------------------------------------------------
def direction_ids(direction: str, vocab: Any, prompt_speech: Sequence[int],
                  ending_speech: Sequence[int], prompt_text: str, ending_text: str,
                  dedup: bool = True) -> list[int]:
    """The id sequence of one side of an item in ``direction`` (layouts in the module doc).

    ``*_speech`` are vocabulary ids of speech tokens, ``*_text`` words joined by spaces. With
    ``dedup`` (a de-duplicating tokenizer), S->S drops an ending's first token equal to the
    prompt's last, as the tokenizer would on the joined audio: the wrong ending is cut from
    another utterance than the prompt, and a repeat the model never saw would penalise it.
    """
    source, target = check_directions([direction])[0].split("->")
    if source == "T" and target == "T":  # one text span, as interleaving writes adjacent words
        return [vocab.bos_id, vocab.text_id, *vocab.text_to_ids(f"{prompt_text} {ending_text}")]
    ids = [vocab.bos_id]
    if source == "S":
        ids += [vocab.speech_id, *prompt_speech]
    else:
        ids += [vocab.text_id, *vocab.text_to_ids(prompt_text)]
    if target == "T":
        return [*ids, vocab.text_id, *vocab.text_to_ids(ending_text)]
    ending = list(ending_speech)
    if source == "S":
        if dedup and ending and prompt_speech and ending[0] == prompt_speech[-1]:
            ending = ending[1:]
        return [*ids, *ending]
    return [*ids, vocab.speech_id, *ending]


def pair_accuracy(ids: Sequence[str], true_scores: Sequence[float],
                  wrong_scores: Sequence[float]) -> dict:
    """The pairwise rule over items ``ids`` given each side's score (NaN: the pair is skipped)."""
    rows = [{"id": i, "correct": c} for i in ids for c in (1, 0)]
    scores = [float(s) for pair in zip(true_scores, wrong_scores, strict=True) for s in pair]
    r = pairwise_accuracy(rows, scores)
    return {"accuracy": r["accuracy"] if r["n_items"] else None, "n_items": r["n_items"],
            "n_pairs": r["n_pairs"], "std": r["std"] if r["n_items"] > 1 else None,
            "n_skipped": r["n_skipped"], "chance": CHANCE}


# ---- items ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """A prompt and its candidate endings (the true one first), spoken by one voice;
    ``pairs`` maps each task to the index of its wrong ending."""

    id: str
    prompt: str
    endings: tuple[str, ...]
    voice: str
    pairs: tuple[tuple[str, int], ...]


def story_groups(n: int, seed: int, voices: Sequence[str]) -> list[Group]:
    """``n`` stories with their true, tSC and sSC endings (drawn as ``build_storycloze`` does)."""
    from speechlm.corpus.grammar import STORIES, Grammar, story_ending

    rng = np.random.default_rng([seed, 0])
    grammar = Grammar(rng)
    groups = []
    for i in range(n):
        context, scenario, slots = grammar.story()
        other = (scenario + 1 + int(rng.integers(len(STORIES) - 1))) % len(STORIES)
        endings = (story_ending(scenario, slots), story_ending(other, grammar.story_slots()),
                   story_ending(other, slots))
        groups.append(Group(f"story{i:04d}", " ".join(context), endings,
                            voices[int(rng.integers(len(voices)))], (("tsc", 1), ("ssc", 2))))
    return groups


def word_classes() -> dict[str, list[str]]:
    """The lexicon's interchangeable words by part of speech and form; a word of several
    classes (``fish``: singular and plural) is in none, so no distractor breaks agreement."""
    from speechlm.corpus import lexicon as lx

    verbs = lx.VERBS_INTRANSITIVE + lx.VERBS_TRANSITIVE
    classes = {"noun_sg": [p[0] for p in lx.NOUNS + lx.THINGS],
               "noun_pl": [p[1] for p in lx.NOUNS + lx.THINGS],
               "verb_base": [v[0] for v in verbs], "verb_3sg": [v[1] for v in verbs],
               "verb_past": [v[2] for v in verbs], "adjective": lx.ADJECTIVES,
               "place": lx.PLACES, "adverb": lx.ADVERBS, "name": [n for n, _ in lx.NAMES],
               "food": lx.FOODS}
    seen: dict[str, set[str]] = {}
    for name, words in classes.items():
        for w in words:
            seen.setdefault(w, set()).add(name)
    return {name: sorted({w for w in words if len(seen[w]) == 1})
            for name, words in classes.items()}


def probe_groups(n: int, seed: int, voices: Sequence[str]) -> list[Group]:
    """``n`` next-word probes: a grammar sentence cut before a random word of a class (not the
    first word), that word against a uniformly drawn other word of its class."""
    from speechlm.corpus.grammar import Grammar, words_of

    rng = np.random.default_rng([seed, 1])
    grammar = Grammar(rng)
    classes = word_classes()
    class_of = {w: c for c, words in classes.items() for w in words if len(words) > 1}
    groups: list[Group] = []
    while len(groups) < n:
        words = words_of(grammar.sentence())
        spots = [k for k in range(1, len(words)) if words[k] in class_of]
        if not spots:
            continue
        k = spots[int(rng.integers(len(spots)))]
        pool = [w for w in classes[class_of[words[k]]] if w != words[k]]
        groups.append(Group(f"probe{len(groups):04d}", " ".join(words[:k]),
                            (words[k], pool[int(rng.integers(len(pool)))]),
                            voices[int(rng.integers(len(voices)))], (("nextword", 1),)))
    return groups


def speak_texts(texts: Sequence[Sequence[str]], voices: Sequence[str], seed: int,
                progress: bool = False) -> list[list[Any] | str]:
    """Each list of texts spoken by its voice at one drawn rate and pitch: espeak ``Spoken``
    records (audio and word times), or the reason espeak failed on one of them."""
    from speechlm.corpus.benchmarks import Speaker
    from speechlm.progress import progress_bar

    speaker = Speaker(np.random.default_rng([seed, 3]))
    out: list[list[Any] | str] = []
    for group, voice in progress_bar(list(zip(texts, voices, strict=True)), unit="item",
                                     desc="synthesising", disable=not progress):
        params = speaker.params()  # drawn first: a failure does not shift later items
        try:
            out.append([speaker.say(t, voice, params) for t in group])
        except SpeechLMError as e:
            out.append(f"espeak: {e}")
    return out


def encode_waves(lm: Any, wavs: Sequence[np.ndarray], sample_rate: int,
                 progress: bool = False) -> list[Any]:
    """Waveforms -> the model's speech tokenizer's ``Streams`` (a reason string where one
    failed), in batches; a failed batch is retried one utterance at a time to find the bad one."""
    from speechlm.progress import progress_bar

    tok = lm.speech_tokenizer
    out: list[Any] = []
    starts = range(0, len(wavs), ENCODE_BATCH)
    for i in progress_bar(starts, unit="batch", desc="tokenising", disable=not progress):
        chunk = list(wavs[i:i + ENCODE_BATCH])
        try:
            out += tok.encode(chunk, sample_rate)
        except Exception:  # noqa: BLE001 - any failure: find the utterance(s) one by one
            for wav in chunk:
                try:
                    out += tok.encode([wav], sample_rate)
                except Exception as e:  # noqa: BLE001 - skipped and listed, not fatal
                    out.append(f"tokenizer: {type(e).__name__}: {e}")
    return out


def speech_tokens(lm: Any, streams: Any) -> tuple[np.ndarray, np.ndarray]:
    """The speech ids of one utterance as the model's speech example holds them, with each
    token's time in seconds: units at their frame's time, or for an expressive model units,
    pitch and style merged by time (``merged_tokens``)."""
    fmt = lm.architecture.speech_format
    if fmt == "expressive":
        from speechlm.sequences.expressive import merged_tokens

        row = {n: getattr(streams, n) for n in streams.names()}
        rates = {k: getattr(streams, k) for k in ("pitch_rate", "style_rate")}
        return merged_tokens(row, lm.vocab, float(streams.frame_rate),
                             **{k: float(v) for k, v in rates.items() if v is not None})
    if fmt != "speech_only":
        raise ConfigError(f"{lm.dir}: cross-modal scoring reads one token stream; the "
                          f"'{lm.architecture.name}' architecture writes speech as {fmt}")
    durations = (np.ones(len(streams.units), np.int64) if streams.durations is None
                 else np.asarray(streams.durations, np.int64))
    times = (np.cumsum(durations) - durations) / float(streams.frame_rate)
    return lm.vocab.units_to_ids(streams.units), times


def word_spans(spoken: Any, times: np.ndarray) -> list[tuple[int, int]]:
    """Each spoken word's ``[first, end)`` over tokens at ``times``, cut at word starts."""
    from speechlm.sequences.formats import word_token_spans

    return word_token_spans([{"label": w, "start": a, "end": b} for w, a, b in spoken.words],
                            times)


@dataclass(frozen=True)
class Cut:
    """A group as one model reads it: the shared prompt and each ending, spoken and written."""

    prompt_speech: list[int]
    prompt_text: str
    endings_speech: list[list[int]]
    endings_text: list[str]


def cut_group(lm: Any, group: Group, said: Sequence[Any], streams: Sequence[Any]) -> Cut:
    """Cut each spoken ending of ``group`` at its first word; the prompt is the true one's.

    Raises ``SpeechLMError`` naming what is unusable (so the group is skipped and listed).
    """
    from speechlm.corpus.grammar import words_of

    n_prompt = len(words_of(group.prompt))
    parts = []  # (speech ids, index of the first ending token, word labels) per ending
    for s, ending, st in zip(said, group.endings, streams, strict=True):
        if isinstance(st, str):
            raise SpeechLMError(st)
        labels = [w for w, _, _ in s.words]
        if len(labels) != n_prompt + len(words_of(ending)):
            raise SpeechLMError(f"espeak spoke {len(labels)} words for {group.prompt!r} + "
                                f"{ending!r}")
        ids, times = speech_tokens(lm, st)
        cut = word_spans(s, times)[n_prompt][0]
        if cut == 0 or cut == len(ids):
            raise SpeechLMError(f"no speech token before or after the cut of {ending!r}")
        parts.append((ids.tolist(), cut, labels))
    ids, cut, labels = parts[0]
    return Cut(ids[:cut], " ".join(labels[:n_prompt]), [i[c:] for i, c, _ in parts],
               [" ".join(lab[n_prompt:]) for _, _, lab in parts])


# ---- the evaluation ---------------------------------------------------------------------------
def item_sequences(lm: Any, groups: Sequence[Group], said: Sequence[Any],
                   streams: dict[int, list[Any]], directions: Sequence[str]
                   ) -> tuple[list[dict], list[tuple], list[dict]]:
    """(item rows, ``((id, task), direction, [true ids, wrong ids])`` per item and direction,
    skipped groups with their reason) of the spoken and tokenised ``groups``."""
    from speechlm.models.causal_lm import context_length

    dedup = bool(getattr(lm.speech_tokenizer, "dedup", True))
    context = context_length(lm.model.config)
    items, seqs, skipped = [], [], []
    for gi, g in enumerate(groups):
        try:
            if isinstance(said[gi], str):
                raise SpeechLMError(said[gi])
            cut = cut_group(lm, g, said[gi], streams[gi])
            mine = [((g.id, task), d, [direction_ids(d, lm.vocab, cut.prompt_speech,
                                                     cut.endings_speech[j], cut.prompt_text,
                                                     cut.endings_text[j], dedup)
                                       for j in (0, wrong)])
                    for task, wrong in g.pairs for d in directions]
            longest = max(len(ids) for *_, pair in mine for ids in pair)
            if context is not None and longest > context:  # the model never saw such positions
                raise SpeechLMError(f"{longest} tokens do not fit the model's context of "
                                    f"{context}")
        except SpeechLMError as e:
            skipped.append({"id": g.id, "tasks": [t for t, _ in g.pairs], "reason": str(e)})
            continue
        items += [{"id": g.id, "task": task, "voice": g.voice, "prompt": cut.prompt_text,
                   "true": cut.endings_text[0], "wrong": cut.endings_text[wrong],
                   "prompt_speech_tokens": len(cut.prompt_speech), "scores": {}}
                  for task, wrong in g.pairs]
        seqs += mine
    return items, seqs, skipped


def evaluate_crossmodal(model_dir: Any, out_dir: str | Path, n_stories: int = 100,
                        n_probes: int = 100, seed: int = 0,
                        directions: Sequence[str] = DIRECTIONS, batch_size: int = 32,
                        device: str | None = None, progress: bool = True) -> dict:
    """Score ``n_stories`` stories (a tSC and an sSC item each) and ``n_probes`` next-word
    probes in each of ``directions``; write ``crossmodal.json`` and ``crossmodal.md`` to
    ``out_dir`` and return the JSON's content.

    A group that cannot be used (espeak or the tokenizer failed, a cut with no speech on one
    side, a sequence longer than the model's context) is skipped and listed under ``skipped``.
    For a model without text tokens the directions other than S->S are not applicable.
    """
    from speechlm.corpus.benchmarks import SAMPLE_RATE
    from speechlm.corpus.synth import HELDOUT_VOICES
    from speechlm.evaluate.report import _json_safe
    from speechlm.evaluate.scoring import load_model
    from speechlm.models.causal_lm import SUM, score_sequences

    directions = check_directions(directions)
    if min(n_stories, n_probes) < 0 or n_stories + n_probes == 0:
        raise ConfigError(f"stories and probes: non-negative, at least one item in all; got "
                          f"{n_stories} and {n_probes}")
    lm = load_model(model_dir, device)
    measured = [d for d in directions if d == "S->S" or lm.vocab.has_text]
    if not measured:  # refused before any work
        raise ConfigError(f"{lm.dir}: directions {', '.join(directions)} need text tokens; "
                          f"{NO_TEXT}")
    voices = list(HELDOUT_VOICES)
    groups = story_groups(n_stories, seed, voices) + probe_groups(n_probes, seed, voices)
    said = speak_texts([[f"{g.prompt} {e}" for e in g.endings] for g in groups],
                       [g.voice for g in groups], seed, progress)
    flat = [(gi, j) for gi, s in enumerate(said) if not isinstance(s, str)
            for j in range(len(s))]
    streams: dict[int, list[Any]] = {}
    for (gi, _), st in zip(flat, encode_waves(lm, [said[gi][j].wav for gi, j in flat],
                                              SAMPLE_RATE, progress), strict=True):
        streams.setdefault(gi, []).append(st)

    items, seqs, skipped = item_sequences(lm, groups, said, streams, measured)
    flat_ids = [ids for *_, pair in seqs for ids in pair]  # true, wrong, true, wrong, ...
    scores = (score_sequences(lm.model, flat_ids, batch_size=batch_size, progress=progress)
              [:, SUM] if flat_ids else np.zeros(0))
    by_key = {(it["id"], it["task"]): it for it in items}
    for k, (key, d, _) in enumerate(seqs):
        by_key[key]["scores"][d] = [float(scores[2 * k]), float(scores[2 * k + 1])]

    results: dict[str, dict] = {}
    for task, n in (("tsc", n_stories), ("ssc", n_stories), ("nextword", n_probes)):
        mine = [it for it in items if it["task"] == task]
        if n:
            results[task] = {d: pair_accuracy([it["id"] for it in mine],
                                              [it["scores"][d][0] for it in mine],
                                              [it["scores"][d][1] for it in mine])
                             if d in measured else {"accuracy": None, "not_applicable": NO_TEXT}
                             for d in directions}
    result = _json_safe({
        "model": str(lm.dir), "seed": seed, "n_stories": n_stories, "n_probes": n_probes,
        "directions": directions, "voices": voices, "chance": CHANCE, "scoring": "sum",
        "dedup_join": bool(getattr(lm.speech_tokenizer, "dedup", True)), "results": results,
        "figures": {figure_name(t, d): r for t, by in results.items() for d, r in by.items()
                    if r["accuracy"] is not None},
        "not_applicable": {d: NO_TEXT for d in directions if d not in measured},
        "items": items, "skipped": skipped})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "crossmodal.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "crossmodal.md").write_text(crossmodal_markdown(result))
    return result


def accuracy_table(result: dict) -> tuple[list[str], list[list[Any]]]:
    """(header, rows) of the task x direction table: accuracy, ``n/a`` where not applicable."""
    directions = result["directions"]
    rows = []
    for task, by in result["results"].items():
        n = max((r.get("n_items", 0) for r in by.values()), default=0)
        rows.append([task, n, *("n/a" if by[d]["accuracy"] is None and "not_applicable" in by[d]
                                else by[d]["accuracy"] for d in directions)])
    return ["task", "items", *directions], rows


def crossmodal_markdown(result: dict) -> str:
    """``crossmodal.md``: the task x direction table, what the sequences are, skipped items."""
    from speechlm.evaluate.report import markdown_table

    md = ["# Cross-modal zero-shot evaluation", "",
          f"Model: {result['model']}; {result['n_stories']} stories (a tSC and an sSC item "
          f"each) and {result['n_probes']} next-word probes spoken by the held-out voices "
          f"({', '.join(result['voices'])}); seed {result['seed']}; "
          f"{len(result['skipped'])} skipped. Accuracy by the pairwise rule (chance "
          f"{result['chance']}): the true ending's sequence scores a higher summed "
          "log-probability than the wrong one's (same prompt).", "",
          markdown_table(*accuracy_table(result)), "",
          *[f"- {t}: {TASKS[t]}" for t in result["results"]], ""]
    if result["not_applicable"]:
        md += [f"n/a ({', '.join(result['not_applicable'])}): {NO_TEXT}.", ""]
    md += ["Sequences (speech: the model's speech tokens, cut at the first ending word's start "
           "by the gold word times; text: the words joined by spaces):", "", "```",
           "S->S  BOS [SPEECH] prompt-speech ending-speech",
           "S->T  BOS [SPEECH] prompt-speech [TEXT] ending-text",
           "T->S  BOS [TEXT] prompt-text [SPEECH] ending-speech",
           "T->T  BOS [TEXT] prompt-text ending-text", "```", ""]
    if result["skipped"]:
        md += ["## Skipped items", "", markdown_table(
            ["id", "tasks", "reason"], [[s["id"], ", ".join(s["tasks"]),
                                        s["reason"].replace("|", "\\|")]
                                       for s in result["skipped"]]), ""]
    return "\n".join(md)
