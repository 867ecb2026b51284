"""Policy-gradient losses: a surrogate (``train/surrogates.py``), token aggregation, KL-to-reference,
entropy bonus.

Pure tensor functions with no state and no model; the trainer calls ``policy_loss(inputs, cfg)`` once per
mini-batch with the spec's ``loss`` section.

Notation used for tensor shapes:
    B: sequences (responses) in the mini-batch.
    T: response tokens, right-padded to the mini-batch width.
    V: vocabulary size.

Per token, with ratio = exp(logp - old_logp) and the sequence advantage A broadcast over tokens:

    pg = surrogate(ratio, A)            e.g. ppo_clip: -min(ratio A, clip(ratio, 1 - lo, 1 + hi) A)
    loss_token = pg + kl_coef * KL_est(logp, ref_logp) - entropy_coef * entropy
    loss = aggregate(loss_token, mask, aggregation)

Choices and deliberate deviations (estimators-and-anchors.md §2-§3, ebpo-paper.md §1.7):
- The log-ratio is clamped to [-20, 20] before ``exp`` so a stale or corrupted sampler log-prob
  cannot overflow the ratio to inf (verl clamps the KL the same way). Inside that range the loss is
  exact; outside it the gradient through the ratio is zero.
- ``token_mean`` is the mean over every valid token of the mini-batch on this rank, a *local*
  (per mini-batch, per rank) token mean; DDP then averages gradients across ranks. It is not the
  global token mean over all ranks. When the mini-batch is split into micro-batches (gradient
  accumulation) each micro-batch's loss is divided by the mini-batch's ``MiniBatchTotals`` (valid
  tokens, non-empty sequences, rows) instead of its own, so the summed gradient does not depend on
  the split (tested to 1e-5 in fp32).
- ``seq_mean_token_mean`` averages per-sequence token means over the sequences that have at least
  one valid token; empty sequences contribute 0 and are not counted (as newer verl does), so
  an all-padding row cannot dilute the loss.
- ``seq_mean_token_sum_norm`` (Dr. GRPO) divides by B * constant_norm with B counting every row,
  empty or not, because the point of the constant normaliser is that it never depends on lengths.
- An empty mask (no valid token at all) gives a loss of exactly 0 with zero gradients, not NaN.
- k3 clamps x = logp - ref_logp to [-20, 20] in both of its terms (not only inside ``exp``), which
  keeps it finite and non-negative; verl additionally clamps the result to [-10, 10], we do not.
- The logged ``approx_kl_old`` is the k3 estimate of KL(old || new) from tokens sampled by the old
  policy: r - 1 - log r with r = exp(logp - old_logp) (not the 0.5 * (log r)^2 variant).
- Padded positions must hold finite numbers: they are zeroed by multiplying with the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ebpo_bench.config.losses import AGGREGATIONS, LossConfig
from ebpo_bench.train.surrogates import SURROGATES

KL_ESTIMATORS = ("k1", "k3")

# exp(20) ~ 4.9e8: far beyond any ratio a clipped update can produce, yet finite in float16/32
_LOG_CLAMP = 20.0


@dataclass(frozen=True)
class MiniBatchTotals:
    """Normalisers of a whole mini-batch, for the micro-batches it is split into.

    tokens: valid response tokens; seqs: sequences with at least one valid token; rows: all rows.
    """

    tokens: float
    seqs: float
    rows: int


def aggregate(
    values: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    *,
    constant_norm: float | None = None,
    totals: MiniBatchTotals | None = None,
) -> torch.Tensor:
    """Reduce per-token values to a scalar loss.

    Args:
        values: (B, T) per-token values (losses).
        mask: (B, T) 1 (or True) on valid response tokens, 0 on padding.
        mode: ``"token_mean"``: sum(m * v) / sum(m) over the whole mini-batch;
            ``"seq_mean_token_mean"``: mean over non-empty sequences of per-sequence token means;
            ``"seq_mean_token_sum_norm"``: sum(m * v) / (B * constant_norm) (Dr. GRPO).
        constant_norm: the constant C of ``seq_mean_token_sum_norm`` (e.g. max_new_tokens).
        totals: the whole mini-batch's normalisers when ``values`` is one micro-batch of it (the
            micro-batch losses then sum to the mini-batch loss); None = this tensor's own.

    Returns:
        () scalar tensor; 0 when the mask has no valid token.

    Raises:
        ValueError: unknown mode, shape mismatch, or a missing / non-positive ``constant_norm``
            for ``seq_mean_token_sum_norm``.
    """
    if values.shape != mask.shape or values.dim() != 2:
        raise ValueError(
            f"values and mask must both be (B, T); got {tuple(values.shape)} and {tuple(mask.shape)}"
        )
    m = mask.to(values.dtype)
    masked = values * m
    if mode == "token_mean":
        # clamp(min=1) only changes the empty case (0 / 0 -> 0) for 0/1 masks
        return masked.sum() / (m.sum().clamp(min=1) if totals is None else max(totals.tokens, 1.0))
    if mode == "seq_mean_token_mean":
        lengths = m.sum(dim=1)
        seq_means = masked.sum(dim=1) / lengths.clamp(min=1)
        if totals is not None:
            return seq_means.sum() / max(totals.seqs, 1.0)
        n_seqs = (lengths > 0).to(values.dtype).sum()
        return seq_means.sum() / n_seqs.clamp(min=1)
    if mode == "seq_mean_token_sum_norm":
        if constant_norm is None or constant_norm <= 0:
            raise ValueError(
                "aggregation 'seq_mean_token_sum_norm' needs a positive constant_norm (e.g. max_new_tokens); "
                f"got {constant_norm!r}"
            )
        rows = values.shape[0] if totals is None else totals.rows
        return masked.sum() / (rows * float(constant_norm))
    raise ValueError(f"unknown aggregation {mode!r}; valid modes: {', '.join(AGGREGATIONS)}")


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str) -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from tokens sampled by pi.

    With x = logp - ref_logp: ``"k1"`` is x (unbiased, can be negative); ``"k3"`` is
    exp(-x) + x - 1 (verl ``low_var_kl``: unbiased, non-negative, lower variance), with x clamped
    to [-20, 20] first so that it stays finite.

    Args:
        logp: (B, T) log-probs of the sampled tokens under the policy.
        ref_logp: (B, T) log-probs of the same tokens under the reference policy.
        estimator: ``"k1"`` or ``"k3"``.

    Returns:
        (B, T) per-token KL estimates (padding is not masked here).

    Raises:
        ValueError: unknown estimator.
    """
    x = logp - ref_logp
    if estimator == "k1":
        return x
    if estimator == "k3":
        x = x.clamp(-_LOG_CLAMP, _LOG_CLAMP)
        return torch.exp(-x) + x - 1.0
    raise ValueError(f"unknown KL estimator {estimator!r}; valid estimators: {', '.join(KL_ESTIMATORS)}")


