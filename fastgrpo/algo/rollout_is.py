"""Rollout/trainer mismatch: truncated importance sampling (TIS) weights and mismatch statistics.

The rollout engine samples from pi_rollout, which differs numerically from the trainer's pi_old for the
same weights (vLLM's bf16 kernels and attention against the trainer's forward). The policy gradient
assumes samples from pi_old, so each token's PG term is reweighted by pi_old / pi_rollout, truncated at a
cap so a token the engine under-sampled cannot dominate the batch (the TIS of Yao et al. 2025, as in
verl's `rollout_is` and TRL's `vllm_importance_sampling_correction`). Tensor in, tensor out.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from fastgrpo.algo._utils import as_bool_tensor

__all__ = ["RolloutMismatch", "rollout_mismatch", "tis_weights"]

_LOG_RATIO_BOUND = 20.0
"""exp(20) overflows nothing in fp32; a larger gap is capped anyway."""


def tis_weights(old_log_prob: torch.Tensor, rollout_log_prob: torch.Tensor, response_mask: torch.Tensor,
                cap: float = 2.0) -> torch.Tensor:
    """Per-token weight min(pi_old / pi_rollout, cap), [N, T], without gradient; 0 at padding.

    Why detached: the weight corrects the sampling distribution, it is not a term to optimize.
    """
    if cap <= 0:
        raise ValueError(f"cap must be positive, got {cap}")
    if old_log_prob.shape != rollout_log_prob.shape:
        raise ValueError(f"old log-probs {tuple(old_log_prob.shape)} and rollout log-probs "
                         f"{tuple(rollout_log_prob.shape)} differ in shape")
    mask = as_bool_tensor(response_mask)
    with torch.no_grad():
        log_ratio = (old_log_prob.float() - rollout_log_prob.float()).clamp(-_LOG_RATIO_BOUND, _LOG_RATIO_BOUND)
        weight = torch.exp(log_ratio).clamp(max=cap)
        return torch.where(mask, weight, torch.zeros_like(weight))


class RolloutMismatch(NamedTuple):
    """Sums, so micro-batches and ranks add up exactly (mean mismatch = abs_diff_sum / tokens), and the
    largest |difference| (combined by max)."""

    abs_diff_sum: torch.Tensor
    capped: torch.Tensor
    tokens: torch.Tensor
    max_abs_diff: torch.Tensor


def rollout_mismatch(old_log_prob: torch.Tensor, rollout_log_prob: torch.Tensor, response_mask: torch.Tensor,
                     cap: float = 2.0) -> RolloutMismatch:
    """Sums of |log pi_old - log pi_rollout| and of tokens whose ratio pi_old / pi_rollout exceeds `cap`,
    over the masked tokens, with the token count and the largest |difference|."""
    mask = as_bool_tensor(response_mask)
    with torch.no_grad():
        diff = old_log_prob.float() - rollout_log_prob.float()
        zeros = torch.zeros_like(diff)
        abs_diff = torch.where(mask, diff.abs(), zeros)
        capped = (mask & (diff > torch.log(torch.tensor(float(cap))))).sum().to(torch.float32)
        biggest = abs_diff.max() if abs_diff.numel() else torch.zeros(())
        return RolloutMismatch(abs_diff.sum(), capped, mask.sum().to(torch.float32), biggest)
