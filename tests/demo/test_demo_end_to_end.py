"""A shortened `make demo` end to end: data, warm-start, GRPO and FAST-GRPO training, export, eval, report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_demo_runs_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "fastgrpo.demo", "--quick", "--out", str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = (out / "report.md").read_text()
    for stage in ("data", "warm-start", "train grpo", "export grpo", "train fast", "export fast",
                  "eval base", "eval grpo", "eval fast"):
        assert f"| {stage} | ok |" in report, stage
        if stage not in ("data", "warm-start"):  # the two lanes ran side by side, each command logged
            assert (out / "logs" / f"{stage.replace(' ', '_')}.log").read_text().startswith("$ "), stage
    assert "two lanes side by side with 1 each" in report
    for name in ("base", "grpo", "fast"):
        assert f"| {name} |" in report, name
    with Image.open(out / "demo_per_k.png") as img:
        assert img.format == "PNG" and img.size[0] > 100
    for run in ("grpo", "fast"):
        assert (out / run / "metrics.jsonl").exists()
        assert (out / run / "export" / "config.json").exists()


@pytest.mark.slow
def test_a_failed_lane_stops_the_demo_naming_the_command_and_its_log(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    # A bad override reaches both training runs: the FAST lane fails at once, the other after the base eval.
    proc = subprocess.run([sys.executable, "-m", "fastgrpo.demo", "--quick", "--out", str(out), "actor.lr=fast"],
                          cwd=REPO, capture_output=True, text=True, timeout=900, env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 1, proc.stderr[-4000:]
    err = " ".join(proc.stderr.split())
    log = out / "logs" / "train_fast.log"
    assert "demo failed: train fast: command failed" in err and f"last lines of {log}" in err, err[-3000:]
    assert "actor.lr" in log.read_text()  # the trainer's own message, shown in the tail too
    assert "actor.lr" in err.split("last lines of", 1)[1]
    assert not (out / "report.md").exists()
