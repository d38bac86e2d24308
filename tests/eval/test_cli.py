"""`fastgrpo eval` on the command line: listing, clear exit-2 errors, compare, and a real end-to-end run."""

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
from fastgrpo.eval import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fastgrpo.models.tiny import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "model", num_layers=2)


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["eval", *args])


def test_list_shows_every_benchmark() -> None:
    res = invoke("--list")
    assert res.exit_code == 0, res.output
    for name in BENCHMARKS:
        assert name in res.output
    assert "PAPO-Galaxy/PAPO_eval" in res.output and "openai/gsm8k" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bench", "gsm8kk", "--model", "m"], "unknown benchmark 'gsm8kk'"),
        (["--bench", "gsm8k"], "--model PATH is required"),
        ([], "nothing to evaluate"),
        (["--bench", "gsm8k", "--model", "/nonexistent/model"], "does not exist"),
        (["--bench", "custom", "--model", "m"], "--bench custom needs --data PATH"),
        (
            ["--bench", "gsm8k", "--model", "m", "--scorer", "exact"],
            "--scorer must be mathverify or reference",
        ),
    ],
)
def test_bad_input_exits_2(args: list[str], message: str) -> None:
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert message in res.output


def test_model_related_errors_exit_2(tiny_model: Path, data_dir: Path, tmp_path: Path) -> None:
    res = invoke("--bench", "mathvista", "--model", str(tiny_model), "--data-dir", str(data_dir))
    assert res.exit_code == 2 and "no vision processor" in res.output
    res = invoke("--bench", "math500", "--model", str(tiny_model), "--data-dir", str(tmp_path))
    assert res.exit_code == 2
    assert "Looked locally in" in res.output and "--data math500=PATH" in res.output
    res = invoke(
        "--bench", "gsm8k", "--model", str(tiny_model), "--data-dir", str(data_dir), "--engine", "vllm"
    )
    assert res.exit_code == 2 and "needs the 'vllm' package" in res.output


def test_vision_model_end_to_end(data_dir: Path, tmp_path: Path) -> None:
    """A tiny Qwen2-VL: the image goes through the training VisionProcessor and the vision HF engine."""
    from fastgrpo.models.tiny_vl import build_tiny_qwen2_vl

    vl = build_tiny_qwen2_vl(tmp_path / "vl", num_layers=1)
    out = tmp_path / "o"
    res = invoke(
        "--bench",
        "clevr,gsm8k",
        "--model",
        str(vl),
        "--data-dir",
        str(data_dir),
        "--limit",
        "1",
        "--n",
        "2",
        "--max-new-tokens",
        "4",
        "--out",
        str(out),
        "--workers",
        "0",
        "--no-progress",
    )
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    assert results["benchmarks"]["clevr"]["samples"] == 2 and results["benchmarks"]["gsm8k"]["samples"] == 2
    recs = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert all(1 <= r["tokens"] <= 4 for r in recs)


def test_config_trust_remote_code_reaches_the_processor(data_dir: Path, tmp_path: Path) -> None:
    """--config's model.trust_remote_code loads a processor shipped as code (else: no vision processor, exit 2)."""
    from fastgrpo.models.tiny_vl import build_tiny_qwen2_vl

    from ..models.remote_code import needs_remote_code

    vl = needs_remote_code(build_tiny_qwen2_vl(tmp_path / "vl", num_layers=1))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"model:\n  path: {vl}\n  trust_remote_code: true\neval:\n  benchmarks: [clevr]\n")
    out = tmp_path / "o"
    args = ("--data-dir", str(data_dir), "--limit", "1", "--n", "1", "--max-new-tokens", "4", "--out", str(out),
            "--workers", "0", "--no-progress")
    res = invoke("--config", str(cfg), *args)
    assert res.exit_code == 0, res.output
    assert json.loads((out / "results.json").read_text())["benchmarks"]["clevr"]["samples"] == 1


