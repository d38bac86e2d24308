"""Slow2Fast schedule resolution, group filtering and the BatchFiller."""

from dataclasses import dataclass

import pytest
import torch

from fastgrpo.algo.filtering import (
    BatchFiller,
    filter_groups,
    group_filter_values,
    resolve_filter_bounds,
    round_prompts,
    training_progress,
)

SCHEDULE = [
    {"epoch_ratio": 0.5, "filter_low": 0.3, "filter_high": 0.99},
    {"epoch_ratio": 1.0, "filter_low": 0.01, "filter_high": 0.7},
]


@dataclass
class Stage:
    epoch_ratio: float
    filter_low: float
    filter_high: float


@pytest.mark.parametrize(
    ("progress", "bounds"),
    [(0.0, (0.3, 0.99)), (0.5, (0.3, 0.99)), (0.5001, (0.01, 0.7)), (1.0, (0.01, 0.7)), (1.2, (0.01, 0.7))],
)
def test_resolve_filter_bounds(progress, bounds):
    assert resolve_filter_bounds(SCHEDULE, progress) == bounds
    stages = [Stage(**e) for e in SCHEDULE]
    assert resolve_filter_bounds(stages, progress) == bounds


def test_resolve_without_schedule_uses_static_bounds():
    assert resolve_filter_bounds(None, 0.3, 0.05, 0.95) == (0.05, 0.95)
    assert resolve_filter_bounds([], 0.3) == (0.01, 0.99)


def test_first_matching_entry_wins():
    sched = [
        {"epoch_ratio": 0.8, "filter_low": 0.1, "filter_high": 0.2},
        {"epoch_ratio": 0.5, "filter_low": 0.5, "filter_high": 0.6},
    ]
    assert resolve_filter_bounds(sched, 0.4) == (0.1, 0.2)


def test_training_progress():
    assert training_progress(5, 10) == 0.5
    assert training_progress(15, 10) == 1.0
    assert training_progress(3, 0) == 0.0


def test_filter_groups_inclusive_bounds_exact_decimals():
    acc = torch.tensor(
        [[1.0] * 7 + [0.0] * 3, [1.0] * 3 + [0.0] * 7, [1.0] * 10, [0.0] * 10, [1.0] * 2 + [0.0] * 8]
    )
    # means 0.7, 0.3, 1.0, 0.0, 0.2 ; bounds [0.3, 0.7] inclusive
    keep = filter_groups(acc, 0.3, 0.7)
    assert keep.tolist() == [True, True, False, False, False]
    assert group_filter_values(acc).tolist() == pytest.approx([0.7, 0.3, 1.0, 0.0, 0.2])


def test_filter_groups_empty_group_never_kept():
    keep = filter_groups(torch.tensor([[0.5, 0.5]]), 0.0, 1.0, mask=torch.tensor([[0, 0]]))
    assert keep.tolist() == [False]


def test_batch_filler_fills_across_rounds_and_truncates():
    f = BatchFiller(target_groups=3, filter_low=0.3, filter_high=0.7, max_try_make_batch=5)
    k1 = f.add(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]), items=["a", "b", "c"])
    assert k1.tolist() == [True, False, False]
    assert not f.done and f.needed == 2
    f.add(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), items=["d", "e", "f"])
    assert f.done and f.full
    r = f.result()
    assert r.items == ["a", "d", "e"]
    assert r.full and r.warning is None and r.tries == 2
    assert r.groups_seen == 6 and r.groups_passed == 4
    assert r.metrics["filter/filtered_fraction"] == pytest.approx(2 / 6)
    with pytest.raises(RuntimeError):
        f.add(torch.tensor([[1.0, 0.0]]))


def test_batch_filler_gives_up_with_warning():
    f = BatchFiller(target_groups=4, filter_low=0.3, filter_high=0.7, max_try_make_batch=2)
    f.add(torch.tensor([[1.0, 1.0], [1.0, 0.0]]))
    f.add(torch.tensor([[0.0, 0.0]]))
    assert f.done and not f.full
    r = f.result()
    assert r.items == [1] and not r.full
    assert r.warning is not None and "1/4" in r.warning and "max_try_make_batch=2" in r.warning
    assert r.metrics["filter/batch_full"] == 0.0


def test_batch_filler_without_online_filtering_keeps_everything():
    f = BatchFiller(target_groups=2, online_filtering=False)
    f.add(torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.5, 0.5]]), items=["x", "y", "z"])
    r = f.result()
    assert r.items == ["x", "y"] and r.full


def test_batch_filler_unlimited_tries_and_validation():
    f = BatchFiller(target_groups=1, max_try_make_batch=0, filter_low=0.4, filter_high=0.6)
    for _ in range(50):
        f.add(torch.tensor([[1.0, 1.0]]))
    assert not f.done
    with pytest.raises(ValueError):
        f.add(torch.tensor([[1.0, 0.0]]), items=["a", "b"])
    with pytest.raises(ValueError):
        BatchFiller(target_groups=0)


def test_default_schedule_keeps_what_the_docs_say():
    # docs/algorithm.md section 7: on accuracy, with 8 samples per group, the first half keeps 3-7 correct
    # (medium and easy; not the hardest, not the all-correct), the second half 1-5 (hard and medium).
    from fastgrpo.config import AlgorithmConfig

    schedule = AlgorithmConfig().dynamic_filter_schedule
    acc = torch.tensor([[1.0] * c + [0.0] * (8 - c) for c in range(9)])
    for progress, kept in ((0.25, [3, 4, 5, 6, 7]), (0.75, [1, 2, 3, 4, 5])):
        low, high = resolve_filter_bounds(schedule, progress)
        keep = filter_groups(acc, low, high)
        assert [c for c in range(9) if keep[c]] == kept


def test_round_prompts_fills_the_gap_at_the_last_pass_rate_within_bounds():
    assert round_prompts(needed=16, base=16, cap=64, pass_rate=1.0) == 16  # nothing filtered: one batch
    assert round_prompts(needed=16, base=16, cap=64, pass_rate=0.4) == 40  # 40 x 0.4 = 16 expected to pass
    assert round_prompts(needed=16, base=16, cap=64, pass_rate=0.2) == 64  # 80 wanted, capped
    assert round_prompts(needed=16, base=16, cap=64, pass_rate=0.0) == 64  # nothing passed: the largest round
    assert round_prompts(needed=3, base=16, cap=64, pass_rate=0.5) == 16  # never below one batch
    assert round_prompts(needed=3, base=4, cap=12, pass_rate=0.25) == 12
    assert round_prompts(needed=3, base=4, cap=12, pass_rate=0.3) == 10  # ceil(3 / 0.3), not 11 from float error
    # cap == base: every round draws one batch whatever the pass rate (the default, as before the option).
    assert {round_prompts(n, 8, 8, p) for n in (1, 8) for p in (0.0, 0.1, 1.0)} == {8}
    with pytest.raises(ValueError, match="base <= cap"):
        round_prompts(needed=4, base=8, cap=4, pass_rate=0.5)
