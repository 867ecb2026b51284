"""A scripted stand-in model for tests of the evaluation harnesses (not a language model).

It answers from a table ``prompt -> response``: the gold answer for a chosen subset of problems and a fixed
wrong answer otherwise. It plugs into both harnesses so that its responses travel exactly the path real
generations travel:

- native: ``ScriptedModel`` + ``ScriptedTokenizer`` + the ``scripted`` rollout backend go through
  ``eval.sampling.evaluate`` (prompt encoding, sampling call, ``MathVerifier.score``, eval rows);
- lm-eval: ``scripted_lm(...)`` is an ``lm_eval`` ``LM`` subclass (registered as ``ebpo-scripted``) whose
  ``generate_until`` returns the scripted text, so ``simple_evaluate`` runs its real pipeline on our task
  YAMLs.

Every sample of a problem gets the same response (the model is deterministic), so avg@n equals the fraction
of problems answered correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

from ebpo_bench.rollout import BACKENDS, RolloutBatch, SamplingParams

#: the wrong answer; no gold of the shipped benchmarks equals it (a unit test checks)
WRONG_ANSWER = "-987654321"
LM_NAME = "ebpo-scripted"


def respond(answer: str, style: str = "boxed") -> str:
    """A response that states ``answer`` in a format: ``boxed`` or ``answer_line`` (DAPO)."""
    if style == "boxed":
        return f"Let me think. The final answer is $\\boxed{{{answer}}}$."
    if style == "answer_line":
        return f"Let me think.\nAnswer: {answer}"
    raise ValueError(f"unknown response style '{style}'; expected 'boxed' or 'answer_line'")


def script(
    examples: Iterable[Any], correct: Callable[[int, Any], bool], style: str = "boxed"
) -> dict[str, str]:
    """``{prompt: response}``: the gold answer where ``correct(index, example)`` holds, else
    ``WRONG_ANSWER``."""
    return {
        ex.prompt: respond(ex.answer if correct(i, ex) else WRONG_ANSWER, style)
        for i, ex in enumerate(examples)
    }


def even_index(i: int, ex: Any) -> bool:
    """The subset used by the harness tests: problems with an even index."""
    return i % 2 == 0


class ScriptedModel:
    """The response table; what ``evaluate`` receives as its ``model``."""

    def __init__(self, responses: dict[str, str]) -> None:
        self.responses = dict(responses)

    def eval(self) -> ScriptedModel:  # the runner calls model.eval() before evaluating
        return self


class ScriptedTokenizer:
    """Maps each distinct prompt text to one token id, so the backend can recover the prompt exactly."""

    pad_token_id, eos_token_id = 0, 1

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}
        self.texts: list[str] = ["<pad>", "<eos>"]

    def __call__(self, text: str | list[str], add_special_tokens: bool = False) -> dict[str, list]:
        if isinstance(text, list):  # batched, like a transformers tokenizer
            return {"input_ids": [self(t)["input_ids"] for t in text]}
        if text not in self._ids:
            self._ids[text] = len(self.texts)
            self.texts.append(text)
        return {"input_ids": [self._ids[text]]}

    def apply_chat_template(
        self, messages: list[dict], tokenize: bool = False, add_generation_prompt: bool = True
    ) -> str:
        return messages[-1]["content"]  # no chat wrapping: the table is keyed by the raw prompt


@BACKENDS.register("scripted")
class ScriptedBackend:
    """Rollout backend answering from the table; response lengths are counted in whitespace words."""

    def __init__(self, model: ScriptedModel, tokenizer: ScriptedTokenizer) -> None:
        self.model, self.tok = model, tokenizer

    def sync_weights(self, model: ScriptedModel) -> None:
        self.model = model

    def generate(
        self, prompts: list[list[int]], params: SamplingParams, *, seed: int | None = None
    ) -> RolloutBatch:
        texts = [self.lookup(self.tok.texts[p[-1]]) for p in prompts for _ in range(params.n)]
        b = len(texts)
        lengths = torch.tensor([len(t.split()) for t in texts], dtype=torch.long)
        ones = torch.ones((b, 1), dtype=torch.long)
        return RolloutBatch(
            ones, ones, ones, ones.float(), None, lengths, torch.zeros(b, dtype=torch.bool), texts
        )

    def lookup(self, prompt: str) -> str:
        try:
            return self.model.responses[prompt]
        except KeyError:
            raise KeyError(f"scripted model has no response for prompt {prompt[:80]!r}...") from None


_LM_CLASS: list[type] = []


def scripted_lm(responses: dict[str, str]) -> Any:
    """An lm-eval ``LM`` answering from ``responses`` (keyed by prompt; a context that ends with a known
    prompt, e.g. after a chat wrapper or few-shot prefix, also matches). lm-eval is imported only here."""
    if not _LM_CLASS:
        _LM_CLASS.append(_build_lm_class())
    return _LM_CLASS[0](responses)


def _build_lm_class() -> type:
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model

    @register_model(LM_NAME)
    class ScriptedLM(LM):
        """lm-eval model that returns the scripted response for each ``generate_until`` request."""

        def __init__(self, responses: dict[str, str] | None = None) -> None:
            super().__init__()
            self.responses = dict(responses or {})

        def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
            return [self._lookup(req.args[0]) for req in requests]

        def _lookup(self, context: str) -> str:
            if context in self.responses:
                return self.responses[context]
            hits = [p for p in self.responses if context.rstrip().endswith(p.rstrip())]
            if not hits:
                raise KeyError(f"scripted LM has no response for context {context[:80]!r}...")
            return self.responses[max(hits, key=len)]

        def loglikelihood(self, requests: list) -> list:
            raise NotImplementedError("the scripted LM only generates")

        def loglikelihood_rolling(self, requests: list) -> list:
            raise NotImplementedError("the scripted LM only generates")

    return ScriptedLM
