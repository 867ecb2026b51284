"""The embedded tiny default policy: a byte-level tokenizer and a small Llama, built offline.

Nothing is downloaded or trained here. The tokenizer is a byte-level BPE with *no merges*: every
UTF-8 byte is one token (id = byte value + number of special tokens), so any text encodes (AIME
problems included), ASCII round-trips exactly and every digit is a single token. The model is a
``LlamaForCausalLM`` with tied embeddings and a deterministic random init from a seed.

Deliberate choices (see ``docs/environment.md`` §1.4 and its Appendix):

- ``LlamaConfig``, not ``Qwen2Config``: transformers 5 swaps the pre-tokenizer of a ``qwen2``
  checkpoint on reload, which would change token ids; a llama checkpoint reloads the tokenizer as
  saved.
- No BOS is prepended by the tokenizer (no post-processor), like the Qwen tokenizers: prompts are
  encoded with ``add_special_tokens=False`` everywhere in this project anyway.
- Default size 2 layers / hidden 128: in the CPU probes more optimiser steps beat a wider or deeper
  model at equal wall time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BOS, CHAT_START, EOS, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"
#: special tokens in id order: they take ids 0..3, the 256 bytes follow
SPECIAL_TOKENS = (BOS, CHAT_START, EOS, PAD)

# ChatML, so ``chat_template: true`` in a spec works with the tiny model too.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def byte_alphabet() -> list[str]:
    """The 256 printable stand-ins of the GPT-2 byte-level scheme, indexed by byte value.

    Printable Latin-1 bytes stand for themselves; the others are shifted to code points 256+ so
    that no byte maps to whitespace or a control character. This is the mapping that the
    ``tokenizers`` ByteLevel pre-tokenizer and decoder use, so the vocabulary below matches them.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    kept = set(keep)
    out, shift = [], 0
    for b in range(256):
        if b in kept:
            out.append(chr(b))
        else:
            out.append(chr(256 + shift))
            shift += 1
    return out


def build_tokenizer() -> Any:
    """Build the byte-level tokenizer in-process (deterministic: same ids on every call).

    Returns:
        A ``PreTrainedTokenizerFast`` with 260 tokens: ``<|endoftext|>`` (bos, id 0),
        ``<|im_start|>`` (1), ``<|im_end|>`` (eos, 2), ``<|pad|>`` (pad, 3), then byte ``b`` at id
        ``b + 4``. Padding is on the left, as generation needs.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    vocab.update({ch: len(SPECIAL_TOKENS) + b for b, ch in enumerate(byte_alphabet())})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    # use_regex=False: no word splitting is needed when there are no merges to apply
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        additional_special_tokens=[CHAT_START],
        padding_side="left",
        clean_up_tokenization_spaces=False,  # keep " ," etc. as written: exact round trips
        chat_template=CHAT_TEMPLATE,
    )


def build_config(
    tokenizer: Any,
    *,
    layers: int = 2,
    hidden: int = 128,
    heads: int = 4,
    kv_heads: int | None = None,
    intermediate: int = 512,
    max_positions: int = 512,
    vocab_size: int | None = None,
) -> Any:
    """The ``LlamaConfig`` of the tiny model (see ``build_model`` for the arguments)."""
    from transformers import LlamaConfig

    if hidden % heads:
        raise ValueError(f"tiny model: hidden={hidden} must be divisible by heads={heads}")
    kv = heads if kv_heads is None else kv_heads
    if heads % kv:
        raise ValueError(f"tiny model: heads={heads} must be divisible by kv_heads={kv}")
    return LlamaConfig(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        max_position_embeddings=max_positions,
        tie_word_embeddings=True,  # the embedding is a sizable share of a tiny model
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_model(tokenizer: Any, *, seed: int = 0, **shape: Any) -> Any:
    """Build the tiny ``LlamaForCausalLM`` with a deterministic random init (fp32, on CPU).

    The init is seeded inside a forked torch RNG, so the caller's global RNG state is untouched.

    Args:
        tokenizer: the tokenizer from ``build_tokenizer`` (sets vocab size and bos/eos/pad ids).
        seed: init seed; the same seed gives bit-identical weights.
        **shape: the keyword arguments of ``build_config``:
        layers: decoder layers.
        hidden: hidden size; must be divisible by ``heads``.
        heads: attention heads.
        kv_heads: key/value heads (grouped-query attention); ``None`` means ``heads`` (plain MHA,
            as in the environment probes).
        intermediate: MLP width.
        max_positions: longest sequence (prompt + response) in tokens.
        vocab_size: embedding rows (None = the tokenizer's 260); more rows are never in a prompt but
            can be sampled (memory rehearsals at a real vocabulary, e.g. 151,936).

    Returns:
        The model, with ``generation_config`` pad/eos/bos ids set from the tokenizer.
    """
    import torch
    from transformers import LlamaForCausalLM

    config = build_config(tokenizer, **shape)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32)
    gen = model.generation_config
    gen.pad_token_id = tokenizer.pad_token_id
    gen.eos_token_id = tokenizer.eos_token_id
    gen.bos_token_id = tokenizer.bos_token_id
    return model


def save_tiny(directory: str | Path, **kwargs: Any) -> Path:
    """Build the tokenizer and model and write both with ``save_pretrained``.

    Args:
        directory: output folder (created if needed).
        **kwargs: passed to ``build_model`` (``layers``, ``hidden``, ``seed``, ...).

    Returns:
        The folder, loadable with ``load`` or the transformers ``Auto*`` classes.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    build_model(tok, **kwargs).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def load(directory: str | Path) -> tuple[Any, Any]:
    """Reload a saved tiny model with ``AutoModelForCausalLM`` / ``AutoTokenizer``.

    Returns:
        ``(model, tokenizer)``; the tokenizer pads on the left and gives the same ids as
        ``build_tokenizer``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(directory))
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(directory))
    return model, tok
