"""Rule-based reward for one response: accuracy (math-verify + multiple choice) and format.

    overall = (1 - format_weight) * accuracy + format_weight * format

(EasyR1-style combination; format_weight = `reward.format_weight`, 0.1.)
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Sequence
from typing import Any

from fastgrpo.reward.extract import (
    extract_answer,
    extract_boxed,
    extract_choice_letter,
    is_choice_letter,
    match_option_text,
    strip_think,
)
from fastgrpo.reward.reference import reference_accuracy

__all__ = ["TEMPLATES", "accuracy_reward", "combine", "format_reward", "grade", "math_equal"]

TEMPLATES = ("think_boxed", "think_answer", "boxed", "none")
GRADE_MODES = ("math_verify", "reference")

# math-verify logs a warning when its own timeouts are disabled; we disable them
# on purpose in pool workers (the pool enforces the timeout), so keep logs quiet.
logging.getLogger("math_verify").setLevel(logging.ERROR)


# ----------------------------------------------------------------------------- format


def _think_ok(response: str, think_in_prompt: bool) -> tuple[bool, str]:
    """Check the thinking span; returns (ok, text after </think>)."""
    r = response.strip()
    n_open, n_close = r.count("<think>"), r.count("</think>")
    if think_in_prompt:
        ok = n_open == 0 and n_close == 1
    else:
        ok = r.startswith("<think>") and n_open == 1 and n_close == 1
    if not ok:
        return False, ""
    return True, r.split("</think>", 1)[1]


_ANSWER_ONLY = re.compile(r"\s*<answer>(.*?)</answer>\s*", re.DOTALL)


def format_reward(response: str, template: str = "think_boxed", think_in_prompt: bool = False) -> float:
    """1.0 when the response follows the template, else 0.0.

    Why: the thinking template makes fast/slow thinking measurable (the
    `<think>` span) and the answer machine-readable.

    * think_boxed: `<think>...</think>` exactly once, then a non-empty
      `\\boxed{...}` after it.
    * think_answer: `<think>...</think>` then exactly one non-empty
      `<answer>...</answer>` and nothing else.
    * boxed: a non-empty `\\boxed{}` anywhere. * none: always 1.0.

    `think_in_prompt=True` is for chat templates that already open `<think>`
    in the prompt (R1-distill): the response must then contain only `</think>`.
    An empty thinking span is valid (that is what fast thinking looks like).
    """
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    if template == "none":
        return 1.0
    if template == "boxed":
        b = extract_boxed(response)
        return 1.0 if b is not None and b.strip() else 0.0
    ok, tail = _think_ok(response, think_in_prompt)
    if not ok:
        return 0.0
    if template == "think_boxed":
        b = extract_boxed(tail)
        return 1.0 if b is not None and b.strip() else 0.0
    if template == "think_answer":
        if tail.count("<answer>") != 1 or tail.count("</answer>") != 1:
            return 0.0
        m = _ANSWER_ONLY.fullmatch(tail)
        return 1.0 if m is not None and m.group(1).strip() else 0.0
    raise AssertionError(template)  # unreachable: validated above


# ----------------------------------------------------------------------------- math-verify


def _mv_timeout(timeout: int | None) -> int | None:
    """math-verify's timeouts use signal.alarm: only legal in the main thread."""
    if timeout is None or threading.current_thread() is not threading.main_thread():
        return None
    return max(1, int(timeout))


def _strip_dollars(s: str) -> str:
    s = s.strip()
    while len(s) >= 2 and s.startswith("$") and s.endswith("$"):
        s = s[1:-1].strip()
    return s


def _parse(text: str, timeout: int | None, boxed: bool) -> list[Any]:
    from math_verify import parse

    try:
        if boxed:
            res = parse("\\boxed{" + text + "}", parsing_timeout=timeout)
            if res:
                return res
            return parse("$" + text + "$", parsing_timeout=timeout)
        return parse(text, parsing_timeout=timeout)
    except Exception:
        return []


@functools.lru_cache(maxsize=4096)
def _parse_gold_cached(gold: str, timeout: int | None) -> tuple[Any, ...]:
    # Ground truths repeat G times per group: parse each once per process.
    return tuple(_parse(_canonical(_strip_dollars(gold)), timeout, boxed=True))


_DEGREE = re.compile(r"\s*(?:°|\\degree(?![A-Za-z])|\\textdegree(?![A-Za-z]))")
_PLAIN_MIXED = re.compile(r"(-?)(\d+)\s+(\d+)\s*/\s*(\d+)")
_END_PERIOD = re.compile(r"(?<=\d)\.\s*$")


def _canonical(s: str) -> str:
    """Spellings math-verify misses, rewritten into ones it reads (gold and prediction alike).

    * `60°`, `60\\degree` -> `60^{\\circ}` (math-verify drops `^\\circ`, so a degree answer
      matches a plain number both ways);
    * a whole-answer plain mixed number `4 2/3` -> `4\\frac{2}{3}` (math-verify reads that as 14/3);
    * a sentence's full stop after a number, `\\$72.` -> `\\$72`.
    """
    s = _DEGREE.sub(r"^{\\circ}", s)
    m = _PLAIN_MIXED.fullmatch(s.strip())
    if m:
        s = f"{m.group(1)}{m.group(2)}\\frac{{{m.group(3)}}}{{{m.group(4)}}}"
    return _END_PERIOD.sub("", s)


def _loose(s: str) -> str:
    s = re.sub(r"\\[,;:! ]|\\left|\\right|\s+", "", s)
    return s.rstrip(".").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")


