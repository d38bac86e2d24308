"""algorithm.rollout_is with the HF engine, which returns its sampling log-probs: the mismatch is logged
(near 0: it samples from the actor's own weights) and TIS then changes nothing measurable."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastgrpo.train.recipe import train

from .conftest import read_metrics, toy_config


def test_hf_engine_log_probs_give_no_mismatch_and_tis_is_then_neutral(tiny_model: Path, toy_data: Path,
                                                                      tmp_path: Path) -> None:
    runs = {}
    for mode in ("none", "tis"):
        cfg = toy_config(tiny_model, toy_data, tmp_path / mode, **{"trainer.max_steps": 2, "algorithm.rollout_is": mode})
        runs[mode] = read_metrics(train(cfg))
    for off, tis in zip(runs["none"], runs["tis"], strict=True):
        for r in (off, tis):  # logged whenever the engine returned log-probs, whatever the mode
            assert r["rollout/logprob_max_abs_diff"] < 1e-4 and r["rollout/is_capped_fraction"] == 0.0
        for k in ("actor/pg_loss", "actor/total_loss", "actor/grad_norm"):
            assert tis[k] == pytest.approx(off[k], rel=1e-3, abs=1e-6), k
