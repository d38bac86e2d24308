"""The order of the trainer's engine calls (sync / generate / sleep), for what vLLM's CPU build cannot show:
sleep levels. An engine double with vLLM's sleep semantics (level 2 drops the weights, level 1 keeps them)
records the calls and generates with the real HF engine; the recipe is the real one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fastgrpo.rollout import PromptInput, RolloutOutput, SamplingParams
from fastgrpo.train.dist import init_distributed
from fastgrpo.train.recipe import FastGRPORecipe

from .conftest import read_metrics, toy_config


class RecordingEngine:
    """Delegates generation to the real engine; tracks the weights like vLLM with sleep mode."""

    def __init__(self, inner: Any, model: Any, sleep_level: int) -> None:
        self.inner, self.model, self.sleep_level = inner, model, sleep_level
        self.calls: list[str] = []
        self.holds: int | None = None  # the policy version the engine's weights are from (None: dummy weights)
        self.version = 0  # optimizer steps seen on the model, counted by a hook
        self.weights_dropped = True  # vLLM starts from dummy weights (level-2 default: no sync at start-up)
        self.grads_at_generate: list[bool] = []

    def sync_weights(self, model: Any) -> None:
        self.calls.append("sync")
        self.holds, self.weights_dropped = self.version, False

    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> RolloutOutput:
        assert not self.weights_dropped, "generate after a level-2 sleep without a sync"
        assert self.holds == self.version, f"generating with policy {self.holds}, the actor is at {self.version}"
        self.calls.append("generate")
        self.grads_at_generate.append(any(p.grad is not None for p in self.model.parameters()))
        return self.inner.generate(prompts, params)

    def sleep(self) -> None:
        self.calls.append("sleep")
        if self.sleep_level == 2:
            self.weights_dropped = True

    def wake_up(self) -> None:
        self.calls.append("wake_up")


class Recorded(FastGRPORecipe):
    def setup(self) -> None:
        super().setup()
        self.engine = RecordingEngine(self.engine, self.model, self.cfg.rollout.sleep_level)
        engine = self.engine

        def count(*args: Any, **kwargs: Any) -> None:
            engine.version += 1

        self.optimizer.register_step_post_hook(count)


@pytest.mark.parametrize("level", [1, 2])
def test_sync_generate_sleep_order(tiny_model: Path, toy_data: Path, tmp_path: Path, level: int) -> None:
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{
        "rollout.sleep_level": level, "trainer.max_steps": 2, "trainer.val_freq": 1,
        "data.val_files": str(toy_data), "eval.limit": 3, "eval.max_new_tokens": 4,
        "actor.global_batch_size": 8, "actor.micro_batch_size": 8})  # two optimizer updates per step
    rec = Recorded(cfg, init_distributed(cfg.trainer.device))
    rec.run()
    calls = rec.engine.calls
    rollout, val = ["generate", "sleep"], ["sync", "generate", "sleep"]
    if level == 2:  # the weights are dropped at every sleep: each generation phase syncs first
        assert calls == ["sync", *rollout, *val, "sync", *rollout, *val]
    else:  # level 1 keeps them: step 2's rollout reuses the weights validation synced
        assert calls == ["sync", *rollout, *val, *rollout, *val]
    assert rec.engine.version == 4  # 2 steps x 2 updates, yet one sync per policy generated from
    assert not any(rec.engine.grads_at_generate)  # gradients freed before every rollout and validation
    rows = read_metrics(tmp_path / "run")
    assert [r["perf/val_weight_syncs"] for r in rows] == [1.0, 1.0]
    assert [r["perf/weight_syncs"] for r in rows] == ([1.0, 1.0] if level == 2 else [1.0, 0.0])
