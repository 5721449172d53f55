"""Codec LMs end to end: phonemes, the valle formats on token-dataset rows, training AR, NAR and
the delayed model through ``run_training`` on a tiny codec's tokens, ``speechlm tts`` and the
held-out item choice of the TTS evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from speechlm.corpus.phones import (
    PHONEME_INVENTORY,
    UNKNOWN_PHONEME,
    WORD_BREAK,
    phoneme_indices,
    phonemize,
    split_phonemes,
)
from speechlm.errors import ConfigError
from speechlm.sequences.formats import FORMATS
from speechlm.sequences.valle import ValleLayout, ar_example, delayed_example, nar_example
from speechlm.sequences.vocab import SpeechVocab

TINY = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2}
HOP = 320  # the tiny codec's samples per frame (50 Hz at 16 kHz)


def test_espeak_mnemonics_split_longest_match_first_with_word_breaks():
    assert split_phonemes("h@l'oU w'3:ld") == ["h", "@", "l", "'", "oU", WORD_BREAK, "w", "'",
                                                "3:", "l", "d"]
    assert split_phonemes("t#3 é") == ["t#", "3", WORD_BREAK, UNKNOWN_PHONEME]
    assert phonemize("many mice") == ["m", "'", "E", "n", "i", WORD_BREAK, "m", "'", "aI", "s"]
    idx = phoneme_indices("many mice")
    assert [PHONEME_INVENTORY[i] for i in idx] == phonemize("many mice")
    assert len(set(PHONEME_INVENTORY)) == len(PHONEME_INVENTORY)
    # a transcript in capitals (LibriSpeech) is read as words: espeak alone spells "IT", "US"
    assert phonemize("TAKE IT TO US") == phonemize("take it to us")
    assert phonemize("it") == ["I", "t"]


def test_valle_formats_are_the_layouts_of_the_rows_text_and_codes():
    vocab = SpeechVocab.build({"phonemes": len(PHONEME_INVENTORY),
                               **{f"codec{k}": 8 for k in range(3)}})
    layout = ValleLayout.from_vocab(vocab)
    codes = np.arange(30).reshape(3, 10) % 8
    row = {"codes": codes.tolist(), "text": "the dog"}
    ph = phoneme_indices("the dog")
    rng = np.random.default_rng(0)
    ar = FORMATS.get("valle_ar").fn(row, vocab, rng)
    np.testing.assert_array_equal(ar.input_ids, ar_example(ph, None, codes, layout).input_ids)
    dl = FORMATS.get("codec_delayed").fn(row, vocab, rng)
    np.testing.assert_array_equal(dl.streams["codes"],
                                  delayed_example(ph, None, codes, layout).streams["codes"])
    # a prompt of up to half the frames, drawn from the row's generator
    nar = FORMATS.get("valle_nar").fn(row, vocab, np.random.default_rng(3), prompt_fraction=0.5)
    n_prompt = int(np.random.default_rng(3).integers(0, 6))
    want = nar_example(ph, codes[:, :n_prompt], codes[:, n_prompt:], layout)
    np.testing.assert_array_equal(nar.streams["kinds"], want.streams["kinds"])
    with pytest.raises(ConfigError, match="prompt_fraction"):
        FORMATS.get("valle_nar").fn(row, vocab, rng, prompt_fraction=1.0)


def test_a_row_without_a_transcript_is_left_out_of_tts_training():
    """VALL-E conditions speech on the transcript: a row without one becomes a zero-length
    example (left out by the example dataset), counted in a warning; none at all is refused."""
    from datasets import Dataset

    from speechlm.sequences.formats import check_rows, make_example, parse_formats

    vocab = SpeechVocab.build({"phonemes": len(PHONEME_INVENTORY),
                               **{f"codec{k}": 8 for k in range(3)}})
    codes = (np.arange(30).reshape(3, 10) % 8).tolist()
    for name in ("valle_ar", "valle_nar", "codec_delayed"):
        uses = parse_formats({name: 1.0})
        assert len(make_example({"codes": codes, "text": None}, vocab, uses, 0, 0)) == 0
        assert len(make_example({"codes": codes, "text": "the dog"}, vocab, uses, 0, 0)) > 10
    rows = Dataset.from_dict({"codes": [codes, codes], "text": ["the dog", ""]})
    assert check_rows(parse_formats({"valle_ar": 1.0}), rows, where="D") == [
        "formats.valle_ar: 1 of 2 rows of D have no transcripts ('text'); they are left out"]
    with pytest.raises(ConfigError, match=r"^formats\.viola_tts: no row of D has transcripts"):
        check_rows(parse_formats({"viola_tts": 1.0}),
                   Dataset.from_dict({"codes": [codes], "text": [None]}), where="D")


@pytest.fixture(scope="module")
def codec_tokens(tiny_corpus, tmp_path_factory):
    """The tiny corpus through a tiny random DAC (3 codebooks x 32 codes at 50 Hz)."""
    from transformers import DacConfig, DacModel

    from speechlm.tokenizers import fit_tokenizer
    from speechlm.tokenizers.job import tokenize_manifest

    root = tmp_path_factory.mktemp("codec_lm")
    torch.manual_seed(0)
    DacModel(DacConfig(sampling_rate=16000, encoder_hidden_size=4, decoder_hidden_size=16,
                       hidden_size=16, codebook_size=32, codebook_dim=4, n_codebooks=3,
                       downsampling_ratios=[2, 4, 5, 8], upsampling_ratios=[8, 5, 4, 2],
                       hop_length=HOP)).save_pretrained(root / "dac")
    fit_tokenizer(tiny_corpus / "manifest.jsonl", "dac", 2, root / "tok", model=str(root / "dac"))
    tokenize_manifest(tiny_corpus / "manifest.jsonl", root / "tok", root / "tokens")
    return root / "tokens"


def _train(tokens, out, architecture, formats, seq_len=512):
    from speechlm.train import TrainConfig, run_training

    cfg = TrainConfig(data=str(tokens), eval_data=str(tokens), output_dir=str(out), init="cold",
                      architecture=architecture, formats=formats, model=TINY, seq_len=seq_len,
                      batch_size=4, max_steps=4, lr=3e-3, warmup_steps=1, save_steps=2,
                      eval_steps=2, logging_steps=2, seed=0, precision="fp32", progress=False)
    return run_training(cfg)


@pytest.fixture(scope="module")
def codec_models(codec_tokens, tmp_path_factory):
    """{"valle": AR + attached NAR, "delayed": the delay-pattern model} trained 4 steps each."""
    from speechlm.models.codec_lm import attach_nar

    root = tmp_path_factory.mktemp("codec_models")
    metrics = {
        "valle": _train(codec_tokens, root / "valle", "valle", {"valle_ar": 1.0}),
        "nar": _train(codec_tokens, root / "nar", "valle_nar",
                      {"valle_nar": {"ratio": 1.0, "prompt_fraction": 0.5}}),
        # a seq_len some utterances exceed: they are left out and counted
        "delayed": _train(codec_tokens, root / "delayed", "codec_delayed",
                          {"codec_delayed": 1.0}, seq_len=160),
    }
    attach_nar(root / "valle", root / "nar")
    return root, metrics


def test_codec_lms_train_with_held_out_losses_and_the_vocabulary_of_the_codec(codec_models):
    from speechlm.models.speech_lm import load_speech_lm

    root, metrics = codec_models
    for m in metrics.values():
        assert [s for s, _ in m["eval_loss"]] == [2, 4]
        assert all(np.isfinite(v) for _, v in m["eval_loss"])
    lm = load_speech_lm(root / "valle")
    assert set(lm.submodels) == {"main", "nar"}
    assert type(lm.submodels["nar"]).__name__ == "ValleNAR"
    # phonemes and 3 codebooks of 32, no unit range
    ranges = lm.vocab.layout.ranges
    assert "units" not in ranges and ranges["phonemes"][1] == len(PHONEME_INVENTORY)
    assert [ranges[f"codec{k}"][1] for k in range(3)] == [32, 32, 32]
    # the NAR's held-out loss is the mean over its stages: the same model gives the same number
    nar = load_speech_lm(root / "nar").model
    with torch.no_grad():
        from speechlm.sequences.valle import collate

        ex = FORMATS.get("valle_nar").fn({"codes": np.zeros((3, 6), int).tolist(), "text": "a"},
                                         lm.vocab, np.random.default_rng(0), prompt_fraction=0.5)
        batch = collate([ex], lm.vocab.pad_id)
        per_stage = [nar(**batch, stage=j).loss for j in (1, 2)]
        assert torch.allclose(nar(**batch).loss, torch.stack(per_stage).mean())


def test_the_nar_held_out_loss_under_mixed_precision_leaves_autocast_off(codec_models):
    """accelerate wraps ``forward`` in one ``torch.autocast`` instance; a forward that re-enters
    itself restored the wrong state on exit, leaving bf16 autocast on for the process (the
    speaker encoder then failed on bf16 tensors after a fine stage)."""
    from types import MethodType

    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.sequences.valle import collate

    lm = load_speech_lm(codec_models[0] / "nar")
    nar = lm.model
    nar.forward = MethodType(torch.autocast("cpu", dtype=torch.bfloat16)(
        type(nar).forward), nar)
    ex = FORMATS.get("valle_nar").fn({"codes": np.zeros((3, 6), int).tolist(), "text": "a"},
                                     lm.vocab, np.random.default_rng(0), prompt_fraction=0.5)
    with torch.no_grad():
        nar(**collate([ex], lm.vocab.pad_id))
    assert not torch.is_autocast_enabled("cpu")


def test_utterances_longer_than_seq_len_are_left_out_and_counted(codec_models, codec_tokens):
    from speechlm.train.data import load_rows

    m = codec_models[1]["delayed"]
    assert m["too_long"] > 0
    assert m["train_blocks"] + m["too_long"] == len(load_rows(codec_tokens))


@pytest.mark.parametrize("which", ["valle", "delayed"])
def test_tts_speaks_the_requested_length_in_codec_audio(codec_models, tiny_corpus, tmp_path,
                                                        which):
    from typer.testing import CliRunner

    from speechlm.cli import app
    from speechlm.corpus.manifest import read_manifest

    root, _ = codec_models
    u = read_manifest(tiny_corpus / "manifest.jsonl")[0]
    out = tmp_path / "out.wav"
    res = CliRunner().invoke(app, ["tts", "--model", str(root / which), "--text", "the dog",
                                   "--prompt", u.audio, "--prompt-text", u.text,
                                   "--max-seconds", "0.4", "--min-seconds", "0.4", "--out",
                                   str(out), "--seed", "3"])
    assert res.exit_code == 0, res.output
    import soundfile as sf

    wav, rate = sf.read(out)
    # 0.4 s = 20 frames at 50 Hz (the DAC decoder's convolutions trim a few samples)
    assert rate == 16000 and 19 * HOP < len(wav) <= 20 * HOP
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["prompt_text"] == u.text and not record["prompt_text_from_asr"]


def test_tts_refuses_models_that_do_not_speak_text(tiny_model, codec_models, tmp_path):
    from speechlm.generate.tts import speak
    from speechlm.models.speech_lm import load_speech_lm

    with pytest.raises(ConfigError, match="does not speak text"):
        speak(load_speech_lm(tiny_model), "hi", None, 16000)
    root, _ = codec_models
    lm = load_speech_lm(root / "valle")
    lm.submodels.pop("nar")
    with pytest.raises(ConfigError, match="no NAR"):
        speak(lm, "the dog", None, 16000)
    with pytest.raises(ConfigError, match="nothing to say"):
        speak(lm, "  ", None, 16000)
    with pytest.raises(ConfigError, match="speechlm tts"):
        lm.generate([], None, [])


def test_codec_formats_on_unit_tokens_name_what_to_tokenise_with(tiny_tokens, tmp_path):
    with pytest.raises(ConfigError, match="not tokenised by a codec"):
        _train(tiny_tokens, tmp_path / "m", "valle", {"valle_ar": 1.0})


def test_a_format_for_another_codec_model_is_refused(codec_tokens, tmp_path):
    with pytest.raises(ConfigError, match="trains on formats"):
        _train(codec_tokens, tmp_path / "m", "valle", {"codec_delayed": 1.0})


def test_held_out_items_skip_training_sentences_and_prompt_with_the_same_voice():
    from speechlm.corpus.manifest import Utterance
    from speechlm.evaluate.tts import pick_items

    def utt(i, spk, text, dur):
        return Utterance(id=f"u{i}", audio=f"{i}.wav", duration=dur, sample_rate=16000,
                         text=text, speaker=spk)

    utts = [utt(0, "a", "seen sentence", 2.5), utt(1, "a", "new one", 2.5),
            utt(2, "b", "another new", 3.0), utt(3, "b", "too long to say", 9.0),
            utt(4, "b", "seen sentence", 2.2)]
    items = pick_items(utts, 10, 0, {"seen sentence"}, max_seconds=6.0,
                       prompt_seconds=(2.0, 5.0))
    assert sorted((t.id, p.id) for t, p in items) == [("u1", "u0"), ("u2", "u4")]


# ---- AudioLM: VALL-E's stages reading semantic units ------------------------------------------
@pytest.fixture(scope="module")
def audiolm_dirs(codec_tokens, tiny_tokens, tiny_model, tiny_corpus, tmp_path_factory):
    """(semantic model with a fallback vocoder, coarse + fine acoustic model, joined data)."""
    import shutil

    from speechlm.models.codec_lm import attach_nar
    from speechlm.tokenizers.job import join_token_datasets
    from speechlm.vocoders.fallback import fit_fallback_vocoder

    root = tmp_path_factory.mktemp("audiolm")
    stats = join_token_datasets(codec_tokens, tiny_tokens, root / "joined")
    semantic = root / "semantic"
    shutil.copytree(tiny_model, semantic)
    fit_fallback_vocoder(tiny_corpus / "manifest.jsonl", semantic / "speech_tokenizer",
                 semantic / "vocoder", max_hours=0.01)
    _train(root / "joined", root / "coarse", "valle", {"audiolm_coarse": 1.0})
    _train(root / "joined", root / "fine", "valle_nar",
           {"audiolm_fine": {"ratio": 1.0, "prompt_fraction": 0.5}})
    attach_nar(root / "coarse", root / "fine")
    return semantic, root / "coarse", root / "joined", stats


def test_joined_rows_hold_codes_and_the_same_utterances_units(audiolm_dirs, tiny_tokens):
    from speechlm.train.data import load_rows, read_info

    _, _, joined, stats = audiolm_dirs
    units = {r["id"]: r["units"] for r in load_rows(tiny_tokens)}
    rows = load_rows(joined)
    assert stats == {"rows": len(units), "missing": 0} and len(rows) == len(units)
    assert all(r["units"] == units[r["id"]] for r in rows)
    info = read_info(joined)
    assert info["n_units"] == 20 and info["codebook_size"] == 32 and info["n_codebooks"] == 3


def test_audiolm_speaks_the_semantic_continuation_with_the_acoustic_stages(audiolm_dirs,
                                                                           codec_models,
                                                                           tiny_corpus):
    from speechlm.corpus.manifest import read_manifest
    from speechlm.generate.audiolm import continue_audiolm
    from speechlm.models.sampling import Sampling
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.tokenizers.reading import read_utterance

    semantic_dir, coarse_dir, _, _ = audiolm_dirs
    semantic, acoustic = load_speech_lm(semantic_dir), load_speech_lm(coarse_dir)
    assert acoustic.vocab.n_units == 20 and not acoustic.vocab.has_range("phonemes")
    wav = read_utterance(read_manifest(tiny_corpus / "manifest.jsonl")[0], 16000)[:16000]
    out = continue_audiolm(semantic, acoustic, [wav], 16000,
                           Sampling(max_seconds=1.0, min_seconds=0.5, seed=0))[0]
    assert len(out.units) > 0 and out.sample_rate == 16000
    # at least one codec frame per new unit (50 Hz units, 50 Hz codes), at most 1.5 x the units'
    # duration at the prompt's unit rate
    assert len(out.audio) >= len(out.units) * HOP - HOP
    assert len(out.semantic_audio) > 0
    # the same units in the vocoder's own voice: the fallback vocoder takes no voice, so the
    # two are the same audio (the envelope vocoder's differ by the prompt's d-vector)
    np.testing.assert_array_equal(out.units_only_audio, out.semantic_audio)
    # a VALL-E (phoneme) model is refused as AudioLM's acoustic stages
    with pytest.raises(ConfigError, match="reads phonemes"):
        continue_audiolm(semantic, load_speech_lm(codec_models[0] / "valle"), [wav], 16000,
                         Sampling(max_seconds=1.0))


def test_tts_without_a_transcript_hears_the_prompt_with_the_bundled_asr(codec_models,
                                                                       tiny_corpus, tmp_path):
    from speechlm.audio import load_audio
    from speechlm.corpus.manifest import read_manifest
    from speechlm.evaluate.asr import transcribe
    from speechlm.generate.tts import TtsSettings, tts_file

    root, _ = codec_models
    u = read_manifest(tiny_corpus / "manifest.jsonl")[1]
    record = tts_file(root / "valle", "the dog", u.audio, tmp_path / "o.wav",
                      settings=TtsSettings(max_seconds=0.2, min_seconds=0.2))
    assert record["prompt_text_from_asr"]
    assert record["prompt_text"] == transcribe(load_audio(u.audio, 16000), 16000)
    assert record["seconds"] > 0.1


# ---- VioLA ---------------------------------------------------------------------------------
def _viola_vocab(n_books=2, size=4):
    from speechlm.sequences.viola import CHARS, MARKERS

    return SpeechVocab.build({"phonemes": len(PHONEME_INVENTORY), "chars": len(CHARS),
                              **{f"codec{k}": size for k in range(n_books)}}, markers=MARKERS)


def test_viola_task_examples_are_exact_sequences_with_the_loss_on_the_output_only():
    from speechlm.sequences.valle import PROMPT, TARGET, TOKEN
    from speechlm.sequences.viola import ViolaLayout, char_indices, task_example

    vocab = _viola_vocab()
    lay = ViolaLayout.from_vocab(vocab)
    m, b = lay.markers, lay.base
    frames = np.array([[0, 1, 2], [3, 0, 1]])
    c0, c1 = b.books.offsets
    ch = lay.char_offset
    asr = task_example("asr", lay, "en", "en", char_indices("Hi!"), frames=frames)
    pad = b.pad_id
    want = np.array([
        [b.bos_id, m["[ASR]"], m["[EN]"], b.audio_id, c0, c0 + 1, c0 + 2, m["[EN]"], lay.text_id,
         ch + 9, ch + 10, b.eos_id],  # "h" and "i" are letters 7 and 8 after " " and "'"
        [pad, pad, pad, pad, c1 + 3, c1, c1 + 1, pad, pad, pad, pad, pad]])
    np.testing.assert_array_equal(asr.streams["codes"], want)
    np.testing.assert_array_equal(asr.streams["kinds"], [TOKEN] * 4 + [PROMPT] * 3 + [TOKEN] * 5)
    np.testing.assert_array_equal(asr.masks["codes"][0], [False] * 9 + [True] * 3)
    assert not asr.masks["codes"][1].any()
    st = task_example("st", lay, "en", "es", char_indices("ñ"), frames=frames)
    assert st.streams["codes"][0, 1] == m["[ST]"] and st.streams["codes"][0, 7] == m["[ES]"]
    mt = task_example("mt", lay, "en", "es", char_indices("a"), text=char_indices("b c"))
    np.testing.assert_array_equal(mt.streams["codes"][0], [
        b.bos_id, m["[MT]"], m["[EN]"], lay.text_id, ch + 3, ch, ch + 4, m["[ES]"], lay.text_id,
        ch + 2, b.eos_id])
    tts = task_example("tts", lay, "en", "en", np.array([3, 1]), text=np.array([5]))
    np.testing.assert_array_equal(tts.streams["codes"][0], [
        b.bos_id, m["[TTS]"], m["[EN]"], b.phoneme_offset + 5, m["[EN]"], b.audio_id, c0 + 3,
        c0 + 1, b.eos_id])
    np.testing.assert_array_equal(tts.streams["kinds"], [TOKEN] * 6 + [TARGET] * 2 + [TOKEN])
    np.testing.assert_array_equal(tts.masks["codes"][0], [False] * 6 + [True] * 3)
    with pytest.raises(ConfigError, match="not a VioLA task"):
        task_example("asx", lay, "en", "en", [], frames=frames)
    with pytest.raises(ConfigError, match="has no token"):
        task_example("mt", lay, "en", "fr", [], text=[])


def test_viola_text_is_normalised_characters_and_back():
    from speechlm.sequences.viola import char_indices, chars_text, normalize_text

    assert normalize_text("The DOG, it's  here! ¿Qué?") == "the dog it's here qué"
    assert chars_text(char_indices("El niño comió.")) == "el niño comió"


def test_viola_formats_translate_the_rows_text(tiny_corpus):
    from speechlm.corpus.manifest import read_manifest
    from speechlm.corpus.translation import translate
    from speechlm.sequences.viola import ViolaLayout, chars_text

    vocab = _viola_vocab()
    lay = ViolaLayout.from_vocab(vocab)
    text = read_manifest(tiny_corpus / "manifest.jsonl")[0].text
    row = {"codes": np.zeros((2, 5), int).tolist(), "text": text}
    mt = FORMATS.get("viola_mt").fn(row, vocab, np.random.default_rng(0))
    ids = mt.streams["codes"][0]
    out = ids[mt.masks["codes"][0]][:-1] - lay.char_offset  # the output chars, EOS dropped
    from speechlm.sequences.viola import normalize_text

    assert chars_text(out) == normalize_text(translate(text))
    with pytest.raises(ConfigError, match="no es translation"):
        FORMATS.get("viola_st").fn({**row, "text": "the zebra sings."}, vocab,
                                   np.random.default_rng(0))


@pytest.fixture(scope="module")
def viola_model(codec_tokens, codec_models, tmp_path_factory):
    """A VioLA trained 4 steps on all four tasks, with the codec_models' NAR attached."""
    from speechlm.models.codec_lm import attach_nar

    root = tmp_path_factory.mktemp("viola")
    metrics = _train(codec_tokens, root / "viola", "viola",
                     {"viola_asr": 0.25, "viola_st": 0.25, "viola_mt": 0.25, "viola_tts": 0.25})
    attach_nar(root / "viola", codec_models[0] / "nar")
    return root / "viola", metrics


