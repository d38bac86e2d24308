"""`reference` grading: PAPO-Eval's `compute_accuracy_boxed_math`, through the `mathruler` package itself.

Why: a number from `--scorer reference` must compare like for like with
published PAPO-style tables, so the grading is not re-implemented: the PAPO
evaluation's three steps are run here against the same library,

1. whitespace around `<`, `>` and `/` is removed from the response
   (`re.sub(r"\\s*(<|>|/)\\s*", r"\\1", ...)`);
2. `mathruler.grader.extract_boxed_content` takes the content of the last
   `\\boxed{` (it returns the *string* "None" when there is no closed box);
3. `mathruler.grader.grade_answer(answer, label)` decides (normalised string
   equality, then sympy).

The label PAPO grades against is not the bare gold: its inference script
(LLaMA-Factory) decodes the assistant turn `"{gold}<|im_end|>\\n"` with special
tokens skipped, so the label is `gold + "\\n"` (see `papo_label`). The eval
harness builds that label (`fastgrpo.eval.scoring`); the training reward
`builtin:reference` grades against the bare gold, as EasyR1-style training does.
Quirks reproduced on purpose (docs/eval.md): with the newline, mathruler's
case-insensitive branch no longer matches (`yes` vs label `Yes\\n` is wrong);
a response with no box is graded as the string "None" (so it is *correct*
against a gold that is literally "None").
"""

from __future__ import annotations

import re

from mathruler.grader import extract_boxed_content, grade_answer

__all__ = ["NO_BOX", "papo_label", "reference_accuracy", "reference_extract"]

NO_BOX = "None"
"""What `mathruler.grader.extract_boxed_content` returns when it finds no closed `\\boxed{}`."""

_SPACE_AROUND = re.compile(r"\s*(<|>|/)\s*")


def papo_label(gold: object) -> str:
    """The ground truth exactly as PAPO-Eval's `run_eval` sees it: the gold text plus a newline.

    LLaMA-Factory's `vllm_infer` stores the label as the decoded assistant turn of the Qwen template,
    `"{gold}<|im_end|>\\n"` with special tokens skipped. A gold of None is rendered as LLaMA-Factory's
    string formatting would, "None".
    """
    return f"{gold}\n"


def _papo_predict(response: str) -> str:
    return _SPACE_AROUND.sub(r"\1", response)


def reference_extract(response: str) -> str | None:
    """The answer PAPO's rule grades (mathruler's last-box content), or None when there is no `\\boxed{`.

    An unclosed last box is shown as mathruler returns it, the string "None".
    """
    predict = _papo_predict(response)
    if "\\boxed{" not in predict:
        return None
    return extract_boxed_content(predict)


def reference_accuracy(response: str, ground_truth: str) -> float:
    """1.0 / 0.0: PAPO-Eval's `compute_accuracy_boxed_math(response, ground_truth)`, via mathruler."""
    answer = extract_boxed_content(_papo_predict(response))
    return 1.0 if grade_answer(answer, ground_truth) else 0.0
