"""Policy loss, aggregation modes and the KL-weighted total loss, hand-computed."""

import math

import pytest
import torch

from fastgrpo.algo.loss import agg_loss, policy_loss, total_loss

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[1, 1, 1], [1, 0, 0]])


def test_agg_token_mean():
    assert agg_loss(LOSS, MASK, "token-mean").item() == pytest.approx(10 / 4)


def test_agg_seq_mean_token_sum():
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum").item() == pytest.approx((6 + 4) / 2)


def test_agg_seq_mean_token_mean():
    assert agg_loss(LOSS, MASK, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)


def test_agg_seq_mean_token_sum_norm():
    # sum 10 over N=2 rows, constant T=3 by default; or a given constant
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum-norm").item() == pytest.approx(10 / (2 * 3))
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum-norm", norm_constant=5).item() == pytest.approx(1.0)


def test_agg_ignores_nan_in_padding_and_empty_rows():
    loss = torch.tensor([[1.0, float("nan")], [float("inf"), 5.0]])
    mask = torch.tensor([[1, 0], [0, 0]])
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-mean"):
        assert agg_loss(loss, mask, mode).item() == pytest.approx(1.0)
    empty = agg_loss(loss, torch.zeros(2, 2), "token-mean")
    assert empty.item() == 0.0


def test_agg_errors():
    with pytest.raises(ValueError):
        agg_loss(LOSS, MASK, "sum")
    with pytest.raises(ValueError):
        agg_loss(LOSS, MASK[:, :2], "token-mean")


def test_policy_loss_hand_values_clip_and_dual_clip():
    # ratios: e^0=1, e^{ln 1.5}=1.5, e^{ln 0.5}=0.5, e^{ln 4}=4
    logp = torch.log(torch.tensor([[1.0, 1.5, 0.5, 4.0]]))
    old = torch.zeros(1, 4)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0]])
    mask = torch.ones(1, 4)
    loss, m = policy_loss(logp, old, adv, mask, clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_dual=3.0)
    # token 0: -1*1 = -1
    # token 1: A>0, ratio 1.5 clipped at 1.28 -> max(-1.5, -1.28) = -1.28 (clipped)
    # token 2: A<0, ratio 0.5 clipped to 0.8 -> max(0.5, 0.8) = 0.8 (clipped)
    # token 3: A<0, ratio 4: max(4, 1.28) = 4, dual clip min(4, 3) = 3
    expected = (-1.0 - 1.28 + 0.8 + 3.0) / 4
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert m["pg_clipfrac"] == pytest.approx(0.5)
    assert m["pg_clipfrac_lower"] == pytest.approx(0.25)
    assert m["ppo_kl"] == pytest.approx(-(0 + math.log(1.5) + math.log(0.5) + math.log(4)) / 4, rel=1e-5)
    assert m["ratio_max"] == pytest.approx(4.0, rel=1e-5)


def test_policy_loss_no_dual_clip_and_seq_advantages():
    logp = torch.log(torch.tensor([[4.0, 1.0]]))
    loss, m = policy_loss(
        logp, torch.zeros(1, 2), torch.tensor([-1.0]), torch.ones(1, 2), clip_ratio_dual=None
    )
    assert loss.item() == pytest.approx((4.0 + 1.0) / 2)
    assert m["pg_clipfrac_lower"] == 0.0


def test_policy_loss_gradient_matches_surrogate():
    logp = torch.zeros(1, 2, requires_grad=True)
    loss, _ = policy_loss(logp, torch.zeros(1, 2), torch.tensor([2.0]), torch.tensor([[1, 0]]))
    loss.backward()
    # d/dlogp of -A * exp(logp - old) at ratio 1, token-mean over 1 token -> -2 ; padding gets 0
    assert logp.grad.tolist() == [[-2.0, 0.0]]


def test_policy_loss_nan_in_padding_gives_finite_grad():
    logp = torch.tensor([[0.0, float("nan")]], requires_grad=True)
    loss, _ = policy_loss(logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.tensor([[1, 0]]))
    loss.backward()
    assert math.isfinite(loss.item()) and torch.isfinite(logp.grad).all()


def test_total_loss_per_sample_kl_coef_hand_values():
    logp = torch.tensor([[-1.0, -1.0], [-1.0, -1.0]])
    old = logp.clone()
    ref = torch.tensor([[-2.0, -1.0], [-1.0, -2.0]])
    adv = torch.tensor([0.0, 0.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    beta = torch.tensor([0.1, 1.0])
    loss, m = total_loss(logp, old, adv, mask, ref_log_prob=ref, kl_coef=beta, kl_penalty="k1")
    # k1 tokens: row0 [1, 0], row1 [0, (masked)]; weighted: row0 [0.1, 0], row1 [0]
    assert loss.item() == pytest.approx(0.1 / 3)
    assert m["kl_loss"] == pytest.approx(1 / 3)
    assert m["kl_coef_mean"] == pytest.approx(0.55)
    loss_f, _ = total_loss(logp, old, adv, mask, ref_log_prob=ref, kl_coef=0.5, kl_penalty="k1")
    assert loss_f.item() == pytest.approx(0.5 / 3)


def test_total_loss_without_kl_equals_policy_loss():
    logp = torch.randn(3, 4)
    old = logp + 0.1 * torch.randn(3, 4)
    adv = torch.randn(3)
    mask = torch.ones(3, 4)
    a, _ = total_loss(logp, old, adv, mask, use_kl_loss=False)
    b, _ = policy_loss(logp, old, adv, mask)
    assert a.item() == pytest.approx(b.item())