def test_viola_trains_saves_and_decodes_only_what_a_task_may_write(viola_model):
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.sequences.viola import CHARS, char_indices

    path, metrics = viola_model
    assert all(np.isfinite(v) for _, v in metrics["eval_loss"])
    lm = load_speech_lm(path)
    assert type(lm.model).__name__ == "Viola" and set(lm.submodels) == {"main", "nar"}
    out = lm.model.continue_task("mt", "en", "es", text=char_indices("the dog"), max_new=7,
                                 min_new=7)
    assert len(out) == 7 and all(0 <= v < len(CHARS) for v in out)
    frames = np.zeros((3, 5), dtype=np.int64)
    out = lm.model.continue_task("asr", "en", "en", frames=frames, max_new=3)
    assert len(out) <= 3 and all(0 <= v < len(CHARS) for v in out)
    codes = lm.model.continue_task("tts", "en", "en", text=phoneme_indices("a"), prefix=[1, 2],
                                   max_new=4, min_new=4, temperature=1.0,
                                   generator=torch.Generator().manual_seed(0))
    assert len(codes) == 4 and all(0 <= v < 32 for v in codes)


def test_viola_speaks_the_requested_length_through_its_nar(viola_model, tiny_corpus):
    from speechlm.corpus.manifest import read_manifest
    from speechlm.generate.tts import TtsSettings, speak
    from speechlm.models.speech_lm import load_speech_lm
    from speechlm.tokenizers.reading import read_utterance

    lm = load_speech_lm(viola_model[0])
    u = read_manifest(tiny_corpus / "manifest.jsonl")[0]
    wav = speak(lm, "the dog", read_utterance(u, 16000), 16000, u.text,
                TtsSettings(seed=1, max_seconds=0.3, min_seconds=0.3))
    assert 14 * HOP < len(wav) <= 15 * HOP
    with pytest.raises(ConfigError, match="VioLA has tokens for"):
        speak(lm, "the dog", None, 16000, settings=TtsSettings(language="de"))