def test_compare_command(tmp_path: Path) -> None:
    from fastgrpo.eval.report import write_reports

    for name, acc in (("a", 50.0), ("b", 60.0)):
        write_reports(
            {
                "model": name,
                "benchmarks": {
                    "gsm8k": {
                        "title": "GSM8K",
                        "accuracy": acc,
                        "mean_tokens": 10.0,
                        "questions": 1,
                        "samples": 1,
                    }
                },
                "average": {"accuracy": acc, "mean_tokens": 10.0},
            },
            tmp_path / name,
            plot=False,
        )
    res = invoke(
        "compare", str(tmp_path / "a" / "results.json"), str(tmp_path / "b"), "--out", str(tmp_path / "c")
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "c" / "accuracy_vs_length.png").exists()
    assert len(json.loads((tmp_path / "c" / "accuracy_vs_length.json").read_text())["points"]) == 2
    res = invoke("compare", str(tmp_path / "missing.json"), "--out", str(tmp_path / "c"))
    assert res.exit_code == 2 and "no results file" in res.output


def test_end_to_end_subprocess_then_resume(tiny_model: Path, data_dir: Path, tmp_path: Path) -> None:
    """A real `python -m fastgrpo eval` with the tiny model on CPU; rerunning resumes without generating."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "fastgrpo",
        "eval",
        "--bench",
        "gsm8k,custom",
        "--model",
        str(tiny_model),
        "--data-dir",
        str(data_dir),
        "--data",
        f"custom={data_dir / 'custom_k.jsonl'}",
        "--group-key",
        "k",
        "--n",
        "2",
        "--max-new-tokens",
        "16",
        "--limit",
        "3",
        "--out",
        str(out),
        "--workers",
        "1",
        "--seed",
        "3",
        "--no-progress",
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "GSM8K" in proc.stdout and "Average" in proc.stdout  # the rich table
    results = json.loads((out / "results.json").read_text())
    assert list(results["benchmarks"]) == ["gsm8k", "custom"]
    gsm, custom = results["benchmarks"]["gsm8k"], results["benchmarks"]["custom"]
    assert (gsm["questions"], gsm["samples"], custom["samples"]) == (3, 6, 6)
    assert set(custom["groups"]) == {"1", "2"} and custom["group_key"] == "k"
    assert results["engine"] == "hf" and gsm["sampling"]["max_new_tokens"] == 16
    recs = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(recs) == 12
    assert all(1 <= r["tokens"] <= 16 for r in recs)
    assert all((r["finish"] == "length") <= (r["tokens"] == 16) for r in recs)
    assert (out / "results.md").exists() and (out / "accuracy_vs_length.png").stat().st_size > 1000

    before = (out / "generations.jsonl").read_text()
    res = invoke(*cmd[cmd.index("--bench") :])  # same command, in-process: everything is already there
    assert res.exit_code == 0, res.output
    assert (out / "generations.jsonl").read_text() == before


def test_config_eval_section(tiny_model: Path, data_dir: Path, tmp_path: Path) -> None:
    """--config: its eval: keys override the benchmark defaults; keys it does not set keep them."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        f"model:\n  path: {tiny_model}\neval:\n  benchmarks: [gsm8k]\n  n: 1\n  max_new_tokens: 8\n"
        "  limit: 1\n  scorer: reference\n"
    )
    out = tmp_path / "o"
    res = invoke(
        "--config",
        str(cfg),
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--workers",
        "0",
        "--no-progress",
    )
    assert res.exit_code == 0, res.output
    results = json.loads((out / "results.json").read_text())
    s = results["benchmarks"]["gsm8k"]["sampling"]
    assert (s["n"], s["max_new_tokens"], s["temperature"], s["top_p"]) == (1, 8, 0.6, 0.95)
    assert results["scorer"] == "reference" and results["benchmarks"]["gsm8k"]["questions"] == 1
