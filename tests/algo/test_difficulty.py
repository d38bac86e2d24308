"""Difficulty: pass rate, complexity normalisation, easy/hard split (hand-computed values)."""

import pytest
import torch

from fastgrpo.algo.difficulty import (
    ComplexityStats,
    DifficultyWindow,
    combine_complexity,
    difficulty,
    difficulty_threshold,
    group_pass_rate,
    min_max_normalize,
    split_easy_hard,
    text_complexity,
)


def test_group_pass_rate_hand_values():
    acc = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert torch.allclose(group_pass_rate(acc), torch.tensor([0.75, 0.0, 1.0]))


def test_group_pass_rate_mask_and_empty_group():
    acc = torch.tensor([[1.0, 0.0, 9.0], [5.0, 5.0, 5.0]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    assert torch.allclose(group_pass_rate(acc, mask), torch.tensor([0.5, 0.0]))


def test_group_pass_rate_rejects_flat_input():
    with pytest.raises(ValueError):
        group_pass_rate(torch.ones(4))


def test_min_max_normalize_hand_values():
    assert torch.allclose(min_max_normalize([10, 20, 30]), torch.tensor([0.0, 0.5, 1.0]))
    # dataset-wide bounds; values outside are clipped
    assert torch.allclose(min_max_normalize([15, 5, 40], lo=10, hi=30), torch.tensor([0.25, 0.0, 1.0]))


def test_min_max_normalize_constant_gives_constant_value():
    assert torch.allclose(min_max_normalize([7, 7, 7]), torch.ones(3))
    assert torch.allclose(min_max_normalize([7, 7], constant_value=0.5), torch.full((2,), 0.5))


def test_text_complexity_is_token_count():
    assert torch.equal(text_complexity([3, 10]), torch.tensor([3.0, 10.0]))
    assert torch.equal(text_complexity(4), torch.tensor([4.0]))


def test_difficulty_formula():
    # (1 - p) * c
    d = difficulty([0.75, 0.0, 1.0, 0.5], [0.4, 1.0, 0.9, 0.0])
    assert torch.allclose(d, torch.tensor([0.1, 1.0, 0.0, 0.0]))


def test_split_easy_hard_batch_percentile():
    d = torch.tensor([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    hard, thr = split_easy_hard(d, 80)
    # linear-interpolated 80th percentile of 0..0.9 step 0.1 = 0.72
    assert thr == pytest.approx(0.72)
    assert hard.tolist() == [False] * 8 + [True, True]


def test_split_ties_are_easy():
    hard, thr = split_easy_hard([0.3, 0.3, 0.3, 0.3])
    assert thr == pytest.approx(0.3)
    assert not hard.any()


def test_split_with_population_window():
    hard, thr = split_easy_hard([0.5, 0.95], 50, population=[0.0, 1.0])
    assert thr == pytest.approx(0.5)
    assert hard.tolist() == [False, True]


def test_difficulty_threshold_validation():
    with pytest.raises(ValueError):
        difficulty_threshold([0.1, 0.2], 120)
    assert difficulty_threshold([], 80) == float("inf")


def test_difficulty_window_rolls_and_round_trips():
    w = DifficultyWindow(difficulty_window=4)
    w.push([0.1, 0.2, 0.3])
    hard, thr = w.split([0.9, 1.0], easy_percentile=50)
    assert len(w) == 4  # 0.1 dropped
    assert w.values().tolist() == pytest.approx([0.2, 0.3, 0.9, 1.0])
    assert thr == pytest.approx(0.6)
    assert hard.tolist() == [True, True]
    w2 = DifficultyWindow(2)
    w2.load_state_dict(w.state_dict())
    assert w2.values().tolist() == pytest.approx(w.values().tolist())


def test_combine_complexity_text_only_and_vision():
    assert torch.allclose(combine_complexity([0.2, 0.4]), torch.tensor([0.2, 0.4]))
    out = combine_complexity([0.2, 0.4], [1.0, 0.0], has_image=[True, False])
    assert torch.allclose(out, torch.tensor([0.6, 0.4]))


def test_complexity_stats_fit_normalize_and_dict():
    stats = ComplexityStats.fit([10, 30], entropy_raw=[0.0, 8.0], edge_raw=[0.0, 0.5])
    c = stats.normalize([20, 30], entropy_raw=[4.0, 8.0], edge_raw=[0.25, 0.5], has_image=[True, False])
    # q0: text 0.5, image mean(0.5, 0.5)=0.5 -> 0.5 ; q1: text only 1.0
    assert torch.allclose(c, torch.tensor([0.5, 1.0]))
    assert ComplexityStats.from_dict(stats.to_dict()) == stats
    assert torch.allclose(stats.normalize([10, 20]), torch.tensor([0.0, 0.5]))
