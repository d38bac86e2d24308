"""Eval's format metric follows the chat template: with R1-Distill's (which opens `<think>` in the
generation prompt) a response holding only `</think>` is well formatted; with a template that opens
nothing it is not. The flag is found by rendering the template once and recorded in results.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fastgrpo.eval import EvalParams, custom_benchmark, evaluate
from fastgrpo.models.tiny import build_char_tokenizer
from tests.eval.conftest import ScriptedEngine
from tests.real_models import FIXTURES, R1_DISTILL

R1_TEMPLATE = json.loads((FIXTURES / R1_DISTILL / "tokenizer_config.json").read_text(encoding="utf-8"))[
    "chat_template"
]
ANSWERS = {"Compute 2 + 3.": "5", "Compute 4 + 4.": "8", "Compute 12 * 3.": "36", "Compute 7 * 8 - 6.": "50"}


def r1_style(prompt: str, j: int) -> str:
    """What an R1-Distill model writes after `<think>\\n`: reasoning, `</think>`, the boxed answer."""
    for q, a in ANSWERS.items():
        if q in prompt:
            return f"adding up\n</think>\n\nSo \\boxed{{{a}}}"
    raise AssertionError(f"unexpected prompt {prompt!r}")


@pytest.mark.parametrize("r1_template", [True, False])
def test_format_metric_follows_the_template(data_dir: Path, r1_template: bool) -> None:
    tokenizer = build_char_tokenizer()  # its own copy: the session fixture must keep its template
    if r1_template:
        tokenizer.chat_template = R1_TEMPLATE
    engine = ScriptedEngine(tokenizer, r1_style)
    spec = custom_benchmark(str(data_dir / "custom_k.jsonl"), prompt_key="problem", answer_key="answer")
    res = evaluate(None, tokenizer, [spec], EvalParams(n=2, max_new_tokens=64), None, engine=engine,
                   num_workers=0, progress=False)
    b = res["benchmarks"]["custom"]
    assert res["think_in_prompt"] is r1_template
    assert b["accuracy"] == 100.0  # the answer after </think> is read either way
    assert b["format_pct"] == (100.0 if r1_template else 0.0)


def test_an_explicit_flag_wins(tokenizer: Any, scripted: Any, data_dir: Path) -> None:
    spec = custom_benchmark(str(data_dir / "custom_k.jsonl"), prompt_key="problem", answer_key="answer")
    res = evaluate(None, tokenizer, [spec], EvalParams(n=1, max_new_tokens=64), None, engine=scripted(r1_style),
                   num_workers=0, progress=False, think_in_prompt=True)
    assert res["think_in_prompt"] is True and res["benchmarks"]["custom"]["format_pct"] == 100.0
