"""The `reference` grading mode (PAPO rule, reimplemented)."""

import pytest

from fastgrpo.reward.reference import (
    reference_accuracy,
    reference_extract,
    reference_grade_answer,
    reference_normalize,
)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (r"a \boxed{1} b \boxed{2}", "2"),
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"\boxed{\boxed{3}}", "3"),  # last `\boxed{` occurrence is the inner one
        (r"\boxed{a \boxed{b} c}", "b"),
        (r"\boxed{1 / 2}", "1/2"),  # spaces around / removed first
        (r"\boxed{x < 3}", "x<3"),
        ("<think>x</think> 5", None),
        (r"\boxed{open", None),
    ],
)
def test_reference_extract(response, expected):
    assert reference_extract(response) == expected


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        (r"\dfrac{1}{2}", r"\frac{1}{2}"),
        (r"\frac12", r"\frac{1}{2}"),
        (r"\sqrt2", r"\sqrt{2}"),
        (r"\left( 1, 2 \right)", "(1,2)"),
        (r"\text{Yes}", "yes"),
        (r"6 \text{ cm}", "6"),
        (r"90^\circ", "90"),
        (r"50\%", "50"),
        ("x = 3", "3"),
        ("1,000", "1000"),
        ("2.50", "2.5"),
        ("3.0", "3"),
        (".5", "0.5"),
        ("7.", "7"),
        ("$4$", "4"),
    ],
)
def test_reference_normalize(raw, norm):
    assert reference_normalize(raw) == norm


@pytest.mark.parametrize(
    ("given", "gold", "ok"),
    [
        ("1/2", r"\frac{1}{2}", True),  # sympy equivalence
        ("0.5", r"\frac{1}{2}", True),
        (r"\frac{2}{4}", r"\frac{1}{2}", False),  # two plain fractions must be written alike
        ("28/4", "7", False),  # an integer answer must be written as one
        ("7.0", "7", True),
        ("1e3", "1000", True),
        (r"2\sqrt{2}", r"\sqrt{8}", True),
        ("x+1", "1+x", True),
        ("(0.5,2)", r"(\frac{1}{2}, 2)", True),  # element-wise for tuples
        ("(1,2)", "(2/2, 4/2)", False),  # integer elements must be written as integers
        ("(1,2)", "[1,2]", False),  # bracket type matters
        ("(1,2,3)", "(1,2)", False),
        ("3", "4", False),
        ("B", "B", True),
        ("b", "B", True),  # normalisation lower-cases
        (None, "1", False),
        ("", "1", False),
        ("1", "", False),
        ("x^{10000}", "x^{10000}", True),  # equal strings: no sympy needed
        ("x^{10000}", "x^{9999}*x", False),  # too big to evaluate safely -> not equal
    ],
)
def test_reference_grade_answer(given, gold, ok):
    assert reference_grade_answer(given, gold) is ok


def test_reference_accuracy_end_to_end():
    assert reference_accuracy(r"<think>a</think> so \boxed{ 1/2 }", "0.5") == 1.0
    assert reference_accuracy("<think>a</think> so 1/2", "0.5") == 0.0
    # "(B)" is a one-element bracket whose element equals "B"; but an option's
    # text is never mapped to its letter
    assert reference_accuracy(r"\boxed{(B)}", "B") == 1.0
    assert reference_accuracy(r"\boxed{B. 12 cm}", "B") == 0.0
    assert reference_accuracy(r"\boxed{12 cm}", "B") == 0.0
