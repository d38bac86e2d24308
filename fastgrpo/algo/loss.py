"""PPO-clipped policy loss, loss aggregation and the KL-regularised total (SPEC step 7).

All functions take token-level tensors shaped [N, T] (N responses, T padded
response tokens) with a `response_mask` [N, T] marking real tokens.
"""

from __future__ import annotations

import math

import torch

from fastgrpo.algo._utils import as_bool_tensor, masked_mean
from fastgrpo.algo.kl import kl_penalty as _kl_penalty

__all__ = ["LOSS_AGG_MODES", "POLICY_LOSSES", "agg_loss", "gspo_loss_tokens", "policy_loss", "policy_loss_tokens",
           "total_loss"]

LOSS_AGG_MODES = ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
POLICY_LOSSES = ("ppo", "gspo")


def agg_loss(
    loss_mat: torch.Tensor,
    loss_mask: torch.Tensor,
    loss_agg_mode: str = "token-mean",
    norm_constant: float | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss [N, T] to a scalar.

    Why: the reduction decides how long and short responses are weighted.

    * token-mean: sum over all kept tokens / number of kept tokens (DAPO;
      every token weighs the same).
    * seq-mean-token-sum: per-response token sum, mean over responses that
      have at least one token.
    * seq-mean-token-mean: per-response token mean, mean over non-empty
      responses (original GRPO; long responses are down-weighted per token).
    * seq-mean-token-sum-norm: sum over kept tokens / (N * norm_constant),
      i.e. the mean over responses of the token sum divided by a constant
      (Dr.GRPO; `norm_constant` defaults to T, the padded response length, and
      should be set to the generation budget max_response_length).

    Masked positions never contribute, even if they hold NaN/inf; an empty
    mask gives 0 (with a gradient path), never NaN.
    """
    mask = as_bool_tensor(loss_mask)
    if loss_mat.shape != mask.shape:
        raise ValueError(f"loss shape {tuple(loss_mat.shape)} != mask shape {tuple(mask.shape)}")
    vals = torch.where(mask, loss_mat, torch.zeros_like(loss_mat))
    maskf = mask.to(vals.dtype)
    if loss_agg_mode == "token-mean":
        return vals.sum() / maskf.sum().clamp_min(1.0)
    seq_sum = vals.sum(dim=-1)
    seq_len = maskf.sum(dim=-1)
    non_empty = (seq_len > 0).to(vals.dtype)
    n_seq = non_empty.sum().clamp_min(1.0)
    if loss_agg_mode == "seq-mean-token-sum":
        return (seq_sum * non_empty).sum() / n_seq
    if loss_agg_mode == "seq-mean-token-mean":
        return (seq_sum / seq_len.clamp_min(1.0) * non_empty).sum() / n_seq
    if loss_agg_mode == "seq-mean-token-sum-norm":
        c = float(mask.shape[-1]) if norm_constant is None else float(norm_constant)
        if not c > 0:
            raise ValueError(f"norm_constant must be positive, got {norm_constant}")
        n_rows = max(1, mask.shape[0]) if mask.dim() > 1 else 1
        return seq_sum.sum() / (n_rows * c)
    raise ValueError(f"loss_agg_mode must be one of {LOSS_AGG_MODES}, got {loss_agg_mode!r}")


def _token_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    adv = advantages.to(like.dtype)
    if adv.dim() == 1:
        adv = adv[:, None].expand_as(like)
    if adv.shape != like.shape:
        raise ValueError(
            f"advantages must be [N] or [N, T] matching {tuple(like.shape)}, got {tuple(adv.shape)}"
        )
    return adv


def policy_loss_tokens(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.28,
    clip_ratio_dual: float | None = None,
    response_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-token PPO-clip loss and its diagnostics (unreduced).

    Why: exposed so the total loss can add per-token KL before aggregation.
    Returns {"loss", "ratio", "clipped_high" (bool), "clipped_dual" (bool),
    "neg_log_ratio"}. The ratio uses a log-ratio clamped to [-20, 20] so an
    extreme token cannot produce inf/NaN. Dual clip (Ye et al. 2019) bounds
    the loss of negative-advantage tokens at -A * clip_ratio_dual; it is off
    when `clip_ratio_dual` is None or <= 1. With `response_mask`, padding
    positions are zeroed *before* any arithmetic, so NaN/inf garbage there
    cannot reach values or gradients.
    """
    logp = log_prob.float()
    old = old_log_prob.float()
    adv = _token_advantages(advantages.float(), logp)
    if response_mask is not None:
        m = as_bool_tensor(response_mask)
        logp = torch.where(m, logp, torch.zeros_like(logp))
        old = torch.where(m, old, torch.zeros_like(old))
        adv = torch.where(m, adv, torch.zeros_like(adv))
    log_ratio = (logp - old).clamp(-20.0, 20.0)
    return _clipped_surrogate(torch.exp(log_ratio), -log_ratio, adv, clip_ratio_low, clip_ratio_high, clip_ratio_dual)


def _clipped_surrogate(ratio: torch.Tensor, neg_log_ratio: torch.Tensor, adv: torch.Tensor, clip_ratio_low: float,
                       clip_ratio_high: float, clip_ratio_dual: float | None) -> dict[str, torch.Tensor]:
    """max(-A r, -A clip(r)) per token (and the dual clip), shared by the token (PPO) and sequence (GSPO) ratios."""
    clipped_ratio = ratio.clamp(1.0 - clip_ratio_low, 1.0 + clip_ratio_high)
    loss1 = -adv * ratio
    loss2 = -adv * clipped_ratio
    loss = torch.maximum(loss1, loss2)
    clipped_high = loss2 > loss1
    clipped_dual = torch.zeros_like(clipped_high)
    if clip_ratio_dual is not None and clip_ratio_dual > 1.0:
        loss3 = -adv * clip_ratio_dual
        neg = adv < 0
        clipped_dual = neg & (loss > loss3)
        loss = torch.where(neg, torch.minimum(loss, loss3), loss)
    return {
        "loss": loss,
        "ratio": ratio,
        "clipped_high": clipped_high,
        "clipped_dual": clipped_dual,
        "neg_log_ratio": neg_log_ratio,
    }


def gspo_loss_tokens(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    clip_ratio_low: float = 3e-4,
    clip_ratio_high: float = 4e-4,
    response_mask: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-token GSPO loss (GSPO-token, arXiv 2507.18071 eq. 10-11) and its diagnostics, unreduced.

    s_i = exp(mean_t(log pi - log pi_old)) over response i's tokens (length-normalized, so long and short
    responses have ratios on one scale). Token t carries s_i,t = sg[s_i] * pi_t / sg[pi_t]: its value is s_i
    and its gradient that of log pi_t scaled by s_i, and is clipped to [1 - low, 1 + high] like a PPO ratio;
    so the whole response is clipped or not. Averaged per response (loss_agg_mode `seq-mean-token-mean`) with
    one advantage per response, the gradient equals sequence-level GSPO's (TRL importance_sampling_level
    `sequence`, verl `gspo`). No dual clip (neither the paper nor TRL/verl has one for GSPO). Same keys as
    `policy_loss_tokens`; `ratio`, `clipped_high` hold each response's value on all its tokens.
    """
    logp = log_prob.float()
    old = old_log_prob.float()
    adv = _token_advantages(advantages.float(), logp)
    m = torch.ones_like(logp, dtype=torch.bool) if response_mask is None else as_bool_tensor(response_mask)
    logp = torch.where(m, logp, torch.zeros_like(logp))
    old = torch.where(m, old, torch.zeros_like(old))
    adv = torch.where(m, adv, torch.zeros_like(adv))
    token_log_ratio = logp - old
    n = m.sum(dim=-1).clamp_min(1).to(logp.dtype)
    seq_log_ratio = (token_log_ratio.sum(dim=-1) / n).clamp(-20.0, 20.0)
    log_ratio = seq_log_ratio.detach()[:, None] + logp - logp.detach()
    return _clipped_surrogate(torch.exp(log_ratio), -token_log_ratio.detach(), adv, clip_ratio_low,
                              clip_ratio_high, None)


def _policy_parts(policy_loss: str, log_prob: torch.Tensor, old_log_prob: torch.Tensor, advantages: torch.Tensor,
                  clip_ratio_low: float, clip_ratio_high: float, clip_ratio_dual: float | None,
                  mask: torch.Tensor) -> dict[str, torch.Tensor]:
    if policy_loss == "ppo":
        return policy_loss_tokens(log_prob, old_log_prob, advantages, clip_ratio_low, clip_ratio_high,
                                  clip_ratio_dual, mask)
    if policy_loss == "gspo":
        return gspo_loss_tokens(log_prob, old_log_prob, advantages, clip_ratio_low, clip_ratio_high, mask)
    raise ValueError(f"policy_loss must be one of {POLICY_LOSSES}, got {policy_loss!r}")


def _f(x: torch.Tensor) -> float:
    v = float(x.detach())
    return v if math.isfinite(v) else float("nan")


def policy_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.28,
    clip_ratio_dual: float | None = None,
    loss_agg_mode: str = "token-mean",
    norm_constant: float | None = None,
    policy_loss: str = "ppo",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO-clip (or, `policy_loss="gspo"`, GSPO) policy loss (scalar, differentiable) and metrics.

    Why: the clipped surrogate keeps each update near the sampling policy;
    asymmetric clip (low 0.2, high 0.28, DAPO "clip-higher") leaves room to
    raise unlikely tokens. Metrics (token-mean over the mask): pg_loss,
    pg_clipfrac (upper/lower PPO clip active), pg_clipfrac_lower (dual clip
    active), ppo_kl (approx KL old->new, mean of old - new log-prob),
    ratio_mean, ratio_max.
    """
    mask = as_bool_tensor(response_mask)
    parts = _policy_parts(policy_loss, log_prob, old_log_prob, advantages, clip_ratio_low, clip_ratio_high,
                          clip_ratio_dual, mask)
    loss = agg_loss(parts["loss"], mask, loss_agg_mode, norm_constant)
    metrics = _pg_metrics(parts, mask)
    metrics["pg_loss"] = _f(loss)
    return loss, metrics


