"""One FAST-GRPO step's reward-side math, composed from the pure functions.

scores -> pass rate -> difficulty -> easy/hard -> thinking reward -> final
reward -> advantages, plus the per-sample KL coefficients and the bucket
metrics. The trainer calls this once per step after scoring (and after online
filtering); the policy update then uses `advantages` and `kl_coef` with
`fastgrpo.algo.loss.total_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fastgrpo.algo._utils import as_float_tensor, check_group_shape
from fastgrpo.algo.advantages import compute_advantages
from fastgrpo.algo.difficulty import DifficultyWindow, difficulty, group_pass_rate, split_easy_hard
from fastgrpo.algo.kl import group_kl_coef
from fastgrpo.algo.metrics import bucket_metrics
from fastgrpo.algo.thinking import thinking_reward as _thinking_reward

__all__ = ["StepOutputs", "fast_grpo_step"]


@dataclass
class StepOutputs:
    """Everything `fast_grpo_step` computes; per-sample tensors are [B, G]."""

    rewards: torch.Tensor
    """Final scalar reward per sample: overall + thinking reward."""
    advantages: torch.Tensor
    kl_coef: torch.Tensor
    thinking_reward: torch.Tensor
    pass_rate: torch.Tensor
    difficulty: torch.Tensor
    is_hard: torch.Tensor
    threshold: float
    metrics: dict[str, float] = field(default_factory=dict)


def fast_grpo_step(
    overall: torch.Tensor | Sequence,
    accuracy: torch.Tensor | Sequence,
    response_length: torch.Tensor | Sequence,
    complexity: torch.Tensor | Sequence[float],
    *,
    adv_estimator: str = "grpo",
    thinking_reward: bool = True,
    thinking_reward_weight: float = 0.5,
    easy_percentile: float = 80.0,
    difficulty_window: DifficultyWindow | None = None,
    population: torch.Tensor | Sequence[float] | None = None,
    kl_type: str = "group_accuracy_based",
    kl_coef: float = 1e-2,
    kl_min_coef: float = 1e-3,
    kl_max_coef: float = 1e-2,
    kl_direction: str = "accuracy",
    format_reward: torch.Tensor | Sequence | None = None,
    kept: torch.Tensor | Sequence[bool] | None = None,
) -> StepOutputs:
    """Compose the FAST-GRPO reward shaping for one step.

    Why: keeps the order of operations (difficulty before thinking reward,
    thinking reward before advantages) in one tested place. Pass a
    `DifficultyWindow` for `algorithm.difficulty_population: window`
    (None = this batch), or the difficulties to take the percentile over as
    `population` (the trainer passes every group generated this step, kept
    or filtered). Argument names follow the `algorithm.*` config keys.
    """
    base = as_float_tensor(overall)
    acc = as_float_tensor(accuracy)
    lengths = as_float_tensor(response_length)
    check_group_shape("overall", base)
    for name, t in (("accuracy", acc), ("response_length", lengths)):
        if t.shape != base.shape:
            raise ValueError(f"{name} shape {tuple(t.shape)} != overall shape {tuple(base.shape)}")
    p = group_pass_rate(acc)
    d = difficulty(p, complexity)
    if difficulty_window is not None:
        is_hard, thr = difficulty_window.split(d, easy_percentile)
    else:
        is_hard, thr = split_easy_hard(d, easy_percentile, population=population)
    if thinking_reward:
        think = _thinking_reward(lengths, acc, is_hard, thinking_reward_weight)
    else:
        think = torch.zeros_like(base)
    rewards = base + think
    adv = compute_advantages(rewards, adv_estimator)
    coef = group_kl_coef(acc, kl_type, kl_coef, kl_min_coef, kl_max_coef, direction=kl_direction)
    metrics = bucket_metrics(
        acc,
        lengths,
        is_hard,
        kl_coef=coef,
        thinking_reward=think,
        kept=kept,
        difficulty=d,
        reward=rewards,
        format_reward=format_reward,
        threshold=thr,
    )
    return StepOutputs(
        rewards=rewards,
        advantages=adv,
        kl_coef=coef,
        thinking_reward=think,
        pass_rate=p,
        difficulty=d,
        is_hard=is_hard,
        threshold=thr,
        metrics=metrics,
    )
