"""Truncated responses (`algorithm.mask_truncated`) and DAPO's soft overlong penalty (`reward.overlong_*`)."""

from __future__ import annotations

import pytest
import torch

from fastgrpo.algo.loss import agg_denominator, total_loss
from fastgrpo.algo.overlong import is_truncated, loss_keep_mask, overlong_penalty, truncation_metrics

EOS = [2, 7]


def test_truncated_means_at_the_cap_without_eos() -> None:
    responses = [[5, 5, 5, 5], [5, 5, 5, 2], [5, 7], [5, 5, 5, 5, 5], [], [5, 5, 5, 7]]
    assert is_truncated(responses, 4, EOS).tolist() == [True, False, False, True, False, False]


def _dapo(length: int, max_len: int, buf: int, factor: float) -> float:
    """The DAPO paper's R_length (eq. 13) written out case by case, times the factor."""
    if length <= max_len - buf:
        return 0.0
    if length <= max_len:
        return ((max_len - buf) - length) / buf * factor
    return -1.0 * factor


@pytest.mark.parametrize(("buf", "factor"), [(4, 1.0), (10, 0.5), (20, 2.0)])
def test_overlong_penalty_is_dapo_soft_punishment(buf: int, factor: float) -> None:
    max_len = 20
    lengths = torch.arange(0, max_len + 1)
    got = overlong_penalty(lengths, max_len, buf, factor)
    want = torch.tensor([_dapo(int(x), max_len, buf, factor) for x in lengths])
    torch.testing.assert_close(got, want)
    assert got[-1] == -factor and got[max_len - buf] == 0
    assert (got[1:] <= got[:-1]).all()  # never rewards length


def test_overlong_penalty_off_and_bad_buffer() -> None:
    assert overlong_penalty([[3.0, 9.0]], 9, 0).abs().sum() == 0
    with pytest.raises(ValueError, match="buffer_len"):
        overlong_penalty([3.0], 9, 10)


def test_truncation_metrics_overall_and_by_bucket() -> None:
    truncated = torch.tensor([[True, False, False, False], [True, True, False, False], [False] * 4])
    hard = torch.tensor([False, True, False])
    penalty = torch.tensor([[-1.0, 0, 0, 0], [-0.5, -1.0, 0, 0], [0.0] * 4])
    m = truncation_metrics(truncated, hard, penalty)
    assert m["all/truncated_fraction"] == pytest.approx(3 / 12)
    assert m["easy/truncated_fraction"] == pytest.approx(1 / 8)
    assert m["hard/truncated_fraction"] == pytest.approx(2 / 4)
    assert m["reward/overlong_penalty"] == pytest.approx(-2.5 / 12)
    assert m["reward/overlong_fraction"] == pytest.approx(3 / 12)
    assert "hard/truncated_fraction" not in truncation_metrics(truncated, torch.zeros(3, dtype=torch.bool))


def test_masked_truncated_response_leaves_the_loss_and_its_denominator() -> None:
    """A dropped response adds neither policy nor KL gradient, and the others keep their weight: the loss
    equals the one computed without that row (every aggregation mode)."""
    g = torch.Generator().manual_seed(0)
    n, t = 4, 6
    old = -torch.rand(n, t, generator=g) - 0.1
    logp = old + 0.1 * torch.randn(n, t, generator=g)
    ref = old + 0.1 * torch.randn(n, t, generator=g)
    lengths = [6, 6, 3, 5]
    mask = torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]
    adv = torch.tensor([1.0, -1.0, 0.5, 2.0])
    truncated = is_truncated([[5] * x for x in lengths], 6, EOS)  # rows 0 and 1 hit the cap of 6
    keep = loss_keep_mask(truncated, mask_truncated=True)
    assert keep.tolist() == [False, False, True, True]
    assert loss_keep_mask(truncated, mask_truncated=False).all()
    for mode in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum"):
        a = logp.clone().requires_grad_(True)
        loss, _ = total_loss(a, old, adv, mask & keep[:, None], ref_log_prob=ref, kl_coef=0.1, loss_agg_mode=mode)
        loss.backward()
        assert a.grad[:2].abs().max() == 0
        sub, _ = total_loss(logp[2:], old[2:], adv[2:], mask[2:], ref_log_prob=ref[2:], kl_coef=0.1,
                            loss_agg_mode=mode)
        torch.testing.assert_close(loss, sub)
        kept_lengths = [x * int(k) for x, k in zip(lengths, keep.tolist(), strict=True)]
        assert agg_denominator(kept_lengths, mode) == agg_denominator(lengths[2:], mode)
