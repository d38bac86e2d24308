"""Truncated importance sampling weights and rollout mismatch statistics (pure tensor math)."""

from __future__ import annotations

import math

import pytest
import torch

from fastgrpo.algo.loss import total_loss
from fastgrpo.algo.rollout_is import rollout_mismatch, tis_weights


def test_tis_weight_is_the_truncated_ratio_and_zero_at_padding() -> None:
    old = torch.tensor([[-1.0, -2.0, -0.5], [-3.0, 0.0, 0.0]])
    rollout = torch.tensor([[-1.0, -1.0, -2.5], [-1.0, float("nan"), 7.0]])  # NaN/garbage at padding
    mask = torch.tensor([[True, True, True], [True, False, False]])
    w = tis_weights(old, rollout, mask, cap=2.0)
    expected = torch.tensor([[1.0, math.exp(-1.0), 2.0], [math.exp(-2.0), 0.0, 0.0]])  # e^2 > 2: capped
    torch.testing.assert_close(w, expected)
    assert not w.requires_grad
    with pytest.raises(ValueError, match="cap"):
        tis_weights(old, rollout, mask, cap=0.0)
    with pytest.raises(ValueError, match="shape"):
        tis_weights(old, rollout[:, :2], mask, cap=2.0)


def test_mismatch_sums_add_up_over_micro_batches() -> None:
    g = torch.Generator().manual_seed(0)
    old = -torch.rand(6, 5, generator=g) * 3
    rollout = old + torch.randn(6, 5, generator=g)
    mask = torch.rand(6, 5, generator=g) > 0.3
    whole = rollout_mismatch(old, rollout, mask, cap=2.0)
    parts = [rollout_mismatch(old[i : i + 2], rollout[i : i + 2], mask[i : i + 2], cap=2.0) for i in (0, 2, 4)]
    for k in range(3):
        torch.testing.assert_close(sum(p[k] for p in parts), whole[k])
    torch.testing.assert_close(max(p.max_abs_diff for p in parts), whole.max_abs_diff)
    torch.testing.assert_close(whole.max_abs_diff, (old - rollout).abs()[mask].max())
    assert float(whole.tokens) == float(mask.sum())
    torch.testing.assert_close(whole.abs_diff_sum, (old - rollout).abs()[mask].sum())
    assert float(whole.capped) == float(((old - rollout) > math.log(2.0))[mask].sum())
    # identical policies: no mismatch, nothing capped, weights exactly 1 on real tokens
    same = rollout_mismatch(old, old.clone(), mask)
    assert float(same.abs_diff_sum) == 0.0 and float(same.capped) == 0.0
    assert torch.equal(tis_weights(old, old.clone(), mask), mask.float())


def test_is_weights_scale_only_the_policy_gradient_term() -> None:
    g = torch.Generator().manual_seed(1)
    logp = (-torch.rand(3, 4, generator=g)).requires_grad_()
    old, ref = logp.detach() - 0.05, logp.detach() + 0.1
    adv = torch.tensor([1.0, -0.5, 2.0])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    kw = dict(ref_log_prob=ref, kl_coef=0.1, clip_ratio_dual=None)
    base, _ = total_loss(logp, old, adv, mask, **kw)
    ones, _ = total_loss(logp, old, adv, mask, is_weights=torch.ones(3, 4), **kw)
    torch.testing.assert_close(base, ones)
    w = torch.rand(3, 4, generator=g) * 2
    weighted, m = total_loss(logp, old, adv, mask, is_weights=w, **kw)
    no_kl, _ = total_loss(logp, old, adv, mask, is_weights=w, use_kl_loss=False)
    pg_only, _ = total_loss(logp, old, adv, mask, use_kl_loss=False)
    kl_part = base - pg_only
    # the KL part is unchanged by the weights; the PG part is the weighted per-token loss, token-mean
    torch.testing.assert_close(weighted - no_kl, kl_part)
    ratio = torch.exp(logp.detach() - old)
    pg_tok = torch.maximum(-adv[:, None] * ratio, -adv[:, None] * ratio.clamp(0.8, 1.28))
    torch.testing.assert_close(no_kl.detach(), (pg_tok * w)[mask].sum() / mask.sum())
    assert math.isfinite(m["total_loss"])
    weighted.backward()
    assert logp.grad is not None and torch.all(logp.grad[~mask] == 0)
    with pytest.raises(ValueError, match="is_weights"):
        total_loss(logp, old, adv, mask, is_weights=torch.ones(3, 3))
