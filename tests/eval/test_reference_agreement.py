"""`fastgrpo eval --scorer reference` agrees with PAPO-Eval's grading function on every one of >= 300 responses.

The oracle (`papo_oracle`, labelled as such) is a transcription of PAPO-Eval's
`compute_accuracy_boxed_math` calling `mathruler` the way that code does, with PAPO's label
(gold + "\\n"). The product path is the real command: stored generations are re-graded by
`fastgrpo eval --scorer reference` (CLI, reward pool worker processes), and its per-sample
verdicts in generations.jsonl and its accuracy in results.json are compared with the oracle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mathruler.grader import extract_boxed_content, grade_answer
from typer.testing import CliRunner

from fastgrpo.cli.main import app


def papo_oracle(predict: str, ground_truth: str) -> float:
    """ORACLE (transcribed from PAPO-Eval's compute_accuracy_boxed_math; not product code)."""
    predict = re.sub(r"\s*(<|>|/)\s*", r"\1", predict)
    answer = extract_boxed_content(predict)
    return 1.0 if grade_answer(answer, ground_truth) else 0.0


GOLDS = [
    "5",
    "33",
    "1234",
    "-7",
    "3.14",
    "0.5",
    r"\frac{14}{3}",
    r"\frac{1}{2}",
    r"2\sqrt{3}",
    r"\frac{\sqrt{2}}{2}",
    r"(3, \frac{\pi}{2})",
    r"\{1,2,3\}",
    "[1, 2)",
    "x^2+1",
    "60",
    "12",
    "Yes",
    "No",
    "B",
    "BD",
    "F",
    "red",
    "None",
    r"\$10",
]

T = "<think>First, I read the figure; the two triangles are similar.</think>\n"


def _responses(gold: str) -> list[str]:
    """Varied responses around one gold: right and wrong forms, units, currency, letters, tags, garbage."""
    lower = gold.lower()
    return [
        T + f"The answer is \\boxed{{{gold}}}.",
        T + f"So we get \\boxed{{ {gold} }}",
        f"\\boxed{{{gold}}}",  # no thinking at all
        T + f"\\boxed{{{lower}}}",
        T + f"\\boxed{{[{gold}]}}",
        T + f"\\boxed{{{gold}.}}",
        T + f"\\boxed{{{gold} cm}}",
        T + f"\\boxed{{{gold}°}}",
        T + f"\\boxed{{{gold}^\\circ}}",
        T + f"\\boxed{{\\${gold}}}",
        T + f"\\boxed{{\\text{{{gold}}}}}",
        T + f"First \\boxed{{0}} then \\boxed{{{gold}}}",  # several boxes: the last counts
        T + f"First \\boxed{{{gold}}} then \\boxed{{0}}",
        f"<think>maybe \\boxed{{{gold}}} but I am not sure",  # cut inside the monologue
        f"<think>\\boxed{{{gold}}}</think> The answer is {gold}.",
        T + f"The answer is {gold}.",  # no box
        T + f"\\boxed{{\\boxed{{{gold}}}}}",  # nested boxes
        T + f"\\boxed{{\\left({gold}\\right)}}",
        T + f"x = \\boxed{{x = {gold}}}",
        T + f"\\boxed{{{gold}",  # unclosed
        "",
        "}{ \\boxed{ }}} asdf \\\\boxed{{",
        T + "\\boxed{}",
        T + f"\\boxed{{{gold} hours}}",
        T + f"\\boxed{{{gold} \\text{{ m}}}}",
        T + f"\\boxed{{{gold} < 3 / 4}}",
    ]


def build_cases() -> list[tuple[str, str]]:
    return [(gold, r) for gold in GOLDS for r in _responses(gold)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fastgrpo.models.tiny import build_tiny_qwen2

    return build_tiny_qwen2(tmp_path_factory.mktemp("tiny") / "model", num_layers=1)


def _record(i: int, response: str, gold: str) -> dict[str, Any]:
    return {
        "benchmark": "custom",
        "prompt_id": str(i),
        "sample_idx": 0,
        "response": response,
        "extracted": None,
        "answer": gold,
        "correct": False,
        "tokens": max(1, len(response)),
        "finish": "stop",
        "format": 0.0,
        "timeout": False,
        "scorer": "mathverify",
        "group": None,
    }


def test_cli_reference_scorer_agrees_with_papo_on_every_response(tiny_model: Path, tmp_path: Path) -> None:
    cases = build_cases()
    assert len(cases) >= 300
    data = tmp_path / "cases.jsonl"
    data.write_text(
        "".join(
            json.dumps({"id": str(i), "problem": "Q", "answer": g}) + "\n" for i, (g, _) in enumerate(cases)
        )
    )
    out = tmp_path / "run"
    out.mkdir()
    (out / "generations.jsonl").write_text(
        "".join(json.dumps(_record(i, r, g)) + "\n" for i, (g, r) in enumerate(cases))
    )
    args = ["eval", "--bench", "custom", "--data", str(data), "--id-key", "id", "--model", str(tiny_model)]
    args += ["--out", str(out), "--scorer", "reference", "--n", "1", "--workers", "2", "--timeout", "30"]
    res = CliRunner().invoke(app, [*args, "--no-progress"])
    assert res.exit_code == 0, res.output

    expected = [papo_oracle(r, g + "\n") for g, r in cases]
    recs = {r["prompt_id"]: r for r in map(json.loads, (out / "generations.jsonl").read_text().splitlines())}
    assert len(recs) == len(cases)
    assert all(recs[str(i)]["scorer"] == "reference" for i in range(len(cases)))  # re-graded, not generated
    got = [1.0 if recs[str(i)]["correct"] else 0.0 for i in range(len(cases))]
    disagree = [(cases[i], got[i], expected[i]) for i in range(len(cases)) if got[i] != expected[i]]
    assert not disagree, f"{len(disagree)} disagreements, e.g. {disagree[:5]}"
    # the set is varied: both verdicts are common
    assert 0.2 < sum(expected) / len(expected) < 0.8
    results = json.loads((out / "results.json").read_text())
    acc = results["benchmarks"]["custom"]["accuracy"]
    assert acc == pytest.approx(100.0 * sum(expected) / len(expected), abs=1e-3)