def math_equal(
    gold: str,
    pred: str | None,
    fallback_text: str | None = None,
    timeout: int | None = 5,
    max_answer_chars: int = 1000,
) -> bool:
    """Gold-first math-verify equivalence: verify(parse(gold), parse(pred)).

    Why: math-verify handles LaTeX/plain equivalence (`\\frac{1}{2}` = 0.5,
    sets, intervals, equations like `x=3`). A cheap exact-string check comes
    first. `pred` is the explicit answer (box/tag content); when None, the
    last expression math-verify finds in `fallback_text` is used. Answers far
    longer than any plausible one (`max_answer_chars`, or 4x the gold) are
    wrong without parsing - they are where sympy blows up.
    """
    from math_verify import verify

    gold = str(gold)
    t = _mv_timeout(timeout)
    if pred is not None:
        pred = _strip_dollars(pred)
        if not pred:
            return False
        if _loose(pred) == _loose(_strip_dollars(gold)):
            return True
        if len(pred) > max(max_answer_chars, 4 * len(gold)):
            return False
        p = _parse(_canonical(pred), t, boxed=True)
    elif fallback_text:
        p = _parse(fallback_text[-max(max_answer_chars, 4 * len(gold)) :], t, boxed=False)
    else:
        return False
    g = list(_parse_gold_cached(gold, t))
    if not g or not p:
        return False
    try:
        return bool(verify(g, p, timeout_seconds=t))
    except Exception:
        return False


# ----------------------------------------------------------------------------- accuracy


def _choice_accuracy(
    answer: str | None, tail: str, gold: str, choices: Sequence[str] | None, timeout: int | None
) -> float | None:
    """Multiple-choice grading; None when the question is not multiple choice."""
    n = len(choices) if choices else None
    gold_letter = is_choice_letter(gold, n)
    gold_idx_text = None
    if gold_letter is None and choices:
        gold_letter = match_option_text(gold, choices)
    if gold_letter is None:
        return None
    if choices:
        gi = ord(gold_letter) - ord("A")
        if 0 <= gi < len(choices):
            gold_idx_text = re.sub(r"^\(?[A-Z]\)?[.:)]\s*", "", str(choices[gi]).strip())
    pred_src = answer if answer is not None else (tail.strip().splitlines() or [""])[-1]
    pred_letter = extract_choice_letter(pred_src, n, allow_lower=True)
    if pred_letter is None and choices:
        pred_letter = match_option_text(pred_src, choices)
        if pred_letter is None and answer is not None and gold_idx_text:
            # e.g. answer "0.5" against option "\frac{1}{2}"
            return 1.0 if math_equal(gold_idx_text, answer, timeout=timeout) else 0.0
    return 1.0 if pred_letter == gold_letter else 0.0


def accuracy_reward(
    response: str,
    ground_truth: str | Sequence[str],
    template: str = "think_boxed",
    choices: Sequence[str] | None = None,
    timeout: int | None = 5,
    max_answer_chars: int = 1000,
) -> float:
    """1.0 when the response's final answer matches any ground truth, else 0.0.

    Why: the verifiable reward of RL for reasoning. Multiple choice is
    detected from the gold (a letter, or an option's text when `choices` are
    given); the prediction may be a letter ("B", "(B)", "B.", "Option B") or
    the option's text. Everything else goes through math-verify.
    """
    golds = [ground_truth] if isinstance(ground_truth, str | int | float) else list(ground_truth)
    answer = extract_answer(response, template)
    tail = strip_think(response)
    for gold in golds:
        gold_s = str(gold).strip()
        mc = _choice_accuracy(answer, tail, gold_s, choices, timeout)
        if mc is not None:
            if mc > 0:
                return 1.0
            continue
        if math_equal(gold_s, answer, fallback_text=tail, timeout=timeout, max_answer_chars=max_answer_chars):
            return 1.0
    return 0.0


def combine(accuracy: float, fmt: float, format_weight: float = 0.1) -> float:
    """overall = (1 - format_weight) * accuracy + format_weight * format."""
    return (1.0 - format_weight) * accuracy + format_weight * fmt


def grade(
    response: str,
    ground_truth: str | Sequence[str],
    template: str = "think_boxed",
    format_weight: float = 0.1,
    choices: Sequence[str] | None = None,
    mode: str = "math_verify",
    think_in_prompt: bool = False,
    timeout: int | None = 5,
    max_answer_chars: int = 1000,
) -> dict[str, float]:
    """Score one response: {"overall", "accuracy", "format"}.

    Why: the single-response unit the pool runs (and the eval harness can call
    directly). `mode="reference"` grades accuracy with the PAPO reference
    rule instead of math-verify. `timeout` is math-verify's own per-call limit
    in seconds (signal based; main thread only, ignored elsewhere; None
    disables it - the pool does that and enforces its own per-response timeout).
    """
    if template not in TEMPLATES:
        raise ValueError(f"template must be one of {TEMPLATES}, got {template!r}")
    if mode == "reference":
        gts = [ground_truth] if isinstance(ground_truth, str | int | float) else list(ground_truth)
        acc = max((reference_accuracy(response, str(g)) for g in gts), default=0.0)
    elif mode == "math_verify":
        acc = accuracy_reward(response, ground_truth, template, choices, timeout, max_answer_chars)
    else:
        raise ValueError(f"mode must be one of {GRADE_MODES}, got {mode!r}")
    fmt = format_reward(response, template, think_in_prompt)
    return {"overall": combine(acc, fmt, format_weight), "accuracy": acc, "format": fmt}
