"""Rollouts with transformers ``generate`` on the training model itself (CPU-capable default).

The sampling log-probs come from the logits ``generate`` already computes, divided by the
temperature exactly as the trainer does, so no second forward pass is needed for the PPO ratio's
denominator. Under top-p < 1 they are the log-probs of the temperature-scaled distribution before
truncation, the usual convention (verl, TRL).

Memory is O(rows x T), not O(rows x T x V): instead of ``output_logits`` (every step's (rows, V)
logits kept to the end: 256 x 8192 x 151,936 x 4 B ~ 1.27 TB at paper scale) a logits processor,
``LogprobRecorder``, sees each step's raw logits (generate runs user processors before its
temperature / top-p warpers), keeps that step's (rows, V) log-softmax until the next step reveals
the sampled token, and keeps only the (rows,) log-prob of it. The processor returns the scores
unchanged, so the tokens are those of plain ``generate`` for the same seed (tested).

Generation runs in eval mode with ``use_cache=True``: transformers drops the KV cache in train mode
under gradient checkpointing, which would recompute the whole sequence for every new token. The
model's mode is restored afterwards.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from ebpo_bench.config.rollout import HFEngineConfig
from ebpo_bench.rollout import BACKENDS, RolloutBatch, SamplingParams, concat, left_pad


@BACKENDS.register("hf")
class HFRollout:
    """Batched sampling with ``model.generate``; weights are shared with the trainer.

    With ``share_prompt`` (default) each prompt is prefilled once and its KV cache repeated for its
    n samples, instead of prefilling the same prompt n times: the same distribution (the logits
    agree to float rounding; greedy outputs are identical, tested) for a fraction of the prefill.
    """

    def __init__(self, model, tokenizer, cfg: HFEngineConfig, *, share_prompt: bool = True) -> None:
        self.model, self.tok, self.max_batch, self.share_prompt = (
            model,
            tokenizer,
            cfg.max_batch,
            share_prompt,
        )

    @classmethod
    def check_available(cls) -> None:
        """transformers is a core dependency: always available."""

    def sync_weights(self, model) -> None:
        self.model = model

    @torch.no_grad()
    def generate(
        self, prompts: list[list[int]], params: SamplingParams, *, seed: int | None = None
    ) -> RolloutBatch:
        if seed is not None:
            torch.manual_seed(seed)
        if (
            params.n > self.max_batch
        ):  # one prompt's samples in pieces of max_batch rows (each prefilled once)
            parts = [
                self._chunk([p], replace(params, n=min(self.max_batch, params.n - k)))
                for p in prompts
                for k in range(0, params.n, self.max_batch)
            ]
            return concat(parts, self.tok.pad_token_id)
        per = self.max_batch // params.n  # whole prompts per chunk, so their samples share one prefill
        parts = [self._chunk(prompts[i : i + per], params) for i in range(0, len(prompts), per)]
        return concat(parts, self.tok.pad_token_id)

    def _chunk(self, prompts: list[list[int]], params: SamplingParams) -> RolloutBatch:
        training = self.model.training
        self.model.eval()  # keeps the KV cache on under gradient checkpointing
        try:
            return self._generate(prompts, params)
        finally:
            self.model.train(training)

    def _generate(self, prompts: list[list[int]], params: SamplingParams) -> RolloutBatch:
        dev = next(self.model.parameters()).device
        pad, eos = self.tok.pad_token_id, self.tok.eos_token_id
        ids, mask = (x.to(dev) for x in left_pad(prompts, pad))
        tp, n = ids.shape[1], params.n
        cache = shared_prefill(self.model, ids, mask, n) if self.share_prompt and n > 1 and tp > 1 else None
        ids, mask = ids.repeat_interleave(n, 0), mask.repeat_interleave(n, 0)
        greedy = params.temperature == 0
        recorder = LogprobRecorder(params.temperature) if params.logprobs and not greedy else None
        out = self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            past_key_values=cache,
            max_new_tokens=params.max_new_tokens,
            eos_token_id=eos,
            pad_token_id=pad,
            return_dict_in_generate=True,
            use_cache=True,
            logits_processor=LogitsProcessorList([recorder] if recorder else []),
            **sampling_kwargs(params),
        )
        resp = out.sequences[:, tp:].cpu()
        is_eos = resp == eos
        # valid = tokens up to and including the first EOS
        after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
        rmask = (~after_eos).float()
        lengths = rmask.sum(1).long()
        truncated = ~is_eos.any(1)
        logp = None
        if recorder is not None:
            logp = recorder.finish(out.sequences[:, -1]).cpu() * rmask
        resp = torch.where(rmask.bool(), resp, torch.full_like(resp, pad))
        texts = self.tok.batch_decode(resp, skip_special_tokens=True)
        return RolloutBatch(ids.cpu(), mask.cpu(), resp, rmask, logp, lengths, truncated, texts)


class LogprobRecorder(LogitsProcessor):
    """Records log softmax(logits / temperature) of each sampled token, O(rows) per step.

    Called by ``generate`` once per step with the raw fp32 logits (rows, V) and the ids so far:
    the last id is the token sampled at the previous step, whose log-prob is gathered from the
    previous step's log-softmax; ``finish`` gathers the last step's with the final tokens.
    """

    def __init__(self, temperature: float) -> None:
        self.temperature, self.prev, self.out = temperature, None, []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prev is not None:
            self.out.append(self.prev.gather(1, input_ids[:, -1:]).squeeze(1))
        self.prev = torch.log_softmax(scores.float() / self.temperature, -1)
        return scores

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """(rows, T) log-probs of the generated tokens; ``last_tokens`` (rows,) the final column."""
        self.out.append(self.prev.gather(1, last_tokens[:, None].to(self.prev.device)).squeeze(1))
        self.prev = None
        return torch.stack(self.out, 1)


def shared_prefill(model, ids: torch.Tensor, mask: torch.Tensor, n: int):
    """KV cache of each (P, Tp) left-padded prompt but its last token, repeated n times for P·n rows.

    The last token is left out because ``generate`` must feed at least one uncached token. None
    when the model keeps no cache: generate then prefills every row itself.
    """
    pos = (mask.cumsum(1) - 1).masked_fill(mask == 0, 1)  # as generate() numbers left-padded positions
    out = model(
        input_ids=ids[:, :-1],
        attention_mask=mask[:, :-1],
        position_ids=pos[:, :-1],
        use_cache=True,
        logits_to_keep=1,  # only the cache is used: no (P, Tp, V) logits
    )
    cache = out.past_key_values
    if cache is not None:
        cache.batch_repeat_interleave(n)
    return cache


def sampling_kwargs(params: SamplingParams) -> dict:
    """generate() flags for exactly softmax(logits / T) with top-p: nothing else may reshape it.

    Keyword flags override the model's own generation_config (e.g. a checkpoint shipping top_k=20
    or a repetition penalty), which would otherwise make the sampler's distribution differ from
    the one the trainer's log-probs describe. ``None`` passed as a keyword disables a processor.
    """
    if params.temperature == 0:
        return dict(do_sample=False, repetition_penalty=1.0, no_repeat_ngram_size=0)
    return dict(
        do_sample=True,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=None,
        min_p=None,
        typical_p=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
    )