def _pg_metrics(parts: dict[str, torch.Tensor], mask: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        ratio = parts["ratio"]
        has_tokens = bool(mask.any())
        return {
            "pg_clipfrac": _f(masked_mean(parts["clipped_high"].float(), mask)),
            "pg_clipfrac_lower": _f(masked_mean(parts["clipped_dual"].float(), mask)),
            "ppo_kl": _f(masked_mean(parts["neg_log_ratio"], mask)),
            "ratio_mean": _f(masked_mean(ratio, mask)) if has_tokens else 1.0,
            "ratio_max": _f(ratio[mask].max()) if has_tokens else 1.0,
        }


def total_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    response_mask: torch.Tensor,
    ref_log_prob: torch.Tensor | None = None,
    kl_coef: torch.Tensor | float | None = None,
    kl_penalty: str = "low_var_kl",
    use_kl_loss: bool = True,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.28,
    clip_ratio_dual: float | None = None,
    loss_agg_mode: str = "token-mean",
    norm_constant: float | None = None,
    is_weights: torch.Tensor | None = None,
    policy_loss: str = "ppo",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Policy loss plus per-token KL loss weighted per sample by its KL coefficient.

    loss = agg( w_t * pg_token + beta_i * kl_token )

    `policy_loss`: `ppo` (token ratios, `policy_loss_tokens`) or `gspo` (one clipped ratio per response,
    `gspo_loss_tokens`). Either way pg_token is a per-token tensor, so the KL term, the rollout weights and
    the aggregation below are the same for both: KL per token to the reference, not through the sequence
    ratio (as TRL's GSPO); w_t per token (as verl's GSPO); `response_mask` also drops whole responses (a
    row of zeros, e.g. `algorithm.mask_truncated`) from both terms.

    `is_weights` [N, T] (w_t, default 1): rollout importance weights (`fastgrpo.algo.rollout_is.tis_weights`),
    correcting for the engine sampling from a slightly different policy; they scale only the
    policy-gradient term, as in verl (the KL term is an expectation the trainer computes exactly).

    Why: FAST's KL coefficient differs per group, so the KL term cannot be a
    single scalar times a batch-mean KL; weighting each token by its
    response's beta_i before the same aggregation as the policy term keeps
    both terms on one scale. `kl_coef` is a per-response tensor [N] (e.g.
    `group_kl_coef(...).reshape(-1)`) or a float. Metrics add kl_loss
    (aggregated unweighted KL), kl_coef_mean, weighted_kl_loss and total_loss.
    """
    mask = as_bool_tensor(response_mask)
    parts = _policy_parts(policy_loss, log_prob, old_log_prob, advantages, clip_ratio_low, clip_ratio_high,
                          clip_ratio_dual, mask)
    pg_tok = parts["loss"]
    if is_weights is not None:
        if is_weights.shape != pg_tok.shape:
            raise ValueError(f"is_weights shape {tuple(is_weights.shape)} != loss shape {tuple(pg_tok.shape)}")
        pg_tok = pg_tok * torch.where(mask, is_weights.detach().float(), torch.zeros_like(pg_tok))
    pg_loss = agg_loss(pg_tok, mask, loss_agg_mode, norm_constant)
    metrics = _pg_metrics(parts, mask)
    metrics["pg_loss"] = _f(pg_loss)
    tok = pg_tok
    if use_kl_loss and ref_log_prob is not None and kl_coef is not None:
        zeros = torch.zeros_like(log_prob, dtype=torch.float32)
        kl_tok = _kl_penalty(
            torch.where(mask, log_prob.float(), zeros),
            torch.where(mask, ref_log_prob.float(), zeros),
            kl_penalty,
        )
        if isinstance(kl_coef, torch.Tensor):
            beta = kl_coef.to(device=kl_tok.device, dtype=kl_tok.dtype).reshape(-1)
            if beta.numel() == 1:
                beta = beta.expand(kl_tok.shape[0])
            if beta.numel() != kl_tok.shape[0]:
                raise ValueError(
                    f"kl_coef must have one entry per response ({kl_tok.shape[0]}), got {beta.numel()}"
                )
        else:
            beta = torch.full((kl_tok.shape[0],), float(kl_coef), dtype=kl_tok.dtype, device=kl_tok.device)
        weighted = kl_tok * beta[:, None]
        tok = pg_tok + weighted
        with torch.no_grad():
            metrics["kl_loss"] = _f(agg_loss(kl_tok, mask, loss_agg_mode, norm_constant))
            metrics["weighted_kl_loss"] = _f(agg_loss(weighted, mask, loss_agg_mode, norm_constant))
            metrics["kl_coef_mean"] = _f(beta.mean()) if beta.numel() else 0.0
    loss = agg_loss(tok, mask, loss_agg_mode, norm_constant)
    metrics["total_loss"] = _f(loss)
    return loss, metrics


def agg_denominator(response_lengths: list[int], loss_agg_mode: str = "token-mean") -> float:
    """The quantity `agg_loss` divides by, for a batch with these response lengths.

    Why: a global batch split into micro-batches (and ranks) is normalized by the
    *global* denominator: each micro-batch's `agg_loss` is rescaled by
    local / global denominator, so the summed gradients equal one big batch's.
    """
    if loss_agg_mode == "token-mean":
        return float(sum(response_lengths))
    if loss_agg_mode in ("seq-mean-token-sum", "seq-mean-token-mean"):
        return float(sum(1 for n in response_lengths if n > 0))
    if loss_agg_mode == "seq-mean-token-sum-norm":
        return float(len(response_lengths))
    raise ValueError(f"loss_agg_mode must be one of {LOSS_AGG_MODES}, got {loss_agg_mode!r}")
