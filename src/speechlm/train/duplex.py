"""The ``duplex`` objective: a full-duplex model on windows of two-channel scenarios.

Data: the token datasets of the ``duplex_tokens`` stage (``speechlm.tokenizers.duplex``): per
scenario the user channel's frame units (``listen``), the assistant's (``speak``) and the text
stream (``text``), and optionally the words heard on the microphone (``transcript``);
``info.json`` holds ``text_vocab``, the ``silence_unit`` and, with a transcript, its
``transcript_vocab``. Each row is cut into half-overlapping windows of ``seq_len`` frames
(``speechlm.sequences.duplex``) with the streams shifted; the loss is the model's (the unit
cross-entropy plus ``text_weight`` times the text one, plus ``transcript_weight`` times the
transcript head's, which the model has when the data has a transcript). The model is built
here, sized from the data (``architecture: duplex``, cold init: there is no pre-trained duplex
model to start from at toy scale); ``run_training`` trains it like any objective (step
caps, early stopping, the best checkpoint by held-out loss, resume).

``extra_metrics`` adds the held-out losses of each stream and the accuracy of the state tokens
(``<answer>``, ``<silent>``, ``<irq>``, ``<bc>``) at their frames: how often the model's most
likely text token at a decision point is the right state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from speechlm.errors import ConfigError
from speechlm.train.objectives import OBJECTIVES, Objective, speech_lm_trainer


class DuplexWindows:
    """A duplex token dataset as training windows (formatted once, kept in memory: a tiny
    recipe's scenarios are a few MB of int32).

    ``own_dropout`` > 0 (training only): each frame of the model's own speech is fed back to it
    as the silence unit with that probability. Live, the model reads back what it sampled, and
    one silence unit sampled mid-answer would otherwise read as "I have stopped" (in the data
    its speech never breaks mid-sentence), ending answers early; so it learns to go on.
    """

    def __init__(self, data_dir: str | Path, n_units: int, text_bos: int, seq_len: int,
                 key: str = "data", own_dropout: float = 0.0, silence: int = 0,
                 seed: int = 0) -> None:
        from speechlm.sequences.duplex import COLUMNS, duplex_windows
        from speechlm.train.data import load_rows

        rows = load_rows(data_dir)
        missing = [c for c in COLUMNS if c not in rows.column_names]
        if missing:
            raise ConfigError(f"{key}: {data_dir} has no column {', '.join(missing)} (a duplex "
                              f"dataset has {', '.join(COLUMNS)}: speechlm.tokenizers.duplex)")
        self.items = [w for row in rows for w in duplex_windows(row, n_units, text_bos, seq_len)]
        if not self.items:
            raise ConfigError(f"{key}: {data_dir} holds no scenario")
        self.n_tokens = sum(len(w["listen"]) for w in self.items)
        self.has_transcript = "transcript_labels" in self.items[0]
        self.own_dropout, self.silence = float(own_dropout), int(silence)
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        from speechlm.sequences.duplex import drop_own

        item = self.items[i]
        if not self.own_dropout:
            return item
        return {**item, "speak_in": drop_own(item["speak_in"], self.own_dropout, self.silence,
                                             self.rng)}


class DuplexObjective(Objective):
    """Next unit and next text/control token of the model's own streams, listening throughout."""

    name = "duplex"
    streams = None
    takes_formats = False
    # own_dropout: see DuplexWindows; state_weight: see state_loss_weights
    params = {"own_dropout": 0.0, "state_weight": 1.0}

    def check(self, cfg, uses) -> None:
        super().check(cfg, uses)
        if uses:
            raise ConfigError("formats: objective duplex trains on the duplex scenarios' three "
                              "streams and takes no formats; remove the formats key")
        if cfg.init != "cold":
            raise ConfigError(f"init: a duplex model starts cold (got {cfg.init!r})")

    def build(self, cfg, info):
        from speechlm.models.architecture import get_architecture
        from speechlm.models.duplex import build_duplex
        from speechlm.sequences.vocab import SpeechVocab

        if "text_vocab" not in info:
            raise ConfigError(f"data: {Path(cfg.data) / 'info.json'} has no text_vocab; a "
                              "duplex dataset is written by the duplex_tokens stage")
        n_units = int(info["n_units"])
        model = build_duplex(cfg.model, n_units, info["text_vocab"], seed=cfg.seed,
                             transcript_vocab=info.get("transcript_vocab"))
        model.config.silence_unit = int(info["silence_unit"])
        # the vocabulary file every model directory has: the units (the text vocabulary is the
        # model config's text_vocab)
        vocab = SpeechVocab.build({"units": n_units}, [])
        return (get_architecture("duplex"), model, vocab,
                {"init": "cold", "model_type": "duplex"})

    def extra_meta(self, cfg, info, model):
        c = model.config
        return {"formats": {}, "duplex": {"fusion": c.fusion, "n_units": c.n_units,
                                          "n_text": c.n_text, "silence_unit": c.silence_unit,
                                          "n_transcript": c.n_transcript}}

    def datasets(self, cfg, vocab, model, uses=(), eval_uses=()):
        from speechlm.models.modeling_duplex import DuplexLM

        if not isinstance(model, DuplexLM):
            raise ConfigError(f"objective: duplex trains a DuplexLM, not a {type(model).__name__}")
        c = model.config
        drop = float(self.args(cfg)["own_dropout"])
        if not 0 <= drop < 1:
            raise ConfigError(f"objective_args.own_dropout: a probability in [0, 1), got {drop}")
        train = DuplexWindows(cfg.data, c.n_units, c.text_bos_id, cfg.seq_len, "data",
                              own_dropout=drop, silence=c.silence_unit, seed=cfg.seed)
        valid = (DuplexWindows(cfg.eval_data, c.n_units, c.text_bos_id, cfg.seq_len, "eval_data")
                 if cfg.eval_data else None)
        for ds, key in ((train, "data"), (valid, "eval_data")):
            # the held-out loss must be the training loss's sum of parts
            if ds is not None and ds.has_transcript != bool(c.n_transcript):
                raise ConfigError(f"{key}: {getattr(cfg, key)} has "
                                  f"{'a' if ds.has_transcript else 'no'} transcript stream, the "
                                  f"model {'has none' if ds.has_transcript else 'has one'}: "
                                  "tokenise both splits with the same duplex_tokens settings")
        weight = self.args(cfg)["state_weight"]
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise ConfigError(f"objective_args.state_weight: a number > 0, got {weight!r}")
        if weight != 1:
            c.text_loss_weights = state_loss_weights(train, list(c.text_vocab), float(weight))
        return train, valid

    def trainer(self, cfg, model, vocab, train_ds, eval_ds, callbacks):
        from speechlm.sequences.duplex import duplex_collate

        labels = ["speak_labels", "text_labels"]
        if train_ds.has_transcript:
            labels.append("transcript_labels")
        return speech_lm_trainer(cfg, model, vocab, train_ds, eval_ds, callbacks,
                                 duplex_collate(model.config.n_units), label_names=labels)

    def extra_metrics(self, trainer, train_ds, eval_ds, vocab, cfg):
        if eval_ds is None:
            return {}
        return {"eval": held_out_figures(trainer.model, eval_ds, cfg.batch_size)}


def state_loss_weights(ds: DuplexWindows, vocab: list[str], weight: float
                       ) -> dict[str, float]:
    """Text-loss class weights of the state tokens in ``ds``: ``weight`` on average over their
    frames, shared so that each state token present carries the same total weight.

    A decision (answer or stay silent, yield) is one frame among hundreds of ``<pad>``, and the
    data's states are unbalanced (a tiny vita-silence set: 763 ``<answer>`` to 234 ``<silent>``),
    so with plain cross-entropy the model learns "answer after any speech" first."""
    from speechlm.sequences.duplex import STATE_TOKENS

    ids = {vocab.index(t): t for t in STATE_TOKENS.values() if t in vocab}
    labels = np.concatenate([w["text_labels"] for w in ds.items])
    counts = {t: int((labels == i).sum()) for i, t in ids.items()}
    counts = {t: n for t, n in counts.items() if n}
    total = sum(counts.values())
    return {t: round(weight * total / (len(counts) * n), 4) for t, n in counts.items()}


def held_out_figures(model: Any, ds: DuplexWindows, batch_size: int) -> dict[str, Any]:
    """Each stream's held-out loss, the state tokens' accuracy at their frames (the most likely
    text token there is the right state) and, at the frames of ``<answer>`` and ``<silent>``,
    how often the model rates the right one of the two higher (the silence-mode decision,
    whatever the timing). With a transcript: its loss, and how often the transcript head's most
    likely word at each heard word's last frame (the whole word heard) is that word
    (``transcript_word_accuracy``, over ``transcript_words``)."""
    import torch

    from speechlm.sequences.duplex import ANSWER, SILENT, STATE_TOKENS, duplex_collate
    from speechlm.sequences.example import IGNORE

    collate = duplex_collate(model.config.n_units)
    vocab = list(model.config.text_vocab)
    states = torch.tensor([vocab.index(t) for t in STATE_TOKENS.values()])
    pair = [vocab.index(ANSWER), vocab.index(SILENT)]
    sums = {"speak_loss": 0.0, "text_loss": 0.0}
    if ds.has_transcript:
        sums["transcript_loss"] = 0.0
    right = total = decided = decisions = heard_right = heard = 0
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        for i in range(0, len(ds), batch_size):
            batch = {k: v.to(device) for k, v in collate(ds.items[i:i + batch_size]).items()}
            out = model(**batch)
            n = batch["attention_mask"].shape[0]
            for key in sums:
                sums[key] += float(getattr(out, key)) * n
            labels = batch["text_labels"]
            at_state = torch.isin(labels, states.to(device))
            pred = out.text_logits.argmax(-1)
            right += int((pred[at_state] == labels[at_state]).sum())
            total += int(at_state.sum())
            at_pair = (labels == pair[0]) | (labels == pair[1])
            two = out.text_logits[at_pair][:, pair]
            chosen = torch.where(two[:, 0] >= two[:, 1], pair[0], pair[1])
            decided += int((chosen == labels[at_pair]).sum())
            decisions += int(at_pair.sum())
            if ds.has_transcript:
                words = batch["transcript_labels"]
                nxt = torch.cat([words[:, 1:], torch.full_like(words[:, :1], IGNORE)], dim=1)
                last = (words != IGNORE) & (nxt != words)  # a word's span ends here
                guess = out.transcript_logits.argmax(-1)
                heard_right += int((guess[last] == words[last]).sum())
                heard += int(last.sum())
    model.train(was_training)
    more = {"transcript_word_accuracy": round(heard_right / heard, 4) if heard else None,
            "transcript_words": heard} if ds.has_transcript else {}
    return {**{k: round(v / len(ds), 4) for k, v in sums.items()},
            "state_accuracy": round(right / total, 4) if total else None, "state_frames": total,
            "answer_vs_silent_accuracy": round(decided / decisions, 4) if decisions else None,
            "answer_vs_silent_frames": decisions, **more}


OBJECTIVES.add("duplex", DuplexObjective())
