"""Data-parallel `fastgrpo eval --nproc 2` (real processes under torch.distributed.run, HF engine on CPU):
the same results.json and the same responses as one process; resume and leftover shards still work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fastgrpo.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "fixtures" / "eval" / "custom_k.jsonl"
VOLATILE = ("created", "processes")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fastgrpo.models.tiny import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "model", num_layers=1)


def _args(model: Path, out: Path, n: int) -> list[str]:
    return [
        "--bench", "custom", "--data", str(DATA), "--group-key", "k", "--model", str(model), "-n", str(n),
        "--max-new-tokens", "6", "--out", str(out), "--workers", "0", "--seed", "3", "--no-progress",
    ]  # fmt: skip


def _in_process(args: list[str]) -> None:
    res = CliRunner().invoke(app, ["eval", *args])
    assert res.exit_code == 0, res.output


def _two_processes(args: list[str]) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "fastgrpo", "eval", *args, "--nproc", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _results(out: Path) -> dict[str, Any]:
    res = json.loads((out / "results.json").read_text())
    return {k: v for k, v in res.items() if k not in VOLATILE}


def _responses(out: Path) -> dict[tuple[str, int], tuple[str, int]]:
    recs = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    out_map = {(r["prompt_id"], r["sample_idx"]): (r["response"], r["tokens"]) for r in recs}
    assert len(out_map) == len(recs)  # one line per sample
    return out_map


@pytest.fixture(scope="module")
def single(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One process, n=2, from scratch."""
    out = tmp_path_factory.mktemp("single") / "out"
    _in_process(_args(tiny_model, out, 2))
    return out


@pytest.mark.slow
def test_two_processes_match_one_and_resume(tiny_model: Path, single: Path, tmp_path: Path) -> None:
    """Two ranks resume a run in which questions 0 and 1 are done: rank 0 (questions 0, 2) and rank 1
    (1, 3) each generate one question from scratch, rank 0 merges and reports; responses and
    results equal the single process's (the seeds of a question's samples do not depend on the rank)."""
    recs = [json.loads(x) for x in (single / "generations.jsonl").read_text().splitlines()]
    two = tmp_path / "two"
    two.mkdir()
    done = "".join(json.dumps(r) + "\n" for r in recs if r["prompt_id"] in ("0", "1"))
    (two / "generations.jsonl").write_text(done)
    _two_processes(_args(tiny_model, two, 2))
    assert json.loads((two / "results.json").read_text())["processes"] == 2
    assert _results(two) == _results(single)
    assert _responses(two) == _responses(single) and len(_responses(single)) == 8
    assert not list(two.glob("generations.rank*.jsonl"))  # merged by rank 0


def test_shards_left_by_a_killed_run_are_merged_not_regenerated(
    tiny_model: Path, single: Path, tmp_path: Path
) -> None:
    recs = [json.loads(x) for x in (single / "generations.jsonl").read_text().splitlines()]
    out = tmp_path / "resumed"
    out.mkdir()
    (out / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs if r["sample_idx"] == 0))
    marked = [{**r, "response": "from rank 1's shard", "tokens": 5} for r in recs if r["sample_idx"] == 1]
    shard = "".join(json.dumps(r) + "\n" for r in marked) + '{"benchmark": "custom", "prompt_id": "0", "sa'
    (out / "generations.rank1.jsonl").write_text(shard)  # killed mid-line
    _in_process(_args(tiny_model, out, 2))
    got = _responses(out)
    assert len(got) == 8 and not list(out.glob("generations.rank*.jsonl"))
    assert {got[(r["prompt_id"], 1)] for r in marked} == {("from rank 1's shard", 5)}  # kept, not regenerated
