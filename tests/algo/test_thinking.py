"""Thinking reward: hand-computed values for each case of the rule."""

import pytest
import torch

from fastgrpo.algo.thinking import thinking_reward


def test_thinking_reward_hand_values():
    lengths = torch.tensor([[10.0, 20.0, 40.0], [10.0, 20.0, 40.0]])
    acc = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    hard = torch.tensor([False, True])
    r = thinking_reward(lengths, acc, hard, thinking_reward_weight=0.5)
    # easy group: correct -> 0.5 * (1 - L/40); incorrect -> 0
    # hard group: incorrect -> 0.5 * L/40; correct -> 0
    expected = torch.tensor([[0.375, 0.25, 0.0], [0.0, 0.25, 0.5]])
    assert torch.allclose(r, expected)


def test_thinking_reward_weight_scales_linearly():
    lengths = [[5.0, 10.0]]
    r1 = thinking_reward(lengths, [[1.0, 1.0]], [False], thinking_reward_weight=1.0)
    assert torch.allclose(r1, torch.tensor([[0.5, 0.0]]))
    r0 = thinking_reward(lengths, [[1.0, 1.0]], [False], thinking_reward_weight=0.0)
    assert torch.equal(r0, torch.zeros(1, 2))


def test_thinking_reward_zero_lengths_and_mask():
    r = thinking_reward([[0.0, 0.0]], [[0.0, 0.0]], [True])
    assert torch.equal(r, torch.zeros(1, 2))
    # masked sample is ignored for L_max and gets 0
    r = thinking_reward([[10.0, 20.0, 1000.0]], [[0.0, 0.0, 0.0]], [True], mask=torch.tensor([[1, 1, 0]]))
    assert torch.allclose(r, torch.tensor([[0.25, 0.5, 0.0]]))


def test_thinking_reward_shape_checks():
    with pytest.raises(ValueError):
        thinking_reward([[1.0, 2.0]], [[1.0]], [True])
    with pytest.raises(ValueError):
        thinking_reward([[1.0, 2.0]], [[1.0, 0.0]], [True, False])
