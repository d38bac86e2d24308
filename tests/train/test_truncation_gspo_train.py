"""Issue 18 in real training on the tiny Qwen2 (CPU): mask_truncated, the overlong penalty, GSPO.

A random tiny model almost never samples EOS, so with a short data.max_response_length every response is
cut: the setting that shows what each option does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from fastgrpo.algo.overlong import overlong_penalty
from fastgrpo.train.recipe import train

from .conftest import read_metrics, toy_config

FAST = {"trainer.max_steps": 2, "actor.weight_decay": 0.0, "algorithm.thinking_reward": False,
        "data.max_response_length": 12}


def _expected_pg_loss(samples: list[dict], n: int, keep) -> float:
    """token-mean PG loss of a first step (ratio 1, so each token's loss is -A), from the logged rewards."""
    num = den = 0.0
    for g in range(0, len(samples), n):
        rewards = torch.tensor([s["reward"] for s in samples[g : g + n]])
        adv = (rewards - rewards.mean()) / (rewards.std() + 1e-6)
        for s, a in zip(samples[g : g + n], adv.tolist(), strict=True):
            if keep(s):
                num += -a * s["length"]
                den += s["length"]
    return num / den


def test_mask_truncated_drops_cut_responses_from_the_loss(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    one = {**FAST, "trainer.max_steps": 1, "trainer.log_samples": 16}
    masked_run = train(toy_config(tiny_model, toy_data, tmp_path / "a", **one, **{"algorithm.mask_truncated": True}))
    plain_run = train(toy_config(tiny_model, toy_data, tmp_path / "b", **one))
    (masked,), (plain,) = read_metrics(masked_run), read_metrics(plain_run)
    samples = [json.loads(x) for x in (masked_run / "samples.jsonl").read_text().splitlines()]
    assert samples == [json.loads(x) for x in (plain_run / "samples.jsonl").read_text().splitlines()]
    cut = sum(s["length"] == 12 for s in samples) / 16  # a random tiny model rarely samples EOS in 12 tokens
    assert 0.5 <= cut < 1.0
    for row in (masked, plain):  # logged either way, overall and by bucket
        assert row["all/truncated_fraction"] == pytest.approx(cut)
        assert "easy/truncated_fraction" in row or "hard/truncated_fraction" in row
    # Truncated responses still count in the group statistics (same accuracy and rewards) ...
    assert masked["all/accuracy"] == plain["all/accuracy"] and masked["all/reward"] == plain["all/reward"]
    # ... but only the finished ones enter the loss (KL is 0 at the first step: policy = reference).
    assert masked["actor/pg_loss"] == pytest.approx(_expected_pg_loss(samples, 4, lambda s: s["length"] < 12), abs=1e-5)
    assert plain["actor/pg_loss"] == pytest.approx(_expected_pg_loss(samples, 4, lambda s: True), abs=1e-5)
    assert masked["actor/pg_loss"] != pytest.approx(plain["actor/pg_loss"], abs=1e-4)
    assert "reward/overlong_penalty" not in plain


def test_overlong_penalty_is_added_to_the_reward(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    run = train(toy_config(tiny_model, toy_data, tmp_path, **{
        **FAST, "reward.overlong_buffer_len": 4, "reward.overlong_penalty_factor": 0.5, "trainer.log_samples": 16,
        "trainer.max_steps": 1}))
    samples = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 16
    for s in samples:
        digit = sum(c.isdigit() for c in s["response"]) / max(1, len(s["response"]))  # the toy reward's overall
        penalty = float(overlong_penalty([s["length"]], 12, 4, 0.5)[0])
        assert penalty == pytest.approx(min(0.0, -0.5 * (s["length"] - 8) / 4))
        assert s["reward"] == pytest.approx(digit + penalty, abs=1e-6)
    (row,) = read_metrics(run)
    assert row["reward/overlong_penalty"] == pytest.approx(
        sum(float(overlong_penalty([s["length"]], 12, 4, 0.5)[0]) for s in samples) / 16, abs=1e-6)
    assert row["reward/overlong_fraction"] == pytest.approx(sum(s["length"] > 8 for s in samples) / 16)
    assert row["reward/overlong_fraction"] > 0


def test_gspo_trains(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """Two PPO epochs so the ratio moves off 1: GSPO's sequence ratio then clips whole responses."""
    rows = read_metrics(train(toy_config(tiny_model, toy_data, tmp_path, **{
        "algorithm.policy_loss": "gspo", "algorithm.loss_agg_mode": "seq-mean-token-mean",
        "algorithm.clip_ratio_low": 3e-4, "algorithm.clip_ratio_high": 4e-4, "actor.ppo_epochs": 2,
        "trainer.max_steps": 2})))
    for r in rows:
        assert math.isfinite(r["actor/total_loss"]) and r["actor/grad_norm"] > 0
    assert any(r["actor/pg_clipfrac"] > 0 for r in rows)
