"""One FAST-GRPO step's group math, composed from the pure functions: the one call the trainer makes.

candidates' scores -> pass rate -> difficulty -> (population: this step's candidates or a running
window) -> easy/hard split -> thinking reward -> final reward -> advantages, plus the per-sample KL
coefficients and the bucket metrics. The trainer passes every group it generated this step and which
of them the online filter kept; everything per sample comes back for the kept groups only, [B, G].
The policy update then uses `advantages` and `kl_coef` with `fastgrpo.algo.loss.total_loss`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from fastgrpo.algo._utils import as_bool_tensor, as_float_tensor, check_group_shape
from fastgrpo.algo.advantages import compute_advantages
from fastgrpo.algo.difficulty import DifficultyWindow, difficulty, group_pass_rate, split_easy_hard
from fastgrpo.algo.kl import group_kl_coef
from fastgrpo.algo.metrics import bucket_metrics, filtered_fraction
from fastgrpo.algo.thinking import thinking_reward as _thinking_reward

__all__ = ["StepOutputs", "fast_grpo_step"]


@dataclass
class StepOutputs:
    """Everything `fast_grpo_step` computes; per-sample tensors are [B, G] over the kept groups."""

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
    kept: torch.Tensor | Sequence[bool] | None = None,
    format_reward: torch.Tensor | Sequence | None = None,
    difficulty_window: DifficultyWindow | None = None,
    adv_estimator: str = "grpo",
    thinking_reward: bool = True,
    thinking_reward_weight: float = 0.5,
    easy_percentile: float = 80.0,
    kl_type: str = "group_accuracy_based",
    kl_coef: float = 1e-2,
    kl_min_coef: float = 1e-3,
    kl_max_coef: float = 1e-2,
    kl_direction: str = "accuracy",
) -> StepOutputs:
    """The reward side of one step, for the C candidate groups generated this step ([C, G] / [C]).

    `kept` [C] marks the groups the online filter kept (None: all of them); the outputs cover those.
    Why the candidates and not only the kept groups: the easy/hard percentile is taken over every
    group generated this step, kept or filtered (SPEC default, `difficulty_population: batch`), or,
    given a `DifficultyWindow` (`difficulty_population: window`), over the window after every
    candidate's difficulty is pushed onto it; and `{easy,hard}/filtered_fraction` is over candidates.
    Keeping the order of operations (difficulty before thinking reward, thinking reward before
    advantages) in this one tested place is the point. Argument names follow the `algorithm.*` keys.
    """
    base = as_float_tensor(overall)
    acc = as_float_tensor(accuracy)
    lengths = as_float_tensor(response_length)
    check_group_shape("overall", base)
    for name, t in (("accuracy", acc), ("response_length", lengths)):
        if t.shape != base.shape:
            raise ValueError(f"{name} shape {tuple(t.shape)} != overall shape {tuple(base.shape)}")
    keep = torch.ones(base.shape[0], dtype=torch.bool) if kept is None else as_bool_tensor(kept).reshape(-1)
    if keep.numel() != base.shape[0]:
        raise ValueError(f"kept must have one entry per candidate group ({base.shape[0]}), got {keep.numel()}")
    if not bool(keep.any()):
        raise ValueError("fast_grpo_step needs at least one kept group")
    cand_difficulty = difficulty(group_pass_rate(acc), as_float_tensor(complexity))
    if difficulty_window is not None:
        difficulty_window.push(cand_difficulty)
        population = difficulty_window.values()
    else:
        population = cand_difficulty
    cand_hard, thr = split_easy_hard(cand_difficulty, easy_percentile, population=population)

    base, acc, lengths = base[keep], acc[keep], lengths[keep]
    fmt = None if format_reward is None else as_float_tensor(format_reward)[keep]
    p = group_pass_rate(acc)
    d, is_hard = cand_difficulty[keep], cand_hard[keep]
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
        difficulty=d,
        reward=rewards,
        format_reward=fmt,
        threshold=thr,
    )
    metrics.update(filtered_fraction(cand_hard, keep))
    metrics["all/advantage_abs"] = float(adv.abs().mean())
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
