"""Cold init for several architectures; warm init keeps the text LM (extend and replace)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechlm.models.init import cold_init, warm_init
from speechlm.sequences.vocab import SpeechVocab
from speechlm.train.textlm import train_text_tokenizer

TINY = {
    "llama": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 2},
    "qwen2": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1},
    "opt": {"hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
            "word_embed_proj_dim": 32},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 2},
}
SENTENCES = ["the dog sees a cat .", "a cat sees the dog .", "the big dog runs .",
             "a small cat sleeps ."] * 20


@pytest.mark.parametrize("arch", list(TINY))
def test_cold_init_any_architecture_roundtrips(arch, tmp_path):
    v = SpeechVocab.speech_only(10)
    m = cold_init({"model_type": arch, **TINY[arch]}, v, seed=0).eval()
    assert m.get_input_embeddings().weight.shape[0] == v.size
    ids = torch.tensor([[v.bos_id, v.speech_id, *v.units_to_ids([1, 2, 3]).tolist()]])
    m.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(m(ids).logits, again(ids).logits, atol=1e-6)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def text_lm(request, tmp_path_factory):
    """A random tiny text LM + BPE tokenizer saved as a plain HF directory (llama: untied head)."""
    arch = request.param
    tok = train_text_tokenizer(SENTENCES, vocab_size=60)

    class V:
        size, bos_id = len(tok), tok.bos_token_id
        eos_id, pad_id = tok.eos_token_id, tok.pad_token_id

    m = cold_init({"model_type": arch, **TINY[arch]}, V(), seed=1)
    d = tmp_path_factory.mktemp(f"textlm-{arch}")
    m.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _body(model) -> dict[str, torch.Tensor]:
    emb = {id(model.get_input_embeddings().weight), id(model.get_output_embeddings().weight)}
    return {k: p for k, p in model.named_parameters() if id(p) not in emb}


def test_warm_extend_keeps_weights_and_text_answers(text_lm):
    ref = AutoModelForCausalLM.from_pretrained(text_lm).eval()
    tok = AutoTokenizer.from_pretrained(text_lm)
    model, vocab, info = warm_init(str(text_lm), "extend", n_units=12)
    model.eval()
    n_text = len(tok)
    assert vocab.size == n_text + 2 + 12 and info["copied_rows"] == n_text
    body, ref_body = _body(model), _body(ref)
    assert body.keys() == ref_body.keys() and body
    for k in body:
        assert torch.equal(body[k], ref_body[k]), k
    assert torch.equal(model.get_input_embeddings().weight[:n_text],
                       ref.get_input_embeddings().weight)
    prompt = torch.tensor([tok("the dog sees a", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        before = ref(prompt).logits
        after = model(prompt).logits
        assert after.shape[-1] == vocab.size
        assert torch.allclose(after[..., :n_text], before, atol=1e-5)
        # greedy text continuation restricted to text tokens is unchanged
        g_ref = ref.generate(prompt, max_new_tokens=5, do_sample=False)
        bad = [[i] for i in range(n_text, vocab.size)]
        g_new = model.generate(prompt, max_new_tokens=5, do_sample=False, bad_words_ids=bad)
    assert torch.equal(g_ref, g_new)


def test_warm_replace_keeps_body_and_special_rows(text_lm):
    ref = AutoModelForCausalLM.from_pretrained(text_lm).eval()
    tok = AutoTokenizer.from_pretrained(text_lm)
    model, vocab, info = warm_init(str(text_lm), "replace", n_units=12)
    assert vocab.size == 6 + 12 and not vocab.has_text
    for k, p in _body(model).items():
        assert torch.equal(p, _body(ref)[k]), k
    emb, ref_emb = model.get_input_embeddings().weight, ref.get_input_embeddings().weight
    assert torch.equal(emb[vocab.bos_id], ref_emb[tok.bos_token_id])
    assert torch.equal(emb[vocab.eos_id], ref_emb[tok.eos_token_id])
    # new rows sit near the mean of the text rows, not at zero and not all equal
    units = emb[vocab.unit_offset:]
    assert torch.allclose(units.mean(0), ref_emb.mean(0), atol=0.05)
    assert units.std(0).mean() > 0
    assert model.config.vocab_size == vocab.size and info["vocab_mode"] == "replace"


def test_new_rows_options_start_as_documented(text_lm):
    """mean: near-identical rows at the text mean; normal: the text rows' spread; copy: distinct
    text tokens' rows, input and output rows from the same token."""
    ref = AutoModelForCausalLM.from_pretrained(text_lm)
    ref_in = ref.get_input_embeddings().weight.detach()
    ref_out = ref.get_output_embeddings().weight.detach()
    spread = ref_in.std(0).mean().item()
    rows = {}
    for how in ("mean", "normal", "copy"):
        model, vocab, info = warm_init(str(text_lm), "replace", n_units=12, new_rows=how)
        assert info["new_row_init"] == how
        rows[how] = (model.get_input_embeddings().weight.detach()[vocab.unit_offset:],
                     model.get_output_embeddings().weight.detach()[vocab.unit_offset:])
    assert rows["mean"][0].std(0).mean().item() == pytest.approx(0.02 * spread, rel=0.5)
    assert rows["normal"][0].std(0).mean().item() == pytest.approx(spread, rel=0.5)
    units_in, units_out = rows["copy"]
    picks = [int(torch.nonzero((ref_in == r).all(1))[0]) for r in units_in]
    assert len(set(picks)) == len(picks)  # distinct text tokens (there are more than 12)
    tied = ref.get_output_embeddings().weight is ref.get_input_embeddings().weight
    if not tied:
        assert all(torch.equal(units_out[i], ref_out[p]) for i, p in enumerate(picks))


def test_new_rows_rejects_an_unknown_option(text_lm):
    from speechlm.errors import ConfigError

    with pytest.raises(ConfigError, match="^new_rows: must be one of mean, normal, copy"):
        warm_init(str(text_lm), "replace", n_units=4, new_rows="zeros")
