"""Rollouts with transformers ``generate`` on the training model itself (CPU-capable default).

The sampling log-probs come from the logits ``generate`` already computed (``output_logits``),
divided by the temperature exactly as the trainer does, so no second forward pass is needed for
the PPO ratio's denominator. Under top-p < 1 they are the log-probs of the temperature-scaled
distribution before truncation, the usual convention (verl, TRL).
"""

from __future__ import annotations

import torch

from . import BACKENDS, RolloutBatch, SamplingParams, concat, left_pad


@BACKENDS.register("hf")
class HFRollout:
    """Batched sampling with ``model.generate``; weights are shared with the trainer."""

    def __init__(self, model, tokenizer, *, max_batch: int = 256) -> None:
        self.model, self.tok, self.max_batch = model, tokenizer, max_batch

    def sync_weights(self, model) -> None:
        self.model = model

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: SamplingParams, *, seed: int | None = None) -> RolloutBatch:
        rows = [p for p in prompts for _ in range(params.n)]
        if seed is not None:
            torch.manual_seed(seed)
        parts = [self._chunk(rows[i : i + self.max_batch], params) for i in range(0, len(rows), self.max_batch)]
        return concat(parts, self.tok.pad_token_id)

    def _chunk(self, rows: list[list[int]], params: SamplingParams) -> RolloutBatch:
        dev = next(self.model.parameters()).device
        pad, eos = self.tok.pad_token_id, self.tok.eos_token_id
        ids, mask = left_pad(rows, pad)
        tp = ids.shape[1]
        greedy = params.temperature == 0
        out = self.model.generate(
            input_ids=ids.to(dev), attention_mask=mask.to(dev), max_new_tokens=params.max_new_tokens,
            eos_token_id=eos, pad_token_id=pad, return_dict_in_generate=True,
            output_logits=params.logprobs and not greedy, **sampling_kwargs(params),
        )
        resp = out.sequences[:, tp:].cpu()
        is_eos = resp == eos
        # valid = tokens up to and including the first EOS
        after_eos = (is_eos.cumsum(1) - is_eos.long()) > 0
        rmask = (~after_eos).float()
        lengths = rmask.sum(1).long()
        truncated = ~is_eos.any(1)
        logp = None
        if params.logprobs and not greedy:
            logits = torch.stack(out.logits, 1).float().cpu() / params.temperature
            logp = torch.log_softmax(logits, -1).gather(-1, resp.unsqueeze(-1)).squeeze(-1) * rmask
        resp = torch.where(rmask.bool(), resp, torch.full_like(resp, pad))
        texts = self.tok.batch_decode(resp, skip_special_tokens=True)
        return RolloutBatch(ids, mask, resp, rmask, logp, lengths, truncated, texts)


def sampling_kwargs(params: SamplingParams) -> dict:
    """generate() flags for exactly softmax(logits / T) with top-p: nothing else may reshape it.

    Keyword flags override the model's own generation_config (e.g. a checkpoint shipping top_k=20
    or a repetition penalty), which would otherwise make the sampler's distribution differ from
    the one the trainer's log-probs describe. ``None`` passed as a keyword disables a processor.
    """
    if params.temperature == 0:
        return dict(do_sample=False, repetition_penalty=1.0, no_repeat_ngram_size=0)
    return dict(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=None, min_p=None,
                typical_p=1.0, repetition_penalty=1.0, no_repeat_ngram_size=0, epsilon_cutoff=0.0, eta_cutoff=0.0)
