"""Spoken vs written word similarity by layer: known answers of the pure parts, word spans of
text tokens, the CLI on a tiny random model with text tokens, the refusal of a speech-only one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_crossmodal import hand_vocab

from speechlm.errors import ConfigError
from speechlm.evaluate.similarity import pool_words, similarity_by_layer, text_word_spans


def test_similarity_by_layer_known_answers():
    eye = np.eye(8)
    labels = [["a", "b"], ["c", "a"]]  # "a" twice: never its own mismatch
    spoken = eye[:4]  # (4 words, 8) one-hot, one direction per word
    layers_s = np.stack([spoken, spoken, np.ones((4, 8))])  # (3 layers, 4 words, 8)
    layers_w = np.stack([3 * spoken,  # the same directions (cosine ignores the scale)
                         spoken + eye[4:],  # half-way to an orthogonal direction
                         np.ones((4, 8))])  # every word the same vector
    r = similarity_by_layer([layers_s[:, :2], layers_s[:, 2:]],
                            [layers_w[:, :2], layers_w[:, 2:]], labels)
    assert r["layers"] == [0, 1, 2]
    np.testing.assert_allclose(r["matched"], [1.0, 1 / np.sqrt(2), 1.0])
    np.testing.assert_allclose(r["mismatched"], [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(r["difference"], [1.0, 1 / np.sqrt(2), 0.0], atol=1e-12)
    # 16 ordered pairs less the 6 with one label (a-a four times, b-b, c-c)
    assert (r["n_words"], r["n_mismatched_pairs"]) == (4, 10)
    with pytest.raises(ValueError, match="labels"):
        similarity_by_layer([layers_s], [layers_w], [["a", "b"]])


def test_similarity_sums_equal_the_pairwise_cosines():
    """The figures come from sums, not the (L, N, N) cosine matrix: check them against it."""
    rng = np.random.default_rng(0)
    labels = [list(rng.choice(list("abcdef"), size=5)) for _ in range(4)]
    spoken = [rng.normal(size=(3, 5, 6)) for _ in labels]
    written = [rng.normal(size=(3, 5, 6)) for _ in labels]
    r = similarity_by_layer(spoken, written, labels)
    s, w = np.concatenate(spoken, 1), np.concatenate(written, 1)
    s /= np.linalg.norm(s, axis=-1, keepdims=True)
    w /= np.linalg.norm(w, axis=-1, keepdims=True)
    cos = np.einsum("lnd,lmd->lnm", s, w)
    words = np.array([x for sentence in labels for x in sentence])
    other = words[:, None] != words[None, :]
    np.testing.assert_allclose(r["matched"], np.einsum("lnn->ln", cos).mean(1))
    np.testing.assert_allclose(r["mismatched"], cos[:, other].mean(1))
    assert r["n_mismatched_pairs"] == other.sum()


def test_pool_words_means_each_span():
    states = np.arange(10, dtype=np.float64).reshape(1, 5, 2)  # (1 layer, 5 positions, 2)
    pooled = pool_words(states, [(0, 2), (2, 5)])
    np.testing.assert_allclose(pooled, [[[1.0, 2.0], [6.0, 7.0]]])


def test_text_word_spans_follow_the_joined_tokenisation(text_model):
    from speechlm.corpus.grammar import sample_sentences, words_of
    from speechlm.sequences.vocab import SpeechVocab

    assert text_word_spans(hand_vocab(), ["the", "cat", "sat"]) == ([4, 5, 6],
                                                                     [(0, 1), (1, 2), (2, 3)])
    vocab = SpeechVocab.load(text_model)  # BPE: words of one or several tokens
    for text in sample_sentences(10, seed=9):
        labels = words_of(text)
        ids, spans = text_word_spans(vocab, labels)
        assert ids == vocab.text_to_ids(" ".join(labels))  # exactly the training tokens
        assert spans[0][0] == 0 and spans[-1][1] == len(ids)
        for (a, b), (c, _), word in zip(spans, spans[1:] + [(len(ids), 0)], labels,
                                        strict=True):
            assert a < b == c  # contiguous, in order, none empty
            assert vocab.tokenizer.decode(ids[a:b]).strip() == word


def test_eval_similarity_cli_writes_figures_and_plot(text_model, tmp_path):
    from typer.testing import CliRunner

    from speechlm.cli import app

    out = tmp_path / "sim"
    res = CliRunner().invoke(app, ["eval", "similarity", "--model", str(text_model), "--model",
                                   str(text_model), "--out", str(out), "--sentences", "4"])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "similarity.json").read_text())
    assert r["n_sentences"] == 4 and len(r["sentences"]) == 4 and r["skipped"] == []
    first, second = r["models"]
    assert first["layers"] == [0, 1, 2]  # the embeddings and the tiny model's 2 layers
    assert first["n_sentences"] == 4 and first["n_words"] > 8
    for key in ("matched", "mismatched", "difference"):
        assert len(first[key]) == 3 and np.isfinite(first[key]).all()
        assert first[key] == pytest.approx(second[key])  # the same model, the same sentences
    assert np.abs(first["matched"] + first["mismatched"]).max() <= 1.0  # cosines
    np.testing.assert_allclose(first["difference"],
                               np.subtract(first["matched"], first["mismatched"]))
    assert first["label"] == str(text_model)  # two models of one name: labelled by path
    assert (out / "similarity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "similarity.md").read_text()
    assert "| layer | matched | mismatched | difference |" in md and "best layer" in md
    assert "best layer" in res.output


def test_a_speech_only_model_is_refused_naming_it(speech_model, text_model, tmp_path):
    from speechlm.evaluate.similarity import evaluate_similarity

    with pytest.raises(ConfigError, match=rf"^{speech_model}: .*no text tokens.*vocab_mode: "
                                          "extend"):
        evaluate_similarity([text_model, speech_model], tmp_path / "sim", n_sentences=2,
                            progress=False)
    assert not (tmp_path / "sim").exists()  # refused before any work
