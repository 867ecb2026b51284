"""Token log-probs and entropies from the final hidden states, without a (B, T, V) float32 tensor.

At a 151,936-token vocabulary the LM head's output is the update's largest tensor by far: (B, T, V)
fp32 logits plus their log-softmax are 2 x 64 x 8192 x 151,936 x 4 B ~ 640 GB per rank for one
paper mini-batch. ``head_logprobs`` instead flattens the N = B x T positions and walks them in chunks
of ``chunk`` tokens; per chunk, with z = (h W^T) / temperature (fp32, (n, V)):

    logp[i]    = z[i, y_i] - logsumexp(z[i])
    entropy[i] = -sum_v p[i, v] log p[i, v],     p = softmax(z)

Only (N,) results, the (N,) logsumexp and the inputs are kept for backward; ``backward`` recomputes
each chunk's logits (one extra head matmul, as activation checkpointing would) and applies the
closed-form gradients, for upstream gradients g (logp) and e (entropy):

    dL/dz[i, v] = g_i (1[v = y_i] - p[i, v]) - e_i p[i, v] (log p[i, v] + entropy_i)
    dL/dh = (dL/dz / temperature) W,    dL/dW = (dL/dz / temperature)^T h

Peak extra memory is two (chunk, V) fp32 buffers plus an fp32 (V, H) accumulator of dL/dW when W is
not fp32. Values and gradients equal the plain ``log_softmax`` path's to float rounding (tested:
< 1e-5 in fp32). Under autocast the head matmul runs in the autocast dtype, as ``nn.Linear`` would.

A fused kernel (Liger's fused linear cross-entropy) would avoid even the chunk's logits in HBM; it
computes no entropy, so it is not used here yet: this chunked path is the one that runs everywhere.
"""

from __future__ import annotations

import torch


def _compute_dtype(h: torch.Tensor, w: torch.Tensor) -> torch.dtype:
    dev = h.device.type
    if torch.is_autocast_enabled(dev):
        return torch.get_autocast_dtype(dev)
    return torch.promote_types(h.dtype, w.dtype)


class _ChunkedHead(torch.autograd.Function):
    """(N, H) hidden x (V, H) head -> (N,) log-probs of ``targets`` and (N,) entropies, chunk by chunk."""

    @staticmethod
    def forward(ctx, h, w, targets, temperature: float, chunk: int, want_entropy: bool):
        cd = _compute_dtype(h, w)
        n = h.shape[0]
        logp = torch.empty(n, dtype=torch.float32, device=h.device)
        lse = torch.empty_like(logp)
        ent = torch.zeros_like(logp)
        wc = w.to(cd)
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            z = (h[s:e].to(cd) @ wc.T).float().div_(temperature)  # (n, V)
            lse[s:e] = torch.logsumexp(z, -1)
            z.sub_(lse[s:e, None])  # z is log p now
            logp[s:e] = z.gather(1, targets[s:e, None]).squeeze(1)
            if want_entropy:
                ent[s:e] = -torch.linalg.vecdot(z.exp(), z)
            del z
        ctx.save_for_backward(h, w, targets, lse, ent)
        ctx.temperature, ctx.chunk, ctx.cd = temperature, chunk, cd
        ctx.set_materialize_grads(False)  # an unused output (the entropy) gets None, not zeros
        return logp, ent

    @staticmethod
    def backward(ctx, g_logp, g_ent):
        h, w, targets, lse, ent = ctx.saved_tensors
        if g_logp is None and g_ent is None:
            return None, None, None, None, None, None
        cd, chunk, temp = ctx.cd, ctx.chunk, ctx.temperature
        wc = w.to(cd)
        gh = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        gw = torch.zeros(w.shape, dtype=torch.float32, device=w.device) if ctx.needs_input_grad[1] else None
        n = h.shape[0]
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            hs = h[s:e].to(cd)
            lp = (hs @ wc.T).float().div_(temp)
            lp.sub_(lse[s:e, None])  # log p, (n, V)
            p = lp.exp()
            gl = g_logp[s:e, None].float() if g_logp is not None else torch.zeros_like(lse[s:e, None])
            if g_ent is not None:
                # -e p (log p + H) - g p  (computed in place in lp)
                lp.add_(ent[s:e, None]).mul_(g_ent[s:e, None].float()).add_(gl).mul_(p).neg_()
            else:
                lp = p.mul_(gl).neg_()
            gz = lp
            gz.scatter_add_(1, targets[s:e, None], gl)
            gz.div_(temp)
            del p
            gzc = gz.to(cd)
            if gh is not None:
                gh[s:e] = (gzc @ wc).to(h.dtype)
            if gw is not None:
                gw.add_((gzc.T @ hs).float())
            del gz, gzc, lp
        return gh, (gw.to(w.dtype) if gw is not None else None), None, None, None, None


def head_logprobs(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    temperature: float,
    with_entropy: bool | str,
    chunk: int = 1024,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (B, T) of ``targets`` and entropy (B, T) or None under softmax(hidden W^T / temperature).

    Args:
        hidden: (B, T, H) final hidden states (after the last norm); position t predicts targets[:, t].
        weight: (V, H) the LM head's weight (no bias).
        targets: (B, T) token ids.
        temperature: the sampling temperature the logits are divided by.
        with_entropy: False (no entropy), True (entropy with gradient, for an entropy bonus) or "detached".
        chunk: positions per chunk; the peak extra memory is about 2 x chunk x V x 4 bytes.

    Returns:
        ``(logp, entropy)`` in float32.
    """
    B, T, H = hidden.shape
    logp, ent = _ChunkedHead.apply(
        hidden.reshape(B * T, H),
        weight,
        targets.reshape(-1).long(),
        float(temperature),
        max(1, int(chunk)),
        bool(with_entropy),
    )
    logp = logp.reshape(B, T)
    if not with_entropy:
        return logp, None
    ent = ent.reshape(B, T)
    return logp, (ent.detach() if with_entropy == "detached" else ent)