@dataclass(frozen=True)
class LossInputs:
    """The tensors of one mini-batch that the loss reads (B sequences, T response tokens).

    logp (B, T) requires grad; old_logp (B, T) the sampler's (constants); advantages (B,) sequence-level,
    broadcast over each response's tokens; mask (B, T) 1 on valid tokens; ref_logp (B, T) reference
    log-probs (needed when kl_coef > 0); entropy (B, T) per-token entropies (needed when entropy_coef > 0,
    logged when given); is_weights (B, T) constant per-token importance weights multiplying the surrogate
    (truncated IS when the sampler is not the trainer), None = 1; totals: the mini-batch's normalisers
    when these tensors are one micro-batch of it (``MiniBatchTotals``), None = their own.
    """

    logp: Tensor
    old_logp: Tensor
    advantages: Tensor
    mask: Tensor
    ref_logp: Tensor | None = None
    entropy: Tensor | None = None
    is_weights: Tensor | None = None
    totals: MiniBatchTotals | None = None

    def check(self, cfg: LossConfig) -> None:
        """Fail early, with the fix in the message, on shapes and option combinations that make no sense."""
        shape = tuple(self.logp.shape)
        if (
            self.logp.dim() != 2
            or self.old_logp.shape != self.logp.shape
            or self.mask.shape != self.logp.shape
        ):
            raise ValueError(
                f"logp, old_logp and mask must all be (B, T); got {shape}, "
                f"{tuple(self.old_logp.shape)}, {tuple(self.mask.shape)}"
            )
        if self.advantages.shape != self.logp.shape[:1]:
            raise ValueError(f"advantages must be (B,) = {shape[:1]}; got {tuple(self.advantages.shape)}")
        if cfg.kl_coef > 0 and self.ref_logp is None:
            raise ValueError(
                "kl_coef > 0 needs ref_logp (reference-policy log-probs); pass them or set kl_coef=0"
            )
        if cfg.entropy_coef > 0 and self.entropy is None:
            raise ValueError("entropy_coef > 0 needs the per-token entropy; pass it or set entropy_coef=0")
        for name in ("ref_logp", "entropy", "is_weights"):
            x = getattr(self, name)
            if x is not None and tuple(x.shape) != shape:
                raise ValueError(f"{name} must be (B, T) = {shape}; got {tuple(x.shape)}")


