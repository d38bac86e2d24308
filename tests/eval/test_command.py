"""`fastgrpo eval`'s option resolution (`fastgrpo.eval.command.plan_request`), without Typer or a model:
a flag wins over --config's value, which wins over the default; bad values raise with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastgrpo.config import load_config
from fastgrpo.eval.command import EvalRequest, default_out, plan_request
from fastgrpo.eval.prompts import EvalSetupError
from fastgrpo.eval.registry import UnknownBenchmarkError


def test_flags_win_over_the_config_which_wins_over_defaults() -> None:
    cfg = load_config(None, ["model.path=org/m", "eval.benchmarks=[text]", "eval.limit=3", "eval.scorer=reference",
                             "trainer.seed=7", "rollout.engine=hf", "eval.batch_size=5"])
    p = plan_request(EvalRequest(), cfg)
    assert [s.name for s in p.specs] == ["gsm8k", "math500", "aime2024"]
    assert (p.model_path, p.limit, p.scorer, p.params.seed, p.engine, p.batch_size) == ("org/m", 3, "reference", 7,
                                                                                         "hf", 5)
    assert p.out == Path("runs/eval/org__m") == default_out("org/m")
    p = plan_request(EvalRequest(bench=["gsm8k"], model="other/m", limit=1, scorer="mathverify", seed=2, n=4,
                                 out=Path("o")), cfg)
    assert ([s.name for s in p.specs], p.model_path, p.limit, p.scorer, p.params.seed, p.params.n, p.out) == (
        ["gsm8k"], "other/m", 1, "mathverify", 2, 4, Path("o"))
    p = plan_request(EvalRequest(bench=["gsm8k"], model="m"), None)
    assert (p.limit, p.scorer, p.params.seed, p.batch_size) == (None, "mathverify", 1, 32)


@pytest.mark.parametrize(
    ("request_", "error", "message"),
    [
        (EvalRequest(), EvalSetupError, "nothing to evaluate: give --bench NAMES"),
        (EvalRequest(bench=["gsm8k"]), EvalSetupError, "--model PATH is required"),
        (EvalRequest(bench=["gsm9k"], model="m"), UnknownBenchmarkError, "Did you mean 'gsm8k'"),
        (EvalRequest(bench=["gsm8k"], model="m", scorer="exact"), EvalSetupError, "--scorer must be mathverify"),
        (EvalRequest(bench=["gsm8k"], model="m", engine="tgi"), EvalSetupError,
         "--engine must be auto, hf or vllm, got 'tgi'"),
        (EvalRequest(bench=["gsm8k"], model="m", truncated_thinking="x"), EvalSetupError,
         "--truncated-thinking must be wrong or search"),
    ],
)
def test_bad_options_raise_with_the_fix(request_: EvalRequest, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as e:
        plan_request(request_, None)
    assert message in str(e.value)
