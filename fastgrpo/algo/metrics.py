"""Per-step FAST-GRPO metrics split into easy/hard buckets (SPEC section 1, last paragraph)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from fastgrpo.algo._utils import as_bool_tensor, as_float_tensor, check_group_shape

__all__ = ["bucket_metrics", "filtered_fraction"]


def _per_group(x: torch.Tensor | Sequence | None, b: int, g: int, name: str) -> torch.Tensor | None:
    if x is None:
        return None
    t = as_float_tensor(x, torch.float64)
    if t.dim() == 1 and t.shape[0] == b:
        t = t[:, None].expand(b, g)
    if tuple(t.shape) != (b, g):
        raise ValueError(f"{name} must be [B, G] = {(b, g)} or [B], got {tuple(t.shape)}")
    return t


def bucket_metrics(
    accuracy: torch.Tensor | Sequence,
    response_length: torch.Tensor | Sequence,
    is_hard: torch.Tensor | Sequence[bool],
    kl_coef: torch.Tensor | Sequence | None = None,
    thinking_reward: torch.Tensor | Sequence | None = None,
    difficulty: torch.Tensor | Sequence | None = None,
    reward: torch.Tensor | Sequence | None = None,
    format_reward: torch.Tensor | Sequence | None = None,
    threshold: float | None = None,
) -> dict[str, float]:
    """Flat dict[str, float] of step metrics for the buckets `all`, `easy`, `hard`.

    Why: FAST's claim is "short on easy, long on hard"; logging each quantity
    per bucket is how a run shows it. Keys look like `easy/accuracy`,
    `hard/response_length`, `all/kl_coef`, `easy/thinking_reward`,
    plus `<bucket>/num_groups` always and
    `difficulty/threshold`, `difficulty/hard_fraction`. Per-sample inputs are
    [B, G]; per-group inputs (kl_coef, difficulty) may be [B]. A bucket with
    no groups reports only num_groups = 0 (no NaN values are emitted).
    """
    acc = as_float_tensor(accuracy, torch.float64)
    check_group_shape("accuracy", acc)
    b, g = acc.shape
    lengths = _per_group(response_length, b, g, "response_length")
    hard = as_bool_tensor(is_hard).reshape(-1)
    if hard.numel() != b:
        raise ValueError(f"is_hard must have {b} entries, got {hard.numel()}")
    per_sample = {
        "accuracy": acc,
        "response_length": lengths,
        "kl_coef": _per_group(kl_coef, b, g, "kl_coef"),
        "thinking_reward": _per_group(thinking_reward, b, g, "thinking_reward"),
        "difficulty": _per_group(difficulty, b, g, "difficulty"),
        "reward": _per_group(reward, b, g, "reward"),
        "format": _per_group(format_reward, b, g, "format_reward"),
    }

    out: dict[str, float] = {}
    for bucket, sel in (("all", torch.ones(b, dtype=torch.bool)), ("easy", ~hard), ("hard", hard)):
        n = int(sel.sum())
        out[f"{bucket}/num_groups"] = float(n)
        if n == 0:
            continue
        for name, t in per_sample.items():
            if t is None:
                continue
            v = float(t[sel].mean())
            if math.isfinite(v):
                out[f"{bucket}/{name}"] = v
        if lengths is not None:
            out[f"{bucket}/response_length_max"] = float(lengths[sel].max())
    out["difficulty/hard_fraction"] = float(hard.double().mean()) if b else 0.0
    if threshold is not None and math.isfinite(threshold):
        out["difficulty/threshold"] = float(threshold)
    return out


def filtered_fraction(is_hard: torch.Tensor | Sequence[bool], kept: torch.Tensor | Sequence[bool]) -> dict[str, float]:
    """`easy/filtered_fraction`, `hard/filtered_fraction`: the share of each bucket's candidate groups
    that the online filter dropped (an empty bucket: no key).

    Why per bucket: Slow2Fast's stages drop unsolved or solved groups on purpose; this shows which
    difficulty the filter takes away. Both inputs are over every candidate group, [C].
    """
    hard = as_bool_tensor(is_hard).reshape(-1)
    keep = as_bool_tensor(kept).reshape(-1)
    if keep.numel() != hard.numel():
        raise ValueError(f"kept must have {hard.numel()} entries, got {keep.numel()}")
    out: dict[str, float] = {}
    for bucket, sel in (("easy", ~hard), ("hard", hard)):
        if int(sel.sum()):
            out[f"{bucket}/filtered_fraction"] = 1.0 - float(keep[sel].float().mean())
    return out