def test_viola_text_evaluation_scores_known_hypotheses(viola_model, tiny_corpus, tmp_path):
    """WER and BLEU as jiwer and sacrebleu compute them on what the model wrote (files)."""
    import jiwer
    import sacrebleu

    from speechlm.evaluate.viola import evaluate_viola_text

    rec = evaluate_viola_text({"v": (viola_model[0], ["asr", "mt"])},
                              tiny_corpus / "manifest.jsonl", tmp_path, n_items=3, seed=0,
                              max_seconds=30.0, progress=False)
    assert rec["n_items"] == 3
    asr = [json.loads(x) for x in (tmp_path / "v" / "asr.jsonl").read_text().splitlines()]
    mt = [json.loads(x) for x in (tmp_path / "v" / "mt.jsonl").read_text().splitlines()]
    assert rec["results"]["v"]["asr_wer"] == pytest.approx(
        jiwer.wer([r["ref"] for r in asr], [r["hyp"] for r in asr]))
    assert rec["results"]["v"]["mt_bleu"] == pytest.approx(round(sacrebleu.corpus_bleu(
        [r["hyp"] for r in mt], [[r["ref"] for r in mt]]).score, 2))
    assert all(r["ref"] and r["ref"] == r["ref"].lower() for r in mt)


def test_speechlm_viola_recognises_and_translates_from_the_command_line(viola_model, tiny_corpus):
    from typer.testing import CliRunner

    from speechlm.cli import app
    from speechlm.corpus.manifest import read_manifest
    from speechlm.sequences.viola import CHARS

    u = read_manifest(tiny_corpus / "manifest.jsonl")[0]
    for args in (["--task", "asr", "--audio", u.audio], ["--task", "mt", "--text", "the dog."]):
        res = CliRunner().invoke(app, ["viola", "--model", str(viola_model[0]), *args])
        assert res.exit_code == 0, res.output
        record = json.loads(res.stdout.strip().splitlines()[-1])
        assert set(record["output"]) <= set(CHARS)
    res = CliRunner().invoke(app, ["viola", "--model", str(viola_model[0]), "--task", "mt"])
    assert res.exit_code != 0 and "give one" in str(res.exception)
    res = CliRunner().invoke(app, ["viola", "--model", str(viola_model[0]), "--task", "tts",
                                   "--text", "a"])
    assert res.exit_code != 0 and "speechlm tts" in str(res.exception)
