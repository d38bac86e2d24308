"""Slow2Fast online filtering (SPEC section 1, step 6).

1. `resolve_filter_bounds`: the (filter_low, filter_high) in force at this
   training progress, from `dynamic_filter_schedule`.
2. `filter_groups`: keep a group iff filter_low <= mean(filter_key) <= filter_high.
3. `BatchFiller`: accumulate passing groups from successive generation rounds
   until the batch holds `target_groups`, at most `max_try_make_batch` rounds.
4. `round_prompts`: how many prompts the next round draws (`max_prompts_per_round`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fastgrpo.algo._utils import as_bool_tensor, as_float_tensor, check_group_shape

__all__ = [
    "BatchFiller",
    "FillResult",
    "filter_groups",
    "group_filter_values",
    "resolve_filter_bounds",
    "round_prompts",
    "training_progress",
]


def _get(entry: Any, key: str) -> Any:
    if isinstance(entry, Mapping):
        return entry[key]
    return getattr(entry, key)


def training_progress(step: int, total_steps: int) -> float:
    """progress = step / total_steps, clamped to [0, 1] (0 when total is unknown)."""
    if total_steps <= 0:
        return 0.0
    return min(1.0, max(0.0, step / total_steps))


def resolve_filter_bounds(
    dynamic_filter_schedule: Iterable[Any] | None,
    progress: float,
    filter_low: float = 0.01,
    filter_high: float = 0.99,
) -> tuple[float, float]:
    """(low, high) for this progress: first entry with progress <= epoch_ratio.

    Why: Slow2Fast changes which groups train as training goes on. The seed
    prose says medium-hard first, then easy; the default numbers on accuracy
    ([0.3, 0.99] then [0.01, 0.7]) do the opposite (docs/algorithm.md section 7).
    This function only applies the bounds it is given. Entries may be dicts or objects
    with `epoch_ratio`, `filter_low`, `filter_high` (the config's FilterStage).
    No schedule -> the static `filter_low`/`filter_high`. Progress past every
    entry (e.g. a resumed run trained longer) -> the last entry.
    """
    entries = list(dynamic_filter_schedule or [])
    if not entries:
        return float(filter_low), float(filter_high)
    for e in entries:
        if progress <= float(_get(e, "epoch_ratio")):
            return float(_get(e, "filter_low")), float(_get(e, "filter_high"))
    last = entries[-1]
    return float(_get(last, "filter_low")), float(_get(last, "filter_high"))


def group_filter_values(values: torch.Tensor | Sequence, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of the per-sample metric per group, [B, G] -> [B], in float64.

    Why float64: a group mean such as 7/10 must compare equal to the bound 0.7
    written in the config; float32 rounding could flip the decision.
    """
    v = as_float_tensor(values, torch.float64)
    check_group_shape("values", v)
    valid = torch.ones_like(v, dtype=torch.bool) if mask is None else as_bool_tensor(mask)
    n = valid.sum(dim=1).to(v.dtype)
    s = torch.where(valid, v, torch.zeros_like(v)).sum(dim=1)
    return torch.where(n > 0, s / n.clamp_min(1.0), torch.full_like(s, float("nan")))


def filter_groups(
    values: torch.Tensor | Sequence,
    filter_low: float,
    filter_high: float,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """keep[B] = filter_low <= mean_g(values) <= filter_high (inclusive both ends).

    Why: groups the model always or never solves have zero GRPO advantage and
    only dilute the batch; the bounds also steer the easy/hard mix. A group
    with no valid samples (or a NaN metric) is never kept.
    """
    means = group_filter_values(values, mask)
    keep = (means >= float(filter_low)) & (means <= float(filter_high))
    return keep & ~torch.isnan(means)


@dataclass
class FillResult:
    """What a `BatchFiller` collected.

    `items` are the kept group payloads in arrival order (at most
    target_groups); `full` is False when the tries ran out first, and then
    `warning` says so in words the caller should log.
    """

    items: list[Any]
    full: bool
    tries: int
    groups_seen: int
    groups_passed: int
    target_groups: int
    warning: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)


class BatchFiller:
    """Refill-until-full helper for online filtering (pure, no I/O).

    Usage::

        filler = BatchFiller(target_groups=B, filter_low=lo, filter_high=hi, max_try_make_batch=5)
        while not filler.done:
            groups = generate_and_score(next_prompts)          # caller's work
            filler.add(per_sample_metric_[B', G], payloads)   # one payload per group
        result = filler.result()
        if not result.full: log.warning(result.warning)

    Why: DAPO-style dynamic sampling keeps drawing prompts until enough groups
    pass the filter, but must never loop forever when the data is too easy or
    too hard; `max_try_make_batch` (<= 0: unlimited) bounds the rounds.
    Passing groups beyond the target are dropped (counted in metrics).
    With `online_filtering=False` every group passes.
    """

    def __init__(
        self,
        target_groups: int,
        filter_low: float = 0.01,
        filter_high: float = 0.99,
        max_try_make_batch: int = 5,
        online_filtering: bool = True,
    ) -> None:
        if target_groups <= 0:
            raise ValueError("target_groups must be positive")
        self.target_groups = int(target_groups)
        self.filter_low = float(filter_low)
        self.filter_high = float(filter_high)
        self.max_try_make_batch = int(max_try_make_batch)
        self.online_filtering = bool(online_filtering)
        self._items: list[Any] = []
        self.tries = 0
        self.groups_seen = 0
        self.groups_passed = 0
        self.groups_overflow = 0

    @property
    def full(self) -> bool:
        return len(self._items) >= self.target_groups

    @property
    def exhausted(self) -> bool:
        return self.max_try_make_batch > 0 and self.tries >= self.max_try_make_batch

    @property
    def done(self) -> bool:
        """True when the batch is full or no more tries are allowed."""
        return self.full or self.exhausted

    @property
    def needed(self) -> int:
        """Groups still missing (the caller may size the next generation round by it)."""
        return max(0, self.target_groups - len(self._items))

    def add(
        self,
        values: torch.Tensor | Sequence,
        items: Sequence[Any] | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Offer one round of candidate groups; returns the keep mask [B'].

        `values` is the per-sample `filter_key` metric [B', G]; `items` one
        opaque payload per group (default: the group's index in this round).
        Raises if called after `done` - a caller bug that would waste rollouts.
        """
        if self.done:
            raise RuntimeError("BatchFiller.add called after the batch was done (full or out of tries)")
        v = as_float_tensor(values, torch.float64)
        check_group_shape("values", v)
        payloads = list(range(v.shape[0])) if items is None else list(items)
        if len(payloads) != v.shape[0]:
            raise ValueError(f"got {len(payloads)} payloads for {v.shape[0]} groups")
        self.tries += 1
        if self.online_filtering:
            keep = filter_groups(v, self.filter_low, self.filter_high, mask)
        else:
            keep = torch.ones(v.shape[0], dtype=torch.bool)
        self.groups_seen += v.shape[0]
        self.groups_passed += int(keep.sum())
        for ok, p in zip(keep.tolist(), payloads, strict=True):
            if not ok:
                continue
            if self.full:
                self.groups_overflow += 1
            else:
                self._items.append(p)
        return keep

    def result(self) -> FillResult:
        """The kept payloads plus the bookkeeping the caller logs."""
        full = self.full
        warning = None
        if not full:
            warning = (
                f"online filtering filled only {len(self._items)}/{self.target_groups} groups after "
                f"{self.tries} generation round(s) (max_try_make_batch={self.max_try_make_batch}, "
                f"filter bounds [{self.filter_low}, {self.filter_high}]); training on a smaller batch. "
                "Widen the filter bounds or raise max_try_make_batch if this repeats."
            )
        seen = self.groups_seen
        metrics = {
            "filter/tries": float(self.tries),
            "filter/groups_seen": float(seen),
            "filter/groups_passed": float(self.groups_passed),
            "filter/groups_kept": float(len(self._items)),
            "filter/filtered_fraction": (1.0 - self.groups_passed / seen) if seen else 0.0,
            "filter/batch_full": 1.0 if full else 0.0,
            "filter/low": self.filter_low,
            "filter/high": self.filter_high,
        }
        return FillResult(
            items=list(self._items),
            full=full,
            tries=self.tries,
            groups_seen=seen,
            groups_passed=self.groups_passed,
            target_groups=self.target_groups,
            warning=warning,
            metrics={k: (v if math.isfinite(v) else 0.0) for k, v in metrics.items()},
        )


def round_prompts(needed: int, base: int, cap: int, pass_rate: float) -> int:
    """Prompts the next generation round draws: enough to fill `needed` groups at `pass_rate`, in [base, cap].

    Why: when a Slow2Fast stage filters most groups, refilling `base` prompts at a time costs many
    small generation rounds, and one large round takes far less than several small ones (decoding pays
    a per-token cost that a larger batch shares: the demo model draws 64 prompts x 8 in 1.5 s, 16 x 8 in
    0.7 s). `pass_rate` is the fraction of groups the last round kept; at 0 the round draws `cap`.
    With cap == base this is always `base` (one round = one batch).
    """
    if base < 1 or cap < base:
        raise ValueError(f"need 1 <= base <= cap, got base={base}, cap={cap}")
    if needed <= 0:
        return base
    want = cap if pass_rate <= 0 else math.ceil(needed / min(1.0, pass_rate) - 1e-9)
    return max(base, min(cap, want))