def policy_loss(x: LossInputs, cfg: LossConfig | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """The surrogate ``cfg.surrogate`` (``SURROGATES``), plus KL to the reference and the entropy bonus,
    aggregated by ``cfg.aggregation``.

    Returns:
        ``(loss, stats)``: loss is the () scalar to backpropagate; stats are detached () tensors:
        ``pg_loss`` (surrogate alone, same aggregation as the loss), ``kl`` (token-mean KL to ref, 0
        without ref_logp), ``entropy`` (token mean, only when entropy is given), ``approx_kl_old``
        (token-mean k3 estimate of KL(old || new)), ``ratio_mean`` and ``ratio_max`` (over valid tokens; 0
        if there are none), and the surrogate's own (for ppo_clip: ``clip_frac_low`` / ``clip_frac_high``
        / ``dual_clip_frac``, the fractions of valid tokens where that clip is active).

    Raises:
        ValueError: bad shapes, kl_coef > 0 without ref_logp, entropy_coef > 0 without entropy.
    """
    cfg = cfg or LossConfig()
    x.check(cfg)
    m = x.mask.to(x.logp.dtype)
    adv = x.advantages.to(x.logp.dtype).unsqueeze(1)
    ratio = torch.exp((x.logp - x.old_logp.detach()).clamp(-_LOG_CLAMP, _LOG_CLAMP))
    pg, own = SURROGATES.get(cfg.surrogate.type)(ratio, x.logp, adv, m, cfg.surrogate)
    if x.is_weights is not None:
        pg = pg * x.is_weights.detach().to(pg.dtype)

    per_token = pg
    kl_stat = torch.zeros((), dtype=x.logp.dtype, device=x.logp.device)
    if x.ref_logp is not None:
        kl = kl_penalty(x.logp, x.ref_logp.detach(), cfg.kl_estimator)
        kl_stat = _masked_mean(kl.detach(), m)
        if cfg.kl_coef > 0:
            per_token = per_token + cfg.kl_coef * kl
    if x.entropy is not None and cfg.entropy_coef > 0:
        per_token = per_token - cfg.entropy_coef * x.entropy
    norm = dict(constant_norm=cfg.constant_norm, totals=x.totals)
    loss = aggregate(per_token, m, cfg.aggregation, **norm)

    with torch.no_grad():
        stats = {"pg_loss": aggregate(pg.detach(), m, cfg.aggregation, **norm)}
        stats["kl"] = kl_stat
        stats.update(own)
        stats.update(_ratio_stats(ratio.detach(), x.logp.detach(), x.old_logp, m))
        if x.entropy is not None:
            stats["entropy"] = _masked_mean(x.entropy.detach(), m)
    return loss, stats


def _masked_mean(x: Tensor, m: Tensor) -> Tensor:
    return (x * m).sum() / m.sum().clamp(min=1)


def _ratio_stats(ratio: Tensor, logp: Tensor, old_logp: Tensor, m: Tensor) -> dict[str, Tensor]:
    """Approximate KL(old || new) and ratio summaries over the valid tokens."""
    empty = ratio.new_zeros(())
    return {
        # k3 with the roles swapped gives r - 1 - log r, r = new / old: KL(old || new) on old's samples
        "approx_kl_old": _masked_mean(kl_penalty(old_logp, logp, "k3"), m),
        "ratio_mean": _masked_mean(ratio, m),
        "ratio_max": ratio.masked_fill(m <= 0, 0.0).amax() if ratio.numel() else empty,
    }


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution softmax(logits) along the last dim.

    Computed as -sum(p * log p) with log p from ``log_softmax`` (which subtracts the max first), so
    every term is <= 0 and nothing cancels; the textbook logsumexp(z) - sum(p * z) loses about
    |z| * machine-eps to cancellation (3e-5 nats at |z| = 1000 in float32). Logits must be finite
    (a -inf logit gives 0 * -inf).

    Args:
        logits: (..., V) unnormalised log-probabilities (already divided by the temperature).

    Returns:
        (...) entropies in nats, differentiable.
    """
    return entropy_from_logp(torch.log_softmax(logits, dim=-1))


def entropy_from_logp(logp_all: torch.Tensor) -> torch.Tensor:
    """``entropy_from_logits`` from an already computed (..., V) ``log_softmax``: -sum(p * log p)."""
    return -(logp_all.exp() * logp_all).sum(dim=-1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Log-probs of the given tokens under softmax(logits).

    ``log_softmax`` then ``gather``: one (B, T, V) buffer (which its backward reuses) rather than
    softmax + log (two buffers, and log of an underflowed 0 gives -inf); only (B, T) survives the
    gather. Pass float32 logits for large vocabularies: bf16 log-probs are too coarse for ratios.

    Args:
        logits: (B, T, V) logits aligned with ``tokens`` (position t predicts tokens[:, t]).
        tokens: (B, T) integer token ids.

    Returns:
        (B, T) log-probabilities.

    Raises:
        ValueError: shape mismatch between logits and tokens.
    """
    if logits.dim() != tokens.dim() + 1 or logits.shape[:-1] != tokens.shape:
        raise ValueError(
            f"logits must be (B, T, V) with tokens (B, T); "
            f"got {tuple(logits.shape)} and {tuple(tokens.shape)}"
        )
    logp_all = torch.log_softmax(logits, dim=-1)
    return logp_all.gather(-1, tokens.long().unsqueeze(-1)).squeeze(-1)
