"""StepBatch: kept groups + every candidate -> one call into the algo -> one typed Sample per response."""

from __future__ import annotations

import pytest
import torch

from fastgrpo.algo import DifficultyWindow, fast_grpo_step
from fastgrpo.config import load_config
from fastgrpo.data.prompts import PromptExample
from fastgrpo.train.step_batch import Group, GroupScores, Sample, StepBatch


def _group(uid: int, acc: list[float], lengths: list[int], complexity: float, logprobs: bool = True) -> Group:
    ids = [[7] * n for n in lengths]
    return Group(
        PromptExample(uid=uid, prompt_ids=[1, 2], prompt_text=f"q{uid}", answer="a", complexity=complexity),
        ids, [f"r{uid}.{j}" for j in range(len(acc))],
        GroupScores(accuracy=acc, format=[1.0] * len(acc), overall=[0.9 * a + 0.1 for a in acc]),
        errors=[None, "boom"] if uid == 2 else None,
        rollout_logprobs=[[-0.5] * n for n in lengths] if logprobs else None,
    )


def _candidates() -> list[Group]:
    return [_group(0, [1.0, 1.0], [3, 5], 0.5), _group(1, [1.0, 0.0], [4, 8], 1.0),
            _group(2, [0.0, 0.0], [6, 2], 1.0, logprobs=False)]


@pytest.mark.parametrize("population", ["batch", "window"])
def test_build_is_the_algo_step_on_the_kept_candidates(population: str) -> None:
    cands = _candidates()
    kept = [cands[1], cands[2]]  # group 0 was filtered out
    cfg = load_config(None, ["algorithm.easy_percentile=50", f"algorithm.difficulty_population={population}"]).algorithm
    window = DifficultyWindow(8)
    batch, metrics = StepBatch.build(kept, cands, cfg, window)
    expected = fast_grpo_step(
        [g.scores.overall for g in cands], [g.scores.accuracy for g in cands],
        [g.lengths for g in cands], [0.5, 1.0, 1.0], kept=[False, True, True], format_reward=[[1.0, 1.0]] * 3,
        difficulty_window=DifficultyWindow(8) if population == "window" else None, easy_percentile=50,
        thinking_reward_weight=cfg.thinking_reward_weight, kl_min_coef=cfg.kl_min_coef, kl_max_coef=cfg.kl_max_coef)
    assert batch.groups == kept
    assert torch.equal(batch.advantages, expected.advantages) and torch.equal(batch.kl_coef, expected.kl_coef)
    assert torch.equal(batch.rewards, expected.rewards) and batch.is_hard.tolist() == [False, True]
    assert {k: metrics[k] for k in expected.metrics} == expected.metrics and metrics["easy/filtered_fraction"] == 0.5
    assert metrics["all/truncated_fraction"] == 0.0 and batch.in_loss.all()  # no max length given: none cut
    assert len(window) == (3 if population == "window" else 0)  # every candidate, only when asked for

    samples = batch.samples()
    assert [s.response_ids for s in samples] == [r for g in kept for r in g.response_ids]
    first = samples[0]
    assert isinstance(first, Sample) and first.example is kept[0].example and first.is_hard is False
    assert first.advantage == float(batch.advantages[0, 0]) and first.kl_coef == float(batch.kl_coef[0, 0])
    assert first.rollout_logprobs == [-0.5] * 4 and samples[-1].rollout_logprobs is None
    assert samples[-1].is_hard is True

    rows = batch.records(3)
    assert [r["response"] for r in rows] == ["r1.0", "r1.1", "r2.0"]
    assert rows[1]["reward"] == pytest.approx(float(batch.rewards[0, 1])) and rows[2]["hard"] is True
    assert "reward_error" not in rows[2] and batch.records(4)[3]["reward_error"] == "boom"


def test_build_rejects_a_kept_group_that_is_not_a_candidate() -> None:
    cands = _candidates()
    cfg = load_config(None, []).algorithm
    with pytest.raises(ValueError, match="one of the candidates"):
        StepBatch.build([_group(9, [1.0, 0.0], [1, 1], 0.5)], cands, cfg)


def test_scores_by_name_is_the_filter_key() -> None:
    scores = GroupScores(accuracy=[1.0], format=[0.5], overall=[0.9])
    assert [scores.by_name(k) for k in ("accuracy", "format", "overall")] == [[1.0], [0.5], [0.9]]
    with pytest.raises(ValueError, match="no score named 'speed'"):
        scores.by_name("speed")
