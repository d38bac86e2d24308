"""Hypothesis property tests for the algorithm core."""

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgrpo.algo import (
    BatchFiller,
    agg_loss,
    compute_advantages,
    filter_groups,
    group_filter_values,
    kl_penalty,
    policy_loss,
    thinking_reward,
    total_loss,
)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@st.composite
def groups(draw, elements=finite, max_b=6, max_g=8):
    b = draw(st.integers(1, max_b))
    g = draw(st.integers(1, max_g))
    vals = draw(st.lists(st.lists(elements, min_size=g, max_size=g), min_size=b, max_size=b))
    return torch.tensor(vals, dtype=torch.float64)


@SETTINGS
@given(groups(), st.sampled_from(["grpo", "drgrpo"]))
def test_advantages_zero_mean_per_group_and_finite(rewards, est):
    adv = compute_advantages(rewards, est)
    assert torch.isfinite(adv).all()
    assert torch.allclose(
        adv.sum(dim=1), torch.zeros(rewards.shape[0], dtype=adv.dtype), atol=1e-6 * (1 + rewards.abs().max())
    )
    same = rewards.max(dim=1).values == rewards.min(dim=1).values
    assert (adv[same] == 0).all()


@SETTINGS
@given(groups(elements=st.sampled_from([0.0, 0.25, 0.5, 1.0])), st.floats(0, 1), st.floats(0, 1))
def test_filter_never_keeps_out_of_range_group(values, a, b):
    low, high = min(a, b), max(a, b)
    keep = filter_groups(values, low, high)
    # exact reference: the entries are binary fractions, so sum(row) / G in Python
    # floats is the correctly rounded group mean
    means = [sum(row) / len(row) for row in values.tolist()]
    for k, m in zip(keep.tolist(), means, strict=True):
        assert k == (low <= m <= high)
    assert group_filter_values(values).tolist() == means


@SETTINGS
@given(
    st.lists(groups(elements=st.sampled_from([0.0, 1.0]), max_b=4, max_g=4), min_size=1, max_size=6),
    st.integers(1, 6),
    st.integers(0, 4),
)
def test_batch_filler_kept_groups_always_in_range(rounds, target, max_try):
    f = BatchFiller(target_groups=target, filter_low=0.3, filter_high=0.7, max_try_make_batch=max_try)
    kept_means = []
    for r in rounds:
        if f.done:
            break
        means = r.mean(dim=1).tolist()
        f.add(r, items=means)
    res = f.result()
    kept_means = res.items
    assert len(kept_means) <= target
    assert all(0.3 <= m <= 0.7 for m in kept_means)
    assert res.full == (len(kept_means) == target)
    assert (res.warning is None) == res.full


@SETTINGS
@given(
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=32),
    st.lists(st.floats(-50, 50, allow_nan=False), min_size=1, max_size=32),
)
def test_k3_non_negative(a, b):
    n = min(len(a), len(b))
    logp, ref = torch.tensor(a[:n]), torch.tensor(b[:n])
    k3 = kl_penalty(logp, ref, "low_var_kl")
    assert torch.isfinite(k3).all() and (k3 >= 0).all() and (k3 <= 10).all()
    assert (kl_penalty(logp, ref, "mse") >= 0).all() and (kl_penalty(logp, ref, "abs") >= 0).all()


@st.composite
def token_batch(draw):
    n = draw(st.integers(1, 4))
    t = draw(st.integers(1, 6))
    big = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)
    logp = torch.tensor(draw(st.lists(st.lists(big, min_size=t, max_size=t), min_size=n, max_size=n)))
    old = torch.tensor(draw(st.lists(st.lists(big, min_size=t, max_size=t), min_size=n, max_size=n)))
    adv = torch.tensor(draw(st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=n, max_size=n)))
    mask = torch.tensor(
        draw(st.lists(st.lists(st.booleans(), min_size=t, max_size=t), min_size=n, max_size=n))
    )
    return logp, old, adv, mask


@SETTINGS
@given(
    token_batch(),
    st.sampled_from(["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]),
    st.sampled_from([None, 3.0]),
)
def test_loss_finite_on_edge_cases(batch, mode, dual):
    logp, old, adv, mask = batch
    logp = logp.clone().requires_grad_(True)
    loss, _ = policy_loss(logp, old, adv, mask, clip_ratio_dual=dual, loss_agg_mode=mode)
    assert math.isfinite(loss.item())
    loss.backward()
    assert torch.isfinite(logp.grad).all()
    tl, tm = total_loss(
        logp.detach(),
        old,
        adv,
        mask,
        ref_log_prob=old,
        kl_coef=torch.full((logp.shape[0],), 0.01),
        loss_agg_mode=mode,
    )
    assert math.isfinite(tl.item()) and math.isfinite(tm["kl_loss"])
    if not mask.any():
        assert loss.item() == 0.0
    assert math.isfinite(agg_loss(torch.zeros_like(old), mask, mode).item())


@SETTINGS
@given(
    groups(elements=st.floats(0, 5000, allow_nan=False), max_g=6),
    st.data(),
    st.floats(0, 2),
)
def test_thinking_reward_bounded(lengths, data, w):
    b, g = lengths.shape
    acc = torch.tensor(
        data.draw(
            st.lists(st.lists(st.sampled_from([0.0, 1.0]), min_size=g, max_size=g), min_size=b, max_size=b)
        )
    )
    hard = torch.tensor(data.draw(st.lists(st.booleans(), min_size=b, max_size=b)))
    r = thinking_reward(lengths, acc, hard, thinking_reward_weight=w)
    assert torch.isfinite(r).all()
    assert (r >= -1e-9).all() and (r <= w + 1e-9).all()
    # rewards only where the rule says so
    easy_wrong = (~hard)[:, None] & (acc < 0.5)
    hard_right = hard[:, None] & (acc > 0.5)
    assert (r[easy_wrong | hard_right] == 0).all()
