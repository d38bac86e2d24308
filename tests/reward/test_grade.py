"""Grading edge cases: math-verify equivalence, multiple choice, format, combination."""

import pytest

from fastgrpo.reward import accuracy_reward, combine, format_reward, grade, math_equal

T = "<think>reasoning</think> "


@pytest.mark.parametrize(
    ("response", "gold", "acc"),
    [
        (T + r"\boxed{\frac{1}{2}}", "0.5", 1.0),  # LaTeX fraction vs decimal
        (T + r"\boxed{0.5}", r"\frac{1}{2}", 1.0),
        (T + r"\boxed{\frac12}", r"\frac{1}{2}", 1.0),
        (T + r"\boxed{\dfrac{1}{2}}", "1/2", 1.0),
        (T + r"\boxed{2.0}", "2", 1.0),
        (T + r"\boxed{1+x}", "x+1", 1.0),
        (T + r"\boxed{x=3}", "3", 1.0),
        (T + r"\boxed{1,000}", "1000", 1.0),
        (T + r"\boxed{\{2,1\}}", r"\{1,2\}", 1.0),
        (T + r"\boxed{[0,1)}", "[0,1)", 1.0),
        (T + r"\boxed{\frac{\sqrt{2}}{2}}", r"\sqrt{2}/2", 1.0),
        (T + r"\boxed{6}", r"6\text{ cm}", 1.0),
        (T + r"\boxed{$12$}", "12", 1.0),
        (T + r"\boxed{\boxed{7}}", "7", 1.0),  # nested boxes
        (T + r"\boxed{3.14159}", r"\pi", 0.0),
        (T + r"\boxed{5}", "6", 0.0),
        (T + r"\boxed{}", "6", 0.0),
        (r"<think>\boxed{3}</think> \boxed{4}", "3", 0.0),  # draft answer in thinking does not count
    ],
)
def test_math_accuracy(response, gold, acc):
    assert accuracy_reward(response, gold) == acc


def test_boxed_vs_plain():
    # a plain final answer still earns accuracy (math-verify finds it) but not format
    plain = grade(T + "The answer is 12.", "12")
    assert plain["accuracy"] == 1.0 and plain["format"] == 0.0
    assert plain["overall"] == pytest.approx(0.9)
    boxed = grade(T + r"The answer is \boxed{12}.", "12")
    assert boxed == {"overall": 1.0, "accuracy": 1.0, "format": 1.0}
    assert grade(T + "I do not know", "12")["accuracy"] == 0.0


def test_multiple_ground_truths():
    assert accuracy_reward(T + r"\boxed{4}", ["3", "4"]) == 1.0
    assert accuracy_reward(T + r"\boxed{5}", ["3", "4"]) == 0.0


@pytest.mark.parametrize(
    ("answer", "gold", "choices", "acc"),
    [
        ("B", "B", None, 1.0),
        ("(B)", "B", None, 1.0),
        ("B.", "B", None, 1.0),
        ("B)", "(B)", None, 1.0),
        (r"\text{B}", "B", None, 1.0),
        ("(B) 12 cm", "B", None, 1.0),
        ("C", "B", None, 0.0),
        ("12 cm", "B", None, 0.0),  # option text without the options: cannot map
        ("12 cm", "B", ["10 cm", "12 cm", "14 cm"], 1.0),  # option text matched to its letter
        ("10 cm", "B", ["10 cm", "12 cm", "14 cm"], 0.0),
        ("B", "12 cm", ["10 cm", "12 cm", "14 cm"], 1.0),  # gold given as option text
        (r"\frac12", "B", ["1", r"\frac{1}{2}"], 1.0),  # equivalent to the option's value
        ("0.5", "B", ["1", r"\frac{1}{2}"], 1.0),
        ("E", "B", ["1", "2"], 0.0),
    ],
)
def test_multiple_choice(answer, gold, choices, acc):
    assert accuracy_reward(T + r"\boxed{" + answer + "}", gold, choices=choices) == acc


def test_multiple_choice_without_box_uses_last_line():
    assert accuracy_reward(T + "After checking, the answer is (B).", "B") == 1.0
    assert accuracy_reward(T + "After checking, the answer is (C).", "B") == 0.0


def test_answer_template():
    r = "<think>x</think><answer>\\frac{1}{2}</answer>"
    assert grade(r, "0.5", template="think_answer") == {"overall": 1.0, "accuracy": 1.0, "format": 1.0}


@pytest.mark.parametrize(
    ("response", "template", "think_in_prompt", "fmt"),
    [
        (r"<think>a</think> \boxed{1}", "think_boxed", False, 1.0),
        (r"  <think></think>\boxed{1}", "think_boxed", False, 1.0),  # empty thinking = fast thinking, valid
        (r"<think>a</think> 1", "think_boxed", False, 0.0),
        (r"<think>a \boxed{1}</think> done", "think_boxed", False, 0.0),  # box only inside thinking
        (r"\boxed{1}", "think_boxed", False, 0.0),
        (r"<think>a</think><think>b</think>\boxed{1}", "think_boxed", False, 0.0),
        (r"x <think>a</think>\boxed{1}", "think_boxed", False, 0.0),
        (r"<think>a</think> \boxed{}", "think_boxed", False, 0.0),
        (r"a</think> \boxed{1}", "think_boxed", True, 1.0),
        (r"<think>a</think> \boxed{1}", "think_boxed", True, 0.0),
        ("<think>a</think>\n<answer>1</answer>\n", "think_answer", False, 1.0),
        ("<think>a</think><answer>1</answer> extra", "think_answer", False, 0.0),
        ("<think>a</think><answer> </answer>", "think_answer", False, 0.0),
        ("<think>a</think><answer>1</answer><answer>2</answer>", "think_answer", False, 0.0),
        ("<think>a</think>1", "think_answer", False, 0.0),
        (r"\boxed{1}", "boxed", False, 1.0),
        ("1", "boxed", False, 0.0),
        ("anything", "none", False, 1.0),
    ],
)
def test_format_reward(response, template, think_in_prompt, fmt):
    assert format_reward(response, template, think_in_prompt) == fmt


def test_format_reward_unknown_template():
    with pytest.raises(ValueError):
        format_reward("x", "xml")
    with pytest.raises(ValueError):
        grade("x", "1", template="xml")
    with pytest.raises(ValueError):
        grade("x", "1", mode="exact")


@pytest.mark.parametrize(
    ("acc", "fmt", "w", "overall"),
    [(1, 1, 0.1, 1.0), (1, 0, 0.1, 0.9), (0, 1, 0.1, 0.1), (1, 0, 0.5, 0.5), (0, 1, 0.0, 0.0)],
)
def test_combine(acc, fmt, w, overall):
    assert combine(acc, fmt, w) == pytest.approx(overall)
    assert grade(T + (r"\boxed{1}" if fmt else "1"), "1" if acc else "2", format_weight=w)[
        "overall"
    ] == pytest.approx(overall)


def test_overlong_answer_is_wrong_without_parsing():
    huge = "+".join(["x"] * 5000)
    assert math_equal("1", huge) is False


def test_reference_mode_through_grade():
    out = grade(r"<think>a</think> \boxed{B}", "B", mode="reference")
    assert out["accuracy"] == 1.0
    # no letter-to-option mapping in the reference rule
    assert grade(r"<think>a</think> \boxed{(B) 12}", "B", mode="reference")["accuracy"] == 0.0
    assert grade(r"<think>a</think> 5", "5", mode="reference")["accuracy"] == 0.0  # no box: wrong
