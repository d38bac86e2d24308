"""FAST-GRPO algorithm core: pure tensor-in / tensor-out functions.

No I/O, no model or engine code: everything here is unit-testable on tiny
tensors. Shapes: per-group quantities are [B, G] (B prompts, G samples each),
token quantities are [N, T] with a response mask. See docs/algorithm.md.

Imports only torch and the standard library (tests/algo/test_purity.py checks it). The
per-question difficulty function is `fastgrpo.algo.difficulty.difficulty`; it is not re-exported
here, so `from fastgrpo.algo import difficulty` is the module.
"""

from fastgrpo.algo.advantages import broadcast_to_tokens, compute_advantages
from fastgrpo.algo.difficulty import (
    ComplexityStats,
    DifficultyWindow,
    combine_complexity,
    difficulty_threshold,
    group_pass_rate,
    min_max_normalize,
    split_easy_hard,
    text_complexity,
)
from fastgrpo.algo.filtering import (
    BatchFiller,
    FillResult,
    filter_groups,
    group_filter_values,
    resolve_filter_bounds,
    training_progress,
)
from fastgrpo.algo.kl import group_kl_coef, kl_penalty
from fastgrpo.algo.loss import agg_loss, policy_loss, policy_loss_tokens, total_loss
from fastgrpo.algo.metrics import bucket_metrics, filtered_fraction
from fastgrpo.algo.step import StepOutputs, fast_grpo_step
from fastgrpo.algo.thinking import thinking_reward

__all__ = [
    "BatchFiller",
    "ComplexityStats",
    "DifficultyWindow",
    "FillResult",
    "StepOutputs",
    "agg_loss",
    "broadcast_to_tokens",
    "bucket_metrics",
    "combine_complexity",
    "compute_advantages",
    "difficulty_threshold",
    "fast_grpo_step",
    "filter_groups",
    "filtered_fraction",
    "group_filter_values",
    "group_kl_coef",
    "group_pass_rate",
    "kl_penalty",
    "min_max_normalize",
    "policy_loss",
    "policy_loss_tokens",
    "resolve_filter_bounds",
    "split_easy_hard",
    "text_complexity",
    "thinking_reward",
    "total_loss",
    "training_progress",
]
