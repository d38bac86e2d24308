"""The composed per-step reward shaping, hand-computed on a 3-group batch."""

import pytest
import torch

from fastgrpo.algo import DifficultyWindow, fast_grpo_step


def _batch():
    acc = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    overall = 0.9 * acc + 0.1  # all well formatted
    lengths = torch.tensor([[10.0, 20.0], [30.0, 60.0], [50.0, 100.0]])
    complexity = torch.tensor([0.5, 1.0, 1.0])
    return overall, acc, lengths, complexity


def test_fast_grpo_step_hand_values():
    overall, acc, lengths, complexity = _batch()
    out = fast_grpo_step(
        overall, acc, lengths, complexity, easy_percentile=50, kl_min_coef=0.0, kl_max_coef=1.0
    )
    # pass rates 1, .5, 0 ; difficulty (1-p)*c = 0, .5, 1 ; median .5 -> only group 2 hard
    assert out.pass_rate.tolist() == [1.0, 0.5, 0.0]
    assert out.difficulty.tolist() == [0.0, 0.5, 1.0]
    assert out.threshold == pytest.approx(0.5)
    assert out.is_hard.tolist() == [False, False, True]
    # easy+correct: .5*(1 - L/Lmax); hard+wrong: .5*L/Lmax
    expected_think = torch.tensor([[0.25, 0.0], [0.25, 0.0], [0.25, 0.5]])
    assert torch.allclose(out.thinking_reward, expected_think)
    assert torch.allclose(out.rewards, overall + expected_think)
    # group 0 rewards [1.25, 1.0] -> +-1/sqrt(2) after GRPO (unbiased std of two values = |a-b|/sqrt2)
    s = 2**-0.5
    assert torch.allclose(out.advantages[0], torch.tensor([s, -s]), atol=1e-4)
    assert (
        out.advantages[2].sum().abs() < 1e-6 and out.advantages[2, 1] > 0
    )  # longer failed attempt preferred
    assert torch.allclose(out.kl_coef[:, 0], torch.tensor([1.0, 0.5, 0.0]))
    assert out.metrics["hard/num_groups"] == 1.0 and out.metrics["easy/accuracy"] == pytest.approx(0.75)


def test_fast_grpo_step_without_thinking_reward_and_with_window():
    overall, acc, lengths, complexity = _batch()
    window = DifficultyWindow(10)
    window.push([2.0, 2.0, 2.0])  # a history of much harder questions: nothing here is hard
    out = fast_grpo_step(overall, acc, lengths, complexity, thinking_reward=False, difficulty_window=window)
    assert not out.is_hard.any()
    assert torch.equal(out.thinking_reward, torch.zeros(3, 2))
    assert torch.equal(out.rewards, overall)
    assert len(window) == 6


def test_fast_grpo_step_shape_check():
    with pytest.raises(ValueError):
        fast_grpo_step([[1.0, 0.0]], [[1.0]], [[1.0, 2.0]], [0.5])


def test_fast_grpo_step_kept_groups_split_against_every_candidate():
    """Filtered candidates set the percentile and the filtered fractions; outputs cover the kept groups."""
    overall, acc, lengths, complexity = _batch()
    kept = torch.tensor([False, True, True])  # group 0 (difficulty 0) was filtered out
    out = fast_grpo_step(overall, acc, lengths, complexity, kept=kept, easy_percentile=50, format_reward=acc)
    # Population = all three candidates (0, .5, 1): median .5, so of the kept groups only the last is hard.
    # Over the kept groups alone (.5, 1) the median would be .75 with the same split, so check the threshold.
    assert out.threshold == pytest.approx(0.5)
    assert out.difficulty.tolist() == [0.5, 1.0]
    assert out.is_hard.tolist() == [False, True]
    assert out.advantages.shape == (2, 2) and out.kl_coef.shape == (2, 2)
    alone = fast_grpo_step(overall[1:], acc[1:], lengths[1:], complexity[1:], easy_percentile=50)
    assert alone.threshold == pytest.approx(0.75)
    assert out.metrics["easy/filtered_fraction"] == pytest.approx(0.5)  # candidates 0 (dropped) and 1 (kept)
    assert out.metrics["hard/filtered_fraction"] == 0.0
    assert out.metrics["all/num_groups"] == 2.0 and out.metrics["easy/format"] == pytest.approx(0.5)
    assert out.metrics["all/advantage_abs"] == pytest.approx(float(out.advantages.abs().mean()))


def test_fast_grpo_step_pushes_every_candidate_onto_the_window():
    overall, acc, lengths, complexity = _batch()
    window = DifficultyWindow(10)
    fast_grpo_step(overall, acc, lengths, complexity, kept=[True, False, False], difficulty_window=window)
    assert window.values().tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="at least one kept group"):
        fast_grpo_step(overall, acc, lengths, complexity, kept=[False, False, False])
    with pytest.raises(ValueError, match="one entry per candidate"):
        fast_grpo_step(overall, acc, lengths, complexity, kept=[True])
