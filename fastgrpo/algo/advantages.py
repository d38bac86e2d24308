"""Group-relative advantages (SPEC section 1, step 5).

* grpo:   A_i = (r_i - mean_g) / (std_g + eps)
* drgrpo: A_i =  r_i - mean_g            (Dr.GRPO: no std division)

Groups of one sample, and groups whose rewards are all equal, carry no
learning signal: their advantages are exactly 0 (never NaN).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastgrpo.algo._utils import as_bool_tensor, as_float_tensor, check_group_shape

__all__ = ["broadcast_to_tokens", "compute_advantages"]

ADV_ESTIMATORS = ("grpo", "drgrpo")


def compute_advantages(
    rewards: torch.Tensor | Sequence,
    adv_estimator: str = "grpo",
    eps: float = 1e-6,
    mask: torch.Tensor | None = None,
    unbiased_std: bool = True,
) -> torch.Tensor:
    """Per-sample advantages from per-sample scalar rewards, [B, G] -> [B, G].

    Why: GRPO replaces a value network with the group baseline; Dr.GRPO drops
    the std division, which otherwise up-weights near-uniform groups.
    `unbiased_std` (Bessel's correction) matches torch.std as used by the
    reference frameworks. `mask` supports groups of unequal size; masked
    entries get advantage 0. Computed in float64 so "all equal" is exact.
    """
    if adv_estimator not in ADV_ESTIMATORS:
        raise ValueError(f"adv_estimator must be one of {ADV_ESTIMATORS}, got {adv_estimator!r}")
    r = as_float_tensor(rewards, torch.float64)
    check_group_shape("rewards", r)
    out_dtype = (
        rewards.dtype if isinstance(rewards, torch.Tensor) and rewards.is_floating_point() else torch.float32
    )
    valid = torch.ones_like(r, dtype=torch.bool) if mask is None else as_bool_tensor(mask)
    r = torch.where(valid, r, torch.zeros_like(r))
    n = valid.sum(dim=1, keepdim=True).to(r.dtype)
    mean = r.sum(dim=1, keepdim=True) / n.clamp_min(1.0)
    centered = torch.where(valid, r - mean, torch.zeros_like(r))
    if adv_estimator == "grpo":
        denom = (n - 1.0).clamp_min(1.0) if unbiased_std else n.clamp_min(1.0)
        std = (centered.square().sum(dim=1, keepdim=True) / denom).sqrt()
        adv = centered / (std + eps)
    else:
        adv = centered
    big = torch.finfo(r.dtype).max
    r_max = torch.where(valid, r, torch.full_like(r, -big)).max(dim=1, keepdim=True).values
    r_min = torch.where(valid, r, torch.full_like(r, big)).min(dim=1, keepdim=True).values
    informative = (n > 1) & (r_max > r_min)
    adv = torch.where(informative & valid, adv, torch.zeros_like(adv))
    return adv.to(out_dtype)


def broadcast_to_tokens(advantages: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence advantages [N] -> per-token [N, T], zero on padding.

    Why: outcome rewards give every token of a response the same advantage.
    """
    a = advantages.reshape(-1, 1).to(torch.float32)
    m = as_bool_tensor(response_mask)
    return torch.where(m, a.expand_as(m).to(a.dtype), torch.zeros(m.shape, dtype=a.dtype, device=a.device))
