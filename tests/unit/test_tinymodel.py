"""Tests of the embedded tiny model: byte-level tokenizer, deterministic init, save/reload parity."""

from __future__ import annotations

import json

import pytest
import torch

from ebpo_bench.models import tiny as tinymodel

AIME_LIKE = (
    "Let $\\omega\\neq 1$ be a 13th root of unity. Find the remainder when\n"
    "\\[\\prod_{k=0}^{12}(2-2\\omega^k+\\omega^{2k})\\]\nis divided by 1000."
)


@pytest.fixture(scope="module")
def tok():
    return tinymodel.build_tokenizer()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    tinymodel.save_tiny(d, seed=3)
    return d


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


def test_special_tokens_and_vocab(tok):
    assert len(tok) == 4 + 256
    assert (tok.bos_token, tok.eos_token, tok.pad_token) == ("<|endoftext|>", "<|im_end|>", "<|pad|>")
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 2, 3)
    assert tok.padding_side == "left"


def test_bytes_map_to_fixed_ids(tok):
    # byte b -> id b + 4, by construction; "0" is byte 48, "+" 43, "=" 61
    assert _ids(tok, "0123456789") == list(range(52, 62))
    assert _ids(tok, "3+5=") == [55, 47, 57, 65]
    assert _ids(tok, "é") == [0xC3 + 4, 0xA9 + 4]  # two UTF-8 bytes
    assert _ids(tok, "1+1=") == [53, 47, 53, 65]  # no BOS is prepended


@pytest.mark.parametrize(
    "text",
    [
        "3+5+2=\\boxed{10}",
        " leading and  double spaces , before punctuation ! ?\n\ttabs\r\n",
        "".join(chr(c) for c in range(128)),
        AIME_LIKE,
        "non-ASCII: é ∑ ≤ 😀",
    ],
)
def test_round_trip(tok, text):
    ids = _ids(tok, text)
    assert tok.decode(ids) == text


def test_vocabulary_is_the_byte_level_alphabet():
    from tokenizers import pre_tokenizers

    alphabet = tinymodel.byte_alphabet()
    assert len(set(alphabet)) == 256 and set(alphabet) == set(pre_tokenizers.ByteLevel.alphabet())
    assert alphabet[ord("A")] == "A" and alphabet[ord(" ")] == "\u0120"  # GPT-2's stand-in for a space


def test_digits_are_single_tokens(tok):
    for d in "0123456789":
        assert len(_ids(tok, d)) == 1
    assert len(_ids(tok, "998001")) == 6


def test_tokenizer_build_is_deterministic(tok):
    assert tinymodel.build_tokenizer().backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


def test_chat_template(tok):
    text = tok.apply_chat_template(
        [{"role": "user", "content": "2+2="}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<|im_start|>user\n2+2=<|im_end|>\n<|im_start|>assistant\n"
    assert _ids(tok, "<|im_start|>") == [1]


def test_parameter_count(tok):
    model = tinymodel.build_model(tok)  # 2 layers, hidden 128, 4 heads (MHA), MLP 512, tied embeddings
    h, inter, v = 128, 512, 260
    per_layer = 4 * h * h + 3 * h * inter + 2 * h  # q,k,v,o + gate,up,down + two RMSNorms
    assert sum(p.numel() for p in model.parameters()) == v * h + 2 * per_layer + h == 558_208
    gqa = tinymodel.build_model(tok, kv_heads=2)  # k and v shrink to half width
    assert sum(p.numel() for p in gqa.parameters()) == 558_208 - 2 * 2 * h * (h // 2)


def test_bad_shapes_are_rejected(tok):
    with pytest.raises(ValueError, match="divisible"):
        tinymodel.build_model(tok, hidden=130, heads=4)


def test_init_is_deterministic_and_leaves_global_rng_alone(tok):
    torch.manual_seed(1234)
    expected_next = torch.rand(3)
    torch.manual_seed(1234)
    a = tinymodel.build_model(tok, seed=0)
    assert torch.equal(torch.rand(3), expected_next)  # the caller's RNG stream is untouched
    b = tinymodel.build_model(tok, seed=0)
    c = tinymodel.build_model(tok, seed=1)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"])
    assert not torch.equal(sa["model.layers.0.mlp.up_proj.weight"], sc["model.layers.0.mlp.up_proj.weight"])


def test_generation_config_ids(tok):
    gen = tinymodel.build_model(tok).generation_config
    assert (gen.pad_token_id, gen.eos_token_id) == (3, 2)


def test_save_reload_ids_and_logits(tok, saved):
    config = json.loads((saved / "config.json").read_text())
    assert config["model_type"] == "llama"  # not qwen2: its tokenizer is rebuilt on reload
    model, tok2 = tinymodel.load(saved)
    for text in ("12+7=", AIME_LIKE, "é ∑ 😀", "<|im_start|>user\n1<|im_end|>"):
        assert _ids(tok2, text) == _ids(tok, text)
        assert tok2.decode(_ids(tok, text)) == text
    assert (tok2.eos_token_id, tok2.pad_token_id, tok2.padding_side) == (2, 3, "left")
    fresh = tinymodel.build_model(tok, seed=3)
    x = torch.tensor([_ids(tok, "3+5+2="), _ids(tok, "9*9*9=")])
    with torch.no_grad():
        assert torch.equal(model(x).logits, fresh(x).logits)


def test_generate_left_padded_batch(tok):
    model = tinymodel.build_model(tok, seed=0).eval()
    enc = tok(["1+2=", "3+4+5+6="], add_special_tokens=False, padding=True, return_tensors="pt")
    assert enc["input_ids"][0, :4].tolist() == [3, 3, 3, 3]  # pads on the left
    kw = dict(max_new_tokens=5, do_sample=False, return_dict_in_generate=True, output_logits=True)
    with torch.no_grad():
        out = model.generate(**enc, **kw)
        alone = model.generate(**tok(["1+2="], add_special_tokens=False, return_tensors="pt"), **kw)
    assert out.sequences.shape == (2, 8 + 5)
    assert torch.equal(out.sequences[:, :8], enc["input_ids"])
    # left padding must not change what the model predicts for the shorter prompt
    for padded, single in zip(out.logits, alone.logits):
        torch.testing.assert_close(padded[0], single[0], atol=1e-4, rtol=1e-4)
