"""The default (math-verify) grader on answer spellings both PAPO and common sense accept (issue 16).

One test per class, on real-looking responses, with a near miss per class that must stay wrong.
"""

from __future__ import annotations

import pytest

from fastgrpo.reward import grade

THINK = (
    "<think>The figure shows triangle ABC with AB = AC, so the base angles are equal. "
    "The apex angle is 60, so each base angle is (180 - 60) / 2 = 60.</think>\n"
)


def acc(response: str, gold: str, choices: list[str] | None = None) -> float:
    return grade(response, gold, choices=choices, format_weight=0.0)["accuracy"]


@pytest.mark.parametrize(
    ("response", "gold", "ok"),
    [
        (THINK + r"Each base angle measures $\boxed{60°}$.", "60", True),
        (THINK + r"So $\angle B = \boxed{60}$ degrees.", "60°", True),
        (THINK + r"The angle is \boxed{60^\circ}.", "60°", True),
        (THINK + r"The angle is \boxed{60°}.", r"60^{\circ}", True),
        (THINK + r"Thus $x = \boxed{30\degree}$.", "30", True),
        (THINK + r"The angle is \boxed{35 °}.", "35", True),
        (THINK + r"Each base angle measures \boxed{61°}.", "60", False),
        (THINK + r"The angle is \boxed{60}.", "120°", False),
    ],
)
def test_degrees_against_plain_numbers_both_ways(response: str, gold: str, ok: bool) -> None:
    assert acc(response, gold) == float(ok)


OPTS = ["3 cm", "4 cm", "5 cm", "6 cm"]


@pytest.mark.parametrize(
    ("response", "ok"),
    [
        (THINK + r"The hypotenuse is 5 cm, which is option c. \boxed{c}", True),
        (THINK + r"Therefore the answer is \boxed{(c)}.", True),
        (THINK + r"\boxed{c. 5 cm}", True),
        (THINK + r"\boxed{(c) 5 cm}", True),
        (THINK + r"\boxed{b}", False),
        (THINK + r"\boxed{e}", False),  # not one of the 4 options
    ],
)
def test_lower_case_option_letters(response: str, ok: bool) -> None:
    assert acc(response, "C", OPTS) == float(ok)
    if ok:  # also when the options are not known: the gold is a letter
        assert acc(response.replace("5 cm", "").replace("c. ", "c"), "C") == 1.0


def test_a_lower_case_letter_is_still_a_variable_outside_multiple_choice() -> None:
    assert acc(THINK + r"\boxed{x}", "x") == 1.0
    assert acc(THINK + r"\boxed{b}", "a") == 0.0


@pytest.mark.parametrize(
    ("response", "gold", "choices", "ok"),
    [
        (THINK + r"Comparing all ten options, the best fit is \boxed{[F]}.", "F", None, True),
        (THINK + r"\boxed{[F]}", "F", [str(i) for i in range(10)], True),
        (THINK + r"The answer is \boxed{[B] 4 cm}", "B", OPTS, True),
        (THINK + r"\boxed{[b]}", "B", OPTS, True),
        (THINK + r"\boxed{[D]}", "B", OPTS, False),
    ],
)
def test_bracketed_letters(response: str, gold: str, choices: list[str] | None, ok: bool) -> None:
    assert acc(response, gold, choices) == float(ok)


@pytest.mark.parametrize(
    ("response", "gold", "ok"),
    [
        (THINK + r"She used $\boxed{4\frac{2}{3}}$ cups of flour.", r"\frac{14}{3}", True),
        (THINK + r"So the length is \boxed{4 2/3} feet.", r"\frac{14}{3}", True),
        (THINK + r"\boxed{\frac{14}{3}}", r"4\frac{2}{3}", True),
        (THINK + r"\boxed{4\dfrac{2}{3}}", "14/3", True),
        (THINK + r"\boxed{-2\frac{1}{2}}", "-2.5", True),
        (THINK + r"\boxed{4\frac{1}{3}}", r"\frac{14}{3}", False),
        (THINK + r"\boxed{4 1/3}", r"\frac{14}{3}", False),
    ],
)
def test_mixed_numbers(response: str, gold: str, ok: bool) -> None:
    assert acc(response, gold) == float(ok)


@pytest.mark.parametrize(
    ("response", "gold", "ok"),
    [
        (THINK + r"The total cost is $\boxed{\$10}$.", "10", True),
        (THINK + r"She earns \boxed{\$72.}", "72", True),
        (THINK + r"He pays \boxed{\$1{,}234.50} in total.", "1234.5", True),
        (THINK + r"\boxed{10}", r"\$10", True),
        (THINK + r"\boxed{\$10.00}", r"\$10", True),
        (THINK + r"\boxed{\$ 0.50}", "0.5", True),
        (THINK + r"The total cost is \boxed{\$12}.", "10", False),
    ],
)
def test_dollar_amounts(response: str, gold: str, ok: bool) -> None:
    assert acc(response, gold) == float(ok)
