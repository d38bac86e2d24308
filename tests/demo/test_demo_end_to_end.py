"""A shortened `make demo` end to end: data, warm-start, GRPO and FAST-GRPO training, export, eval, report."""

from __future__ import annotations

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
    for name in ("base", "grpo", "fast"):
        assert f"| {name} |" in report, name
    with Image.open(out / "demo_per_k.png") as img:
        assert img.format == "PNG" and img.size[0] > 100
    for run in ("grpo", "fast"):
        assert (out / run / "metrics.jsonl").exists()
        assert (out / run / "export" / "config.json").exists()
