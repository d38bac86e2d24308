"""The demo's targets: one run's verdict, the multi-seed mean and t-interval (fastgrpo/demo/verdict.py)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pytest

from fastgrpo.demo.verdict import (
    T975,
    TARGETS,
    run_verdict,
    seeds_verdict,
    t_interval,
    t_quantile_975,
    verdict_markdown,
)


@dataclass
class Row:
    accuracy: float
    mean_tokens: float


def _results(tokens_fast: dict[int, float], acc_diff: dict[int, float] | None = None) -> dict[str, dict[int, Row]]:
    """GRPO at 20 tokens and 0.90 accuracy on k=2..6; FAST at the given tokens and 0.90 + diff."""
    acc_diff = acc_diff or {}
    return {
        "grpo": {k: Row(0.90, 20.0) for k in range(2, 7)},
        "fast": {k: Row(0.90 + acc_diff.get(k, 0.0) / 100, tokens_fast.get(k, 20.0)) for k in range(2, 7)},
    }


def _verdicts(checks) -> dict[tuple[str, int], bool]:
    return {(c.target.metric + (":low" if c.target.high is None else ""), c.k): c.met for c in checks}


def test_every_target_met() -> None:
    checks = run_verdict(_results({2: 14.0, 3: 10.0, 4: 8.0, 5: 19.0, 6: 21.0}, {4: -1.0, 6: +3.0}))
    assert len(checks) == 2 + 2 + 5
    assert all(c.met for c in checks), [(c.target.describe(), c.k, c.value) for c in checks if not c.met]
    by_k = {(c.target.metric, c.k): c.value for c in checks}
    assert by_k[("token_ratio", 2)] == pytest.approx(0.7)  # the bound itself counts as met
    assert by_k[("accuracy_diff", 4)] == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("tokens", "diff", "missed"),
    [
        ({2: 14.8}, {}, ("token_ratio", 2)),  # 0.74x: not fast enough on an easy k
        ({3: 16.0}, {}, ("token_ratio", 3)),
        ({5: 17.0}, {}, ("token_ratio", 5)),  # 0.85x: stopped thinking on a hard k
        ({6: 23.0}, {}, ("token_ratio", 6)),  # 1.15x
        ({}, {5: -1.2}, ("accuracy_diff", 5)),
        ({}, {2: -3.2}, ("accuracy_diff", 2)),
    ],
)
def test_one_miss_is_reported_where_it_is(tokens: dict, diff: dict, missed: tuple[str, int]) -> None:
    base = {2: 10.0, 3: 10.0}
    checks = run_verdict(_results({**base, **tokens}, diff))
    failed = [(c.target.metric, c.k) for c in checks if not c.met]
    assert failed == [missed]
    assert "MISSED" in verdict_markdown(checks) and f"{len(checks) - 1} of {len(checks)} checks met" in verdict_markdown(
        checks
    )


def test_k_not_evaluated_is_not_measured_and_not_met() -> None:
    results = _results({2: 10.0, 3: 10.0})
    del results["fast"][5]
    checks = run_verdict(results)
    missing = [c for c in checks if c.k == 5]
    assert missing and all(c.value is None and not c.met for c in missing)
    assert "not measured" in verdict_markdown(checks)


def test_seeds_verdict_is_the_mean_of_per_seed_values_with_a_t_interval() -> None:
    fast_k2 = [12.0, 14.0, 16.0]  # ratios 0.6, 0.7, 0.8 against GRPO's 20
    runs = [_results({2: t, 3: 10.0}, {6: d}) for t, d in zip(fast_k2, [-2.0, 0.0, +0.5], strict=True)]
    checks = {(c.target.metric, c.k): c for c in seeds_verdict(runs)}
    k2 = checks[("token_ratio", 2)]
    assert k2.n == 3 and k2.value == pytest.approx(0.7) and k2.met
    half = 4.303 * 0.1 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert k2.interval == pytest.approx((0.7 - half, 0.7 + half))
    assert k2.interval_clear is False  # the mean meets 0.7, the interval does not
    k6 = checks[("accuracy_diff", 6)]
    assert k6.value == pytest.approx(-0.5) and k6.met
    text = verdict_markdown(list(checks.values()))
    assert "95% interval" in text and "interval crosses the bound" in text
    k3 = checks[("token_ratio", 3)]
    assert k3.interval == pytest.approx((0.5, 0.5)) and k3.interval_clear is True  # no spread


def test_t_interval_edge_cases() -> None:
    mean, lo, hi = t_interval([3.0])
    assert mean == 3.0 and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError):
        t_interval([])
    values = [1.0, 2.0, 4.0, 7.0, 11.0]
    mean, lo, hi = t_interval(values)
    assert mean == pytest.approx(5.0)
    assert hi - mean == pytest.approx(2.776 * statistics.stdev(values) / math.sqrt(5))


def _t_cdf_mass(q: float, df: int, steps: int = 20000) -> float:
    """P(|T| <= q) for Student's t by Simpson's rule on its density (independent of the table)."""
    c = math.gamma((df + 1) / 2) / (math.sqrt(df * math.pi) * math.gamma(df / 2))

    def pdf(x: float) -> float:
        return c * (1 + x * x / df) ** (-(df + 1) / 2)

    h = q / steps
    total = pdf(0.0) + pdf(q) + sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, steps))
    return 2 * total * h / 3


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 19, 30, 45, 200])
def test_t_quantiles_hold_95_percent(df: int) -> None:
    assert _t_cdf_mass(t_quantile_975(df), df) == pytest.approx(0.95, abs=5e-4)


def test_targets_are_the_issue_19_margins() -> None:
    described = [(t.describe(), t.ks) for t in TARGETS]
    assert described == [
        ("FAST/GRPO tokens <= 0.7x", (2, 3)),
        ("FAST/GRPO tokens in [0.9x, 1.1x]", (5, 6)),
        ("FAST-GRPO accuracy (points) >= -1", (2, 3, 4, 5, 6)),
    ]
    assert len(T975) == 30
