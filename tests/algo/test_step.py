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
