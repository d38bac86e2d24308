"""KL estimators and the per-group KL coefficient, hand-computed."""

import math

import pytest
import torch

from fastgrpo.algo.kl import group_kl_coef, kl_penalty

LOGP = torch.tensor([[-1.0, -2.0, -0.5]])
REF = torch.tensor([[-2.0, -1.0, -0.5]])


def test_k1_abs_mse():
    assert torch.allclose(kl_penalty(LOGP, REF, "k1"), torch.tensor([[1.0, -1.0, 0.0]]))
    assert torch.allclose(kl_penalty(LOGP, REF, "kl"), torch.tensor([[1.0, -1.0, 0.0]]))
    assert torch.allclose(kl_penalty(LOGP, REF, "abs"), torch.tensor([[1.0, 1.0, 0.0]]))
    assert torch.allclose(kl_penalty(LOGP, REF, "mse"), torch.tensor([[0.5, 0.5, 0.0]]))
    assert torch.allclose(kl_penalty(LOGP, REF, "k2"), torch.tensor([[0.5, 0.5, 0.0]]))


def test_low_var_kl_hand_values():
    # x = ref - logp: [-1, 1, 0]; k3 = exp(x) - x - 1
    expected = torch.tensor([[math.exp(-1) + 1 - 1, math.exp(1) - 1 - 1, 0.0]])
    assert torch.allclose(kl_penalty(LOGP, REF, "low_var_kl"), expected)
    assert torch.allclose(kl_penalty(LOGP, REF, "k3"), expected)


def test_low_var_kl_clamped():
    out = kl_penalty(torch.tensor([-100.0, 0.0]), torch.tensor([0.0, -100.0]), "low_var_kl")
    # x = 100 -> clamped to 20 -> e^20 - 21 -> 10 ; x = -100 -> -20 -> e^-20 + 19 -> 10
    assert out.tolist() == [10.0, 10.0]
    tiny = kl_penalty(torch.tensor([1e-8]), torch.tensor([0.0]), "low_var_kl")
    assert float(tiny) >= 0.0  # rounding can never make k3 negative


def test_unknown_kl_penalty():
    with pytest.raises(ValueError):
        kl_penalty(LOGP, REF, "full")


def test_group_kl_coef_accuracy_based_hand_values():
    acc = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    coef = group_kl_coef(acc, "group_accuracy_based", kl_min_coef=0.001, kl_max_coef=0.01)
    expected_g = torch.tensor([0.01, 0.001, 0.0055])
    assert coef.shape == (3, 4)
    assert torch.allclose(coef, expected_g[:, None].expand(3, 4))


def test_group_kl_coef_inverse_direction():
    coef = group_kl_coef([[1.0, 0.0, 0.0, 0.0]], kl_min_coef=0.0, kl_max_coef=1.0, direction="inverse")
    assert torch.allclose(coef, torch.full((1, 4), 0.75))


def test_group_kl_coef_fixed():
    coef = group_kl_coef([[1.0, 0.0], [0.0, 0.0]], "fixed", kl_coef=0.02)
    assert torch.allclose(coef, torch.full((2, 2), 0.02))


def test_group_kl_coef_errors():
    with pytest.raises(ValueError):
        group_kl_coef([[1.0]], "adaptive")
    with pytest.raises(ValueError):
        group_kl_coef([[1.0]], direction="up")
