"""The demo's targets (issue #19), checked on one run or on the mean over seeds.

Why a module of its own: `make demo` prints a verdict for its own single run and
`benchmarks/demo_seeds.py` the verdict on the mean of N seeds with a 95% interval;
both must judge by the same targets and the same arithmetic. Pure functions, no I/O.

Targets, FAST-GRPO against plain GRPO on the held-out split:
  * tokens: FAST / GRPO mean generated tokens <= 0.7 on k = 2 and 3 (easy sums answered fast);
  * tokens: between 0.9 and 1.1 on k = 5 and 6 (hard sums still thought through);
  * accuracy: FAST - GRPO >= -1 point on every k.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

Metric = Literal["token_ratio", "accuracy_diff"]
EPS = 1e-9


class PerK(Protocol):
    """What a check reads from a model's per-k row (fastgrpo.demo.__main__.KRow)."""

    accuracy: float
    mean_tokens: float


Results = Mapping[str, Mapping[int, PerK]]
"""{"grpo": {k: row}, "fast": {k: row}} (other models are ignored)."""


@dataclass(frozen=True)
class Target:
    metric: Metric
    ks: tuple[int, ...]
    low: float | None = None
    high: float | None = None

    def describe(self) -> str:
        what = "FAST/GRPO tokens" if self.metric == "token_ratio" else "FAST-GRPO accuracy (points)"
        fmt = (lambda v: f"{v:g}x") if self.metric == "token_ratio" else (lambda v: f"{v:+g}")
        if self.low is not None and self.high is not None:
            return f"{what} in [{fmt(self.low)}, {fmt(self.high)}]"
        return f"{what} >= {fmt(self.low)}" if self.low is not None else f"{what} <= {fmt(self.high)}"

    def met(self, value: float | None) -> bool:
        if value is None or math.isnan(value):
            return False
        # EPS: a value at the bound is met even after float rounding (14 / 20 = 0.7000000000000001).
        return (self.low is None or value >= self.low - EPS) and (self.high is None or value <= self.high + EPS)


TARGETS: tuple[Target, ...] = (
    Target("token_ratio", (2, 3), high=0.7),
    Target("token_ratio", (5, 6), low=0.9, high=1.1),
    Target("accuracy_diff", (2, 3, 4, 5, 6), low=-1.0),
)

MULTI_SEED_POINTER = (
    "One run on one machine: the same seed samples differently on another CPU, and seeds differ by "
    "several points. Multi-seed means with 95% intervals: `python benchmarks/demo_seeds.py` "
    "(figures in benchmarks/RESULTS.md)."
)


def measure(metric: Metric, results: Results, k: int) -> float | None:
    """FAST / GRPO mean tokens, or FAST - GRPO accuracy in points, at k (None: k not evaluated)."""
    g, f = results.get("grpo", {}).get(k), results.get("fast", {}).get(k)
    if g is None or f is None:
        return None
    if metric == "token_ratio":
        return f.mean_tokens / g.mean_tokens if g.mean_tokens > 0 else float("nan")
    return 100.0 * (f.accuracy - g.accuracy)


T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
"""Student's t 0.975 quantile for 1..30 degrees of freedom (standard table values).
Why a table and not scipy: these 30 constants are all the demo needs, and scipy is no
dependency of fastgrpo; tests/demo/test_demo_verdict.py checks them by integrating the t density."""


def t_quantile_975(df: int) -> float:
    if df < 1:
        raise ValueError(f"a t interval needs at least 2 values (df >= 1), got df={df}")
    return T975[df - 1] if df <= len(T975) else 1.960 + 2.4 / df  # past 30: within 0.002 of the exact value


def t_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high): the 95% t-interval of the mean, mean +- t(0.975, n-1) * sd / sqrt(n).

    One value: the interval is unknown, (mean, nan, nan).
    """
    if not values:
        raise ValueError("no values")
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = t_quantile_975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class Check:
    target: Target
    k: int
    value: float | None
    """The measured value (one run), or the mean over seeds."""
    interval: tuple[float, float] | None = None
    """95% interval of the mean over seeds; None for one run."""
    n: int = 1

    @property
    def met(self) -> bool:
        return self.target.met(self.value)

    @property
    def interval_clear(self) -> bool | None:
        """Whether the whole interval meets the target (None: no interval)."""
        if self.interval is None or any(math.isnan(v) for v in self.interval):
            return None
        return self.target.met(self.interval[0]) and self.target.met(self.interval[1])


def run_verdict(results: Results, targets: Sequence[Target] = TARGETS) -> list[Check]:
    """Every target at every k for one run (a k that was not evaluated is a miss, value None)."""
    return [Check(t, k, measure(t.metric, results, k)) for t in targets for k in t.ks]


def seeds_verdict(runs: Sequence[Results], targets: Sequence[Target] = TARGETS) -> list[Check]:
    """Every target at every k on the mean over runs (seeds), with the 95% t-interval of that mean.

    A token ratio is taken per seed, then averaged (each seed is one paired comparison).
    """
    checks = []
    for t in targets:
        for k in t.ks:
            values = [v for r in runs if (v := measure(t.metric, r, k)) is not None and not math.isnan(v)]
            if not values:
                checks.append(Check(t, k, None, None, 0))
                continue
            mean, lo, hi = t_interval(values)
            checks.append(Check(t, k, mean, (lo, hi) if len(values) > 1 else None, len(values)))
    return checks


def _fmt(metric: Metric, v: float | None) -> str:
    if v is None or math.isnan(v):
        return "-"
    return f"{v:.2f}x" if metric == "token_ratio" else f"{v:+.1f}"


def verdict_rows(checks: Sequence[Check]) -> list[tuple[str, str, str, str, str]]:
    """(target, k, value, 95% interval, verdict) as text, for a markdown or rich table."""
    rows = []
    for c in checks:
        value = _fmt(c.target.metric, c.value)
        if c.interval is None:
            interval = "-"
        else:
            interval = f"[{_fmt(c.target.metric, c.interval[0])}, {_fmt(c.target.metric, c.interval[1])}]"
        verdict = "not measured" if c.value is None else ("met" if c.met else "MISSED")
        if c.interval_clear is not None and c.met:
            verdict += "" if c.interval_clear else " (interval crosses the bound)"
        rows.append((c.target.describe(), str(c.k), value, interval, verdict))
    return rows


def verdict_markdown(checks: Sequence[Check]) -> str:
    multi = any(c.interval is not None for c in checks)
    head = ["target", "k", "mean over seeds" if multi else "measured"] + (["95% interval"] if multi else [])
    lines = ["| " + " | ".join([*head, "verdict"]) + " |", "|" + "---|" * (len(head) + 1)]
    for target, k, value, interval, verdict in verdict_rows(checks):
        cells = [target, k, value] + ([interval] if multi else []) + [verdict]
        lines.append("| " + " | ".join(cells) + " |")
    met = sum(c.met for c in checks)
    lines += ["", f"{met} of {len(checks)} checks met."]
    return "\n".join(lines)
