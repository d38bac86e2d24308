"""pass@k / maj@k (hand-computed), truncated thinking, the pooled vision-dependent accuracy, PAPO-Eval's
local file names, the not-found message, and report file permissions."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from math import comb
from pathlib import Path
from typing import Any

import pytest

from fastgrpo.data.io import DataSourceError
from fastgrpo.eval import EvalParams, custom_benchmark, evaluate, get_benchmark, load_items
from fastgrpo.eval.data import _local_candidates
from fastgrpo.eval.metrics import maj_at_k, pass_at_k
from fastgrpo.eval.registry import UnknownBenchmarkError
from fastgrpo.eval.scoring import is_truncated_thinking
from fastgrpo.rollout.base import PromptInput
from tests.eval.conftest import TRUNCATE


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 2, 1, Fraction(1, 2)),  # 1 - C(2,1)/C(4,1) = 1 - 2/4
        (4, 2, 2, Fraction(5, 6)),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (4, 2, 3, Fraction(1)),  # n - c < k: some correct sample is always drawn
        (4, 1, 3, Fraction(3, 4)),  # 1 - C(3,3)/C(4,3) = 1 - 1/4
        (8, 3, 2, Fraction(9, 14)),  # 1 - C(5,2)/C(8,2) = 1 - 10/28
        (8, 3, 4, Fraction(13, 14)),  # 1 - C(5,4)/C(8,4) = 1 - 5/70
        (8, 0, 8, Fraction(0)),
        (1, 1, 1, Fraction(1)),
    ],
)
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: Fraction) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(float(expected), abs=1e-12)


def test_pass_at_k_is_the_probability_over_all_k_subsets() -> None:
    """The closed form equals the share of k-subsets of the n samples holding a correct one."""
    from itertools import combinations

    for n in range(1, 8):
        for c in range(n + 1):
            samples = [1] * c + [0] * (n - c)
            for k in range(1, n + 1):
                subsets = list(combinations(range(n), k))
                hit = sum(any(samples[i] for i in s) for s in subsets)
                assert pass_at_k(n, c, k) == pytest.approx(hit / comb(n, k), abs=1e-12)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def _rec(i: int, correct: bool, extracted: str | None, cut: bool = False) -> dict[str, Any]:
    return {"sample_idx": i, "correct": correct, "extracted": extracted, "truncated_thinking": cut}


def test_maj_at_k_votes_on_the_first_k_samples() -> None:
    recs = [_rec(3, False, "6"), _rec(0, False, "6"), _rec(1, True, "5"), _rec(2, True, "5.0")]
    # by sample index: 6, 5, 5.0, 6 -> the two correct spellings are one answer
    assert [maj_at_k(recs, k) for k in (1, 2, 3, 4)] == [0.0, 0.0, 1.0, 0.0]  # ties: the first answer given
    spaced = [_rec(0, True, "8"), _rec(1, False, " 9"), _rec(2, False, "9 "), _rec(3, False, "9")]
    assert [maj_at_k(spaced, k) for k in (1, 2, 3, 4)] == [1.0, 1.0, 0.0, 0.0]
    silent = [_rec(0, False, None), _rec(1, False, "36", cut=True), _rec(2, True, "36")]
    assert [maj_at_k(silent, k) for k in (1, 2, 3)] == [0.0, 0.0, 1.0]  # no answer / cut thinking: no vote


# custom_k.jsonl: (question, answer, k) = (2+3, 5, 1), (4+4, 8, 1), (12*3, 36, 2), (7*8-6, 50, 3)
SCRIPT = {
    "Compute 2 + 3.": ["<think>a</think> \\boxed{6}", "\\boxed{5}", "\\boxed{5}", "\\boxed{6}"],
    "Compute 4 + 4.": ["\\boxed{8}", "\\boxed{ 9}", "\\boxed{9 }", "\\boxed{9}"],
    "Compute 12 * 3.": [
        "<think>I think it is \\boxed{36}, let me check" + TRUNCATE,
        "<think>hm</think> \\boxed{35}",
        "<think>a</think>\\boxed{36}",
        "<think>still checking \\boxed{36}",
    ],
    "Compute 7 * 8 - 6.": ["\\boxed{50}"] * 4,
}


def script(prompt: str, j: int) -> str:
    return next(a[j % 4] for q, a in SCRIPT.items() if q in prompt)


def _run(tokenizer: Any, engine: Any, spec: Any, out: Path, **kw: Any) -> dict[str, Any]:
    return evaluate(
        None, tokenizer, [spec], EvalParams(n=4, max_new_tokens=64), out, engine=engine, num_workers=0,
        progress=False, model_name="scripted", **kw,
    )


def test_pass_maj_and_truncated_thinking_in_results(
    tokenizer: Any, scripted: Any, data_dir: Path, tmp_path: Path
) -> None:
    spec = custom_benchmark(str(data_dir / "custom_k.jsonl"), group_key="k")
    res = _run(tokenizer, scripted(script), spec, tmp_path / "a")
    b = res["benchmarks"]["custom"]
    assert res["truncated_thinking"] == "wrong"
    # per question (c of 4): Q1 2, Q2 1, Q3 1 (two cut thinking spans graded wrong), Q4 4
    assert b["accuracy"] == 50.0
    p2 = (Fraction(5, 6) + Fraction(1, 2) + Fraction(1, 2) + 1) / 4
    assert b["pass_at_k"] == {"1": 50.0, "2": round(100 * float(p2), 4), "3": 87.5, "4": 100.0}
    assert b["maj_at_k"] == {"1": 50.0, "2": 50.0, "3": 50.0, "4": 25.0}
    assert (b["truncated_thinking"], b["truncated_thinking_pct"]) == (2, 12.5)
    g1 = b["groups"]["1"]
    assert g1["pass_at_k"]["1"] == 37.5 and g1["maj_at_k"]["4"] == 0.0
    assert b["groups"]["2"]["truncated_thinking"] == 2
    md = (tmp_path / "a" / "results.md").read_text()
    assert "## pass@k and maj@k" in md and "| custom | pass@k | 50.00 | 70.83 | 87.50 | 100.00 | 2 (12.50%) |" in md
    assert "| custom, k=1 | maj@k | 50.00 | 50.00 | 50.00 | 0.00 |" in md

    # `search`: the box inside the unfinished monologue counts; the samples are re-graded, not regenerated
    never = scripted(script, fail_after_calls=0)
    res = _run(tokenizer, never, spec, tmp_path / "a", truncated_thinking="search")
    assert never.generated == 0
    b = res["benchmarks"]["custom"]
    assert b["accuracy"] == 62.5 and b["truncated_thinking"] == 2 and res["truncated_thinking"] == "search"


def test_truncated_thinking_detection() -> None:
    assert is_truncated_thinking("<think>still going")
    assert not is_truncated_thinking("<think>done</think> \\boxed{1}")
    assert not is_truncated_thinking("no tags \\boxed{1}")
    assert is_truncated_thinking("the prompt opened it \\boxed{1}", think_in_prompt=True)
    assert not is_truncated_thinking("closed here</think> \\boxed{1}", think_in_prompt=True)


def _papo_row(i: int, gold: str) -> dict[str, Any]:
    return {
        "id": i,
        "messages": [
            {"role": "user", "content": f"<image>Question {i}?\nChoices:\nA:1\nB:2\nC:3"},
            {"role": "assistant", "content": gold},
        ],
        "images": [f"./data/images/AI4Math_MathVerse/{i % 2}.png"],
    }


def test_papo_file_names_pooled_vision_dependent_and_permissions(
    tokenizer: Any, scripted: Any, data_dir: Path, tmp_path: Path
) -> None:
    (data_dir / "papo").mkdir()
    rows = [_papo_row(i, g) for i, g in enumerate(["B", "A", "B", "B"])]
    (data_dir / "papo" / "AI4Math_MathVerse-vision-dependent.json").write_text(json.dumps(rows))
    papo_eval = tmp_path / "PAPO-Eval" / "data"  # PAPO-Eval's own name, with no wemath.jsonl beside it
    (papo_eval / "papo").mkdir(parents=True)
    img = str(data_dir / "images" / "AI4Math_MathVerse" / "0.png")
    wemath = [{**r, "images": [img]} for r in rows[:3]]
    (papo_eval / "papo" / "We-Math_We-Math.json").write_text(json.dumps(wemath))
    assert [it.answer for it in load_items(get_benchmark("wemath"), papo_eval)] == ["B", "A", "B"]

    def builder(messages: list[dict[str, Any]], images: list[Any]) -> PromptInput:
        ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        return PromptInput(prompt_ids=ids, images=images)

    old = os.umask(0o027)
    try:
        res = evaluate(
            None, tokenizer, ["clevr", "mmmu_pro", "mathverse_v"], EvalParams(n=1), tmp_path / "v",
            engine=scripted(lambda p, j: "<think>x</think> \\boxed{B}"), data_dir=data_dir,
            vision_builder=builder, num_workers=0, progress=False,
        )
    finally:
        os.umask(old)
    accs = {k: (b["accuracy"], b["questions"]) for k, b in res["benchmarks"].items()}
    assert accs == {"clevr": (0.0, 2), "mmmu_pro": (50.0, 2), "mathverse_v": (75.0, 4)}
    pooled = res["pooled"]["vision_dependent"]
    assert pooled["accuracy"] == 50.0 and pooled["questions"] == 8  # 4 of 8 questions; not (0+50+75)/3
    assert pooled["benchmarks"] == ["clevr", "mmmu_pro", "mathverse_v"]
    md = (tmp_path / "v" / "results.md").read_text()
    assert "vision_dependent (pooled: clevr, mmmu_pro, mathverse_v)* | 50.00" in md
    modes = {f.name: f.stat().st_mode & 0o777 for f in (tmp_path / "v").iterdir()}
    assert modes["generations.jsonl"] == 0o640
    assert {modes[f] for f in ("results.json", "results.md", "accuracy_vs_length.json")} == {0o640}


def test_not_found_lists_every_path_and_superclevr_is_gone(tmp_path: Path) -> None:
    spec = get_benchmark("wemath")
    with pytest.raises(DataSourceError) as e:
        load_items(spec, tmp_path)
    msg = str(e.value)
    tried = _local_candidates(spec, tmp_path)
    assert len(tried) > 12 and all(str(p) in msg for p in tried)
    assert str(tmp_path / "papo" / "We-Math_We-Math.json") in msg
    with pytest.raises(UnknownBenchmarkError):
        get_benchmark("superclevr")
    assert get_benchmark("clevr_count").name == "clevr"


def test_reference_label_is_the_stored_gold_plus_newline(data_dir: Path, tmp_path: Path) -> None:
    from fastgrpo.eval import EvalScorer

    items = load_items(get_benchmark("clevr"), data_dir)
    assert [it.label for it in items] == ["3\n", "10\n"]
    rows = [_papo_row(0, " Yes "), _papo_row(1, "Yes")]
    (tmp_path / "papo").mkdir()
    (tmp_path / "papo" / "AI4Math_MathVerse.json").write_text(json.dumps(rows))
    (tmp_path / "data").symlink_to(data_dir, target_is_directory=True)
    got = load_items(get_benchmark("mathverse"), tmp_path)
    assert [(it.answer, it.label) for it in got] == [("Yes", " Yes \n"), ("Yes", "Yes\n")]
    with EvalScorer("reference", num_workers=0) as ref:
        scores = ref.score(["<think>a</think> \\boxed{yes}"] * 2 + ["\\boxed{Yes}"], [got[1], got[1], got[0]])
    assert [s.correct for s in scores] == [False, False, True]
