"""Advantages: GRPO and Dr.GRPO on hand-computed groups; degenerate groups give zeros."""

import math

import pytest
import torch

from fastgrpo.algo.advantages import broadcast_to_tokens, compute_advantages


def test_grpo_hand_values():
    # group [1, 0, 0, 1]: mean 0.5, unbiased std sqrt(1/3)
    adv = compute_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]), "grpo", eps=0.0)
    s = math.sqrt(1 / 3)
    assert torch.allclose(adv, torch.tensor([[0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s]]))


def test_grpo_biased_std_and_eps():
    adv = compute_advantages([[2.0, 0.0]], "grpo", eps=1.0, unbiased_std=False)
    # mean 1, biased std 1 -> (r - 1) / (1 + 1)
    assert torch.allclose(adv, torch.tensor([[0.5, -0.5]]))


def test_drgrpo_no_std_division():
    adv = compute_advantages([[1.0, 0.0, 0.0, 1.0], [0.5, 0.0, 0.0, 0.0]], "drgrpo")
    assert torch.allclose(adv, torch.tensor([[0.5, -0.5, -0.5, 0.5], [0.375, -0.125, -0.125, -0.125]]))


@pytest.mark.parametrize("est", ["grpo", "drgrpo"])
def test_degenerate_groups_are_zero(est):
    adv = compute_advantages([[0.1, 0.1, 0.1], [7.0, 7.0, 7.0]], est)
    assert torch.equal(adv, torch.zeros(2, 3))
    single = compute_advantages([[3.0], [0.0]], est)
    assert torch.equal(single, torch.zeros(2, 1))


def test_mask_variable_group_size():
    rewards = torch.tensor([[1.0, 0.0, 123.0], [1.0, 5.0, 5.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    adv = compute_advantages(rewards, "drgrpo", mask=mask)
    assert torch.allclose(adv, torch.tensor([[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]]))


def test_dtype_preserved_and_unknown_estimator():
    adv = compute_advantages(torch.tensor([[1.0, 0.0]], dtype=torch.float64), "grpo")
    assert adv.dtype == torch.float64
    with pytest.raises(ValueError):
        compute_advantages([[1.0, 0.0]], "ppo")


def test_broadcast_to_tokens():
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    out = broadcast_to_tokens(torch.tensor([2.0, -1.0]), mask)
    assert torch.equal(out, torch.tensor([[2.0, 2.0, 0.0], [-1.0, 0.0, 0.0]]))
