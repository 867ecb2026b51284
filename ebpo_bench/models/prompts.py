"""Prompt encoding: text -> token ids, optionally through the tokenizer's chat template.

One function for warm start, training, evaluation and the pre-pass, so all of them see identical
prompts. Below the rollout layer (which re-exports it), since model loading needs it too.
"""

from __future__ import annotations

from typing import Any


def encode_prompt(tokenizer: Any, text: str, chat_template: bool) -> list[int]:
    """Token ids of a prompt, optionally wrapped in the tokenizer's chat template.

    One function for warm start, training and evaluation, so all three see identical prompts.
    """
    return encode_prompts(tokenizer, [text], chat_template)[0]


def encode_prompts(tokenizer: Any, texts: list[str], chat_template: bool) -> list[list[int]]:
    """``encode_prompt`` for many prompts in one tokenizer call (the same ids, without per-call overhead)."""
    if chat_template:
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
            )
            for t in texts
        ]
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]
