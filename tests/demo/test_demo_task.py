"""The demo task generator: deterministic, held-out test split, solutions that grade correct."""

from __future__ import annotations

import re

import pytest

from fastgrpo.data.io import load_table
from fastgrpo.demo import task
from fastgrpo.models.tiny import build_char_tokenizer


def test_splits_are_deterministic_and_seed_dependent() -> None:
    a = task.make_test_split(0, 20)
    assert a == task.make_test_split(0, 20)
    assert a != task.make_test_split(1, 20)
    tr = task.make_train_split(0, 300, exclude=a)
    assert tr == task.make_train_split(0, 300, exclude=a)
    sft = task.iter_sft_examples(0, 0.5, exclude=a)
    sft2 = task.iter_sft_examples(0, 0.5, exclude=a)
    assert [next(sft) for _ in range(50)] == [next(sft2) for _ in range(50)]


def test_test_split_is_held_out_and_covers_every_k() -> None:
    test = task.make_test_split(0, 50)
    assert {p.k for p in test} == set(range(task.K_MIN, task.K_MAX + 1))
    assert len({p.digits for p in test}) == len(test)  # distinct
    banned = {p.digits for p in test if p.k >= task.HOLDOUT_MIN_K}
    assert {len(d) for d in banned} == set(range(task.HOLDOUT_MIN_K, task.K_MAX + 1))
    train = task.make_train_split(0, 2000, exclude=test)
    assert not banned & {p.digits for p in train}
    sft = task.iter_sft_examples(0, 0.5, exclude=test)
    assert not banned & {next(sft)[0].digits for _ in range(2000)}
    assert {p.k for p in train} == set(range(task.K_MIN, task.K_MAX + 1))
    # k=2 (81 problems) is not held out: the test's k=2 questions are also trained on
    easy_test = {p.digits for p in test if p.k < task.HOLDOUT_MIN_K}
    assert easy_test and easy_test <= {p.digits for p in train}


DIGITS = [(3, 5), (9, 9, 9), (3, 5, 2, 7, 9, 4), (1, 1, 1, 1, 1, 1)]


def _think_lines(response: str) -> tuple[list[str], str]:
    m = re.fullmatch(r"<think>(.*)</think>\\boxed\{(\d+)\}", response, re.DOTALL)
    assert m is not None, response
    return m.group(1).split("\n"), m.group(2)


@pytest.mark.parametrize("digits", DIGITS)
def test_slow_carry_solution_lists_correct_running_sums(digits: tuple[int, ...]) -> None:
    p = task.Problem(digits)
    slow = task.slow_solution(p, style="carry")
    lines, boxed = _think_lines(slow)
    assert len(lines) == p.k - 1
    for i, line in enumerate(lines, start=2):  # "a+b=s,<numbers still to add>"
        m = re.fullmatch(r"(\d+)\+(\d)=(\d+)(?:,([\d+]+))?", line)
        assert m is not None, line
        a, b, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
        assert (a, b, s) == (sum(digits[: i - 1]), digits[i - 1], sum(digits[:i]))
        rest = [int(x) for x in m.group(4).split("+")] if m.group(4) else []
        assert rest == list(digits[i:])
    assert boxed == p.answer == str(sum(digits))
    assert task.is_slow(slow) and task.has_format(slow) and task.is_correct(slow, p.answer)


@pytest.mark.parametrize("digits", DIGITS)
def test_slow_check_solution_is_carry_then_a_subtraction_check(digits: tuple[int, ...]) -> None:
    p = task.Problem(digits)
    slow = task.slow_solution(p)  # the default style
    assert slow == task.slow_solution(p, style="check")
    lines, boxed = _think_lines(slow)
    carry_lines, _ = _think_lines(task.slow_solution(p, style="carry"))
    assert lines[:-1] == carry_lines
    a, b, c = map(int, re.fullmatch(r"(\d+)-(\d)=(\d+)", lines[-1]).groups())  # type: ignore[union-attr]
    assert (a, b, c) == (sum(digits), digits[-1], sum(digits[:-1]))  # undoes the last addition
    assert boxed == p.answer
    assert task.is_slow(slow) and task.has_format(slow) and task.is_correct(slow, p.answer)


@pytest.mark.parametrize("digits", DIGITS)
def test_slow_rewrite_solution_lists_correct_running_sums(digits: tuple[int, ...]) -> None:
    p = task.Problem(digits)
    lines, boxed = _think_lines(task.slow_solution(p, style="rewrite"))
    for i, line in enumerate(lines, start=2):  # "running sum + the numbers still to add"
        assert [int(x) for x in line.split("+")] == [sum(digits[:i]), *digits[i:]]
    assert lines[-1] == boxed == p.answer


@pytest.mark.parametrize("digits", DIGITS)
def test_slow_chain_solution_lists_correct_running_sums(digits: tuple[int, ...]) -> None:
    p = task.Problem(digits)
    slow = task.slow_solution(p, style="chain")
    lines, boxed = _think_lines(slow)
    assert len(lines) == p.k - 1
    running = digits[0]
    for line, d in zip(lines, digits[1:], strict=True):
        a, b, s = map(int, re.fullmatch(r"(\d+)\+(\d+)=(\d+)", line).groups())  # type: ignore[union-attr]
        assert (a, b, s) == (running, d, running + d)
        running += d
    assert boxed == p.answer
    assert task.is_slow(slow) and task.has_format(slow) and task.is_correct(slow, p.answer)
    with pytest.raises(ValueError, match="slow style"):
        task.slow_solution(p, style="nope")


def test_fast_solution_is_short_and_graded_like_slow() -> None:
    p = task.Problem((8, 9))
    fast = task.fast_solution(p)
    assert fast == "<think></think>\\boxed{17}"
    assert not task.is_slow(fast) and task.has_format(fast) and task.is_correct(fast, "17")
    assert not task.is_correct(fast, "16")
    assert not task.is_correct("17", "17")  # no box: wrong
    assert not task.has_format("\\boxed{17}")
    tok = build_char_tokenizer()
    n_tokens = [
        len(tok(f(task.Problem((1,) * 6)))["input_ids"]) for f in (task.slow_solution, task.fast_solution)
    ]
    assert n_tokens == [60, 5]  # slow is several times longer: that is the budget FAST-GRPO trades


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_write_splits_columns(tmp_path, fmt: str) -> None:
    paths = task.write_splits(tmp_path, seed=3, n_train=100, n_test_per_k=5, fmt=fmt)
    train = load_table(str(paths["train"]))
    test = load_table(str(paths["test"]))
    assert set(train.column_names) == {"problem", "answer", "k"}
    assert len(train) == 100 and len(test) == 25
    for r in list(train) + list(test):
        digits = [int(x) for x in r["problem"].split("+")]
        assert r["k"] == len(digits) and r["answer"] == str(sum(digits))
    again = task.write_splits(tmp_path / "again", seed=3, n_train=100, n_test_per_k=5, fmt=fmt)
    assert list(load_table(str(again["train"]))) == list(train)


def test_solutions_score_full_marks_with_the_training_reward() -> None:
    grader = pytest.importorskip("fastgrpo.reward.math_grader")
    for digits in [(4, 7), (9, 9, 9, 9, 9, 9)]:
        p = task.Problem(digits)
        for response in (task.slow_solution(p), task.fast_solution(p)):
            scores = grader.grade(response, p.answer)
            assert scores["accuracy"] == 1.0 and scores["format"] == 1.0, (response, scores)
        wrong = task.fast_solution(task.Problem((*digits[:-1], digits[-1] - 1)))
        assert grader.grade(wrong, p.answer)["accuracy"] == 0.0
