"""The demo pipeline's own logic (no subprocesses): per-k tallies, report, stale-output guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastgrpo.demo import task
from fastgrpo.demo.__main__ import (
    FINGERPRINT,
    DemoOptions,
    Stage,
    _claim,
    eval_command,
    parse_args,
    per_k_from_generations,
    write_report,
)


def _generations(path: Path, slow_by_k: dict[int, bool], correct: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for k, slow in slow_by_k.items():
            p = task.Problem((1,) * k)
            response = task.slow_solution(p) if slow else task.fast_solution(p)
            for i in range(2):
                f.write(
                    json.dumps(
                        {
                            "group": str(k),
                            "response": response,
                            "correct": correct and i == 0,
                            "tokens": len(response),
                        }
                    )
                    + "\n"
                )
    return path


def test_per_k_tally_and_report(tmp_path: Path) -> None:
    results = {
        "base": per_k_from_generations(_generations(tmp_path / "b.jsonl", {2: True, 6: True}, correct=False)),
        "grpo": per_k_from_generations(_generations(tmp_path / "g.jsonl", {2: True, 6: True})),
        "fast": per_k_from_generations(_generations(tmp_path / "f.jsonl", {2: False, 6: True})),
    }
    assert results["fast"][2].slow_fraction == 0.0 and results["fast"][6].slow_fraction == 1.0
    assert results["grpo"][2].accuracy == 0.5 and results["base"][6].accuracy == 0.0
    assert results["fast"][2].mean_tokens < results["grpo"][2].mean_tokens
    report = write_report(DemoOptions(out=tmp_path), results, [Stage("data", 0.1, "ok")])
    text = report.read_text()
    assert "| fast | 0.00 | 1.00 | 0.50 |" in text  # slow fraction row: k=2, k=6, all
    assert "easiest (k=2): FAST" in text and "fewer tokens than GRPO" in text
    # the run's verdict: k=2 FAST answers fast (met), k=6 both slow (ratio 1.00x, met), k=3-5 not evaluated here
    assert "## Verdict of this run" in text and "benchmarks/demo_seeds.py" in text
    assert "| FAST/GRPO tokens in [0.9x, 1.1x] | 6 | 1.00x | met |" in text
    assert "| FAST-GRPO accuracy (points) >= -1 | 3 | - | not measured |" in text
    assert (tmp_path / "demo_per_k.png").stat().st_size > 1000


def test_claim_moves_outputs_of_other_inputs_aside(tmp_path: Path) -> None:
    run = tmp_path / "fast"
    _claim(run, "aaa")
    (run / "metrics.jsonl").write_text("{}\n")
    _claim(run, "aaa")  # same inputs: kept, so train/eval resume
    assert (run / "metrics.jsonl").exists()
    _claim(run, "bbb")  # other inputs: moved aside, fresh folder
    assert not (run / "metrics.jsonl").exists() and (run / FINGERPRINT).read_text().strip() == "bbb"
    assert len(list(tmp_path.glob("fast.stale-*"))) == 1


def test_eval_command_uses_the_training_prompt_and_k_groups(tmp_path: Path) -> None:
    o = parse_args(["--out", str(tmp_path), "--quick"])
    assert o.steps == 2 and o.warmstart_steps == 10 and o.eval_n == 1
    cmd = eval_command(o, tmp_path / "base", "base")
    assert cmd[cmd.index("--prompt") + 1] == task.FORMAT_PROMPT
    assert cmd[cmd.index("--group-key") + 1] == "k"
    assert cmd[cmd.index("--data") + 1] == str(tmp_path / "data" / "test.jsonl")


def test_demo_prints_its_verdict_with_the_multi_seed_pointer(capsys) -> None:
    from fastgrpo.demo.__main__ import KRow, print_verdict

    grpo = {k: KRow(0.9, 20.0, 0.8, 600) for k in range(2, 7)}
    fast = {k: KRow(0.87 if k == 6 else 0.9, 12.0 if k < 4 else 20.0, 0.1, 600) for k in range(2, 7)}
    print_verdict({"base": grpo, "grpo": grpo, "fast": fast})
    out = " ".join(capsys.readouterr().out.split())
    assert "8 of 9 checks met" in out and "MISSED" in out and "benchmarks/demo_seeds.py" in out


def test_warmstart_dtype_auto_takes_the_shipped_model_else_follows_the_cpu() -> None:
    from fastgrpo.demo.__main__ import DemoError, resolve_warmstart_dtype, warmstart_settings
    from fastgrpo.demo.warmstart import cpu_has_native_bf16, shipped_warmstart

    native = cpu_has_native_bf16()
    assert resolve_warmstart_dtype("auto") == ("bfloat16" if native else "float32")
    # The default recipe: the shipped weights' settings on every CPU, so nothing is trained.
    default = warmstart_settings(DemoOptions())
    assert default.compute_dtype == "bfloat16" and shipped_warmstart(default) is not None
    # Another recipe, or --train-warmstart: trained in the CPU's native dtype.
    assert warmstart_settings(DemoOptions(warmstart_steps=10)).compute_dtype == resolve_warmstart_dtype("auto")
    trained = warmstart_settings(parse_args(["--train-warmstart"]))
    assert trained.compute_dtype == resolve_warmstart_dtype("auto")
    other_draw = warmstart_settings(parse_args(["--warmstart-seed", "1"]))
    assert other_draw.seed == 1 and shipped_warmstart(other_draw) is None
    assert warmstart_settings(parse_args(["--warmstart-dtype", "float32"])).compute_dtype == "float32"
    assert shipped_warmstart(warmstart_settings(parse_args(["--warmstart-dtype", "float32"]))) is None
    assert warmstart_settings(parse_args(["--warmstart-dtype", "bfloat16"])).compute_dtype == "bfloat16"
    with pytest.raises(DemoError, match="float16"):
        resolve_warmstart_dtype("float16")
