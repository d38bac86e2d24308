"""The `reference` grading mode is PAPO-Eval's `compute_accuracy_boxed_math` run through `mathruler`.

`papo_oracle` below is the TEST-SIDE ORACLE: a faithful transcription of PAPO-Eval's
`papo_eval/eval_utils.py::compute_accuracy_boxed_math` (xhguo7/PAPO-Eval), calling `mathruler`
exactly as that function does. The product code must agree with it; the expected verdicts in the
per-class tests are the ones PAPO's code gives (checked against the oracle as well).
"""

from __future__ import annotations

import re

import pytest
from mathruler.grader import extract_boxed_content, grade_answer

from fastgrpo.reward import grade, load_reward_function, papo_label, reference_accuracy, reference_extract


def papo_oracle(predict: str, ground_truth: str) -> float:
    """ORACLE (transcribed from PAPO-Eval's compute_accuracy_boxed_math; not product code)."""
    predict = re.sub(r"\s*(<|>|/)\s*", r"\1", predict)
    answer = extract_boxed_content(predict)
    return 1.0 if grade_answer(answer, ground_truth) else 0.0


def papo_oracle_label(gold: object) -> str:
    """ORACLE: LLaMA-Factory's label, the decoded `"{gold}<|im_end|>\\n"` with special tokens skipped."""
    return f"{gold}\n"


T = "<think>Let me look at the figure carefully.</think> "

# (response, gold, PAPO's verdict with its label gold + "\n"): the classes the issue lists
CLASSES = [
    # PAPO accepts: unit words on mathruler's list
    (T + r"It takes \boxed{5 hours}.", "5", True),
    (T + r"The side is \boxed{3 cm}", "3", True),
    (T + r"Area: \boxed{24 cm^2}", "24", True),
    (T + r"\boxed{12 meters}", "12", True),
    # dollar amounts
    (T + r"She pays \boxed{\$10}.", "10", True),
    (T + r"The total is \boxed{\$72}", "72", True),
    # mixed numbers
    (T + r"\boxed{4\frac{2}{3}}", r"\frac{14}{3}", True),
    # leading zeros, LaTeX thousands separators
    (T + r"\boxed{033}", "33", True),
    (T + r"\boxed{1{,}234}", "1234", True),
    # bracketed letters, sets
    (T + r"\boxed{[F]}", "F", True),
    (T + r"\boxed{\{1,2,3\}}", r"\{1,2,3\}", True),
    # PAPO rejects: degree sign, trailing period, thin-space thousands
    (T + r"\boxed{60°}", "60", False),
    (T + r"\boxed{Yes.}", "Yes", False),
    (T + r"\boxed{1\,234}", "1234", False),
    # ^\circ is on mathruler's list
    (T + r"\boxed{60^\circ}", "60", True),
    # the newline label: case-insensitive matching is lost
    (T + r"\boxed{yes}", "Yes", False),
    (T + r"\boxed{Yes}", "Yes", True),
    (T + r"\boxed{b}", "B", True),  # ... except where sympy sees one symbol: (b\n)-(b) = 0
    # set written without braces against a braced gold: the newline breaks it too
    (T + r"\boxed{\{1,2,3\}}", "1,2,3", False),
    # no box: mathruler grades the string "None"
    (T + "The answer is 5.", "5", False),
    (T + "I cannot tell.", "None", True),  # quirk: a "None" gold is matched by every box-less response
    # the whitespace rule, and the last box wins
    (T + r"\boxed{1 / 2}", r"\frac{1}{2}", True),
    (r"<think>maybe \boxed{7}</think> so \boxed{8}", "8", True),
    (r"<think>maybe \boxed{8}</think> so \boxed{7}", "8", False),
]


@pytest.mark.parametrize(("response", "gold", "papo"), CLASSES)
def test_each_class_gets_papos_verdict(response: str, gold: str, papo: bool) -> None:
    label = papo_label(gold)
    assert label == papo_oracle_label(gold)
    assert bool(papo_oracle(response, label)) is papo  # the verdict written above is PAPO's
    assert bool(reference_accuracy(response, label)) is papo
    out = grade(response, label, mode="reference", format_weight=0.0)
    assert bool(out["accuracy"]) is papo


def test_the_newline_is_what_changes_case_matching() -> None:
    r = T + r"\boxed{yes}"
    assert reference_accuracy(r, "Yes") == 1.0  # bare gold: mathruler lower-cases
    assert reference_accuracy(r, papo_label("Yes")) == 0.0  # PAPO's label
    assert papo_label(None) == "None\n"


def test_reference_extract_shows_what_mathruler_grades() -> None:
    assert reference_extract(r"a \boxed{1} b \boxed{ 2 }") == "2"
    assert reference_extract(r"\boxed{1 / 2}") == "1/2"
    assert reference_extract(r"\boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert reference_extract("<think>x</think> 5") is None
    assert reference_extract(r"\boxed{open") == "None"  # unclosed: mathruler's sentinel


def test_training_reward_uses_the_bare_gold() -> None:
    ref = load_reward_function("builtin:reference")
    out = ref([{"response": T + r"\boxed{yes}", "ground_truth": "Yes"}])
    assert out[0]["accuracy"] == 1.0
