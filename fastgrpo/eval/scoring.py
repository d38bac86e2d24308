"""Eval grading through the training reward pool (`fastgrpo.reward.RewardScorer`).

Why the same pool: a pathological response must not hang an eval any more than
a training step, and "correct" must mean the same thing in validation curves and
in eval tables. Two modes:

* `mathverify` (default): the training grader - last `\\boxed{}` (after `</think>`),
  math-verify gold-first equivalence, and for questions with options the letter /
  option-text rules (`choices` are passed per sample).
* `reference`: the PAPO reference rule (whitespace around `<`, `>`, `/` removed,
  last `\\boxed{}`, normalised string then sympy equality, no option mapping), so
  numbers compare like for like with published tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastgrpo.eval.data import EvalItem
from fastgrpo.reward import RewardScorer, extract_answer, reference_extract

ScorerMode = Literal["mathverify", "reference"]
SCORER_MODES: tuple[str, ...] = ("mathverify", "reference")


@dataclass
class SampleScore:
    correct: bool
    extracted: str | None
    format: float
    timeout: bool
    error: str | None = None


class EvalScorer:
    """Grade responses against items in the reward pool; a context manager like `RewardScorer`.

    Pass `reward_scorer` to reuse a running pool (it must use a `builtin:` reward function).
    """

    def __init__(
        self,
        mode: str = "mathverify",
        template: str = "think_boxed",
        num_workers: int = 2,
        timeout_s: float = 5.0,
        reward_scorer: RewardScorer | None = None,
        think_in_prompt: bool = False,
    ) -> None:
        if mode not in SCORER_MODES:
            raise ValueError(f"scorer must be one of {', '.join(SCORER_MODES)}, got {mode!r}")
        self.mode = mode
        self.template = template
        self.think_in_prompt = think_in_prompt
        """The chat template opens `<think>` (`data.chat_template.generation_prompt_opens_think`): format
        then expects only `</think>`."""
        self._owned = reward_scorer is None
        self.pool = reward_scorer or RewardScorer(
            reward_function="builtin:math",
            template=template,
            format_weight=0.0,
            timeout_s=timeout_s,
            num_workers=num_workers,
        )

    def __enter__(self) -> EvalScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self.pool.close()

    def extract(self, response: str) -> str | None:
        """The answer as this mode reads it (what generations.jsonl shows as `extracted`)."""
        if self.mode == "reference":
            return reference_extract(response)
        return extract_answer(response, self.template)

    def score(self, responses: list[str], items: list[EvalItem]) -> list[SampleScore]:
        mode = "reference" if self.mode == "reference" else "math_verify"
        extras: list[dict[str, Any]] = [
            {"choices": list(it.options) or None, "mode": mode, "template": self.template,
             "think_in_prompt": self.think_in_prompt}
            for it in items
        ]
        res = self.pool.score(responses, [it.answer for it in items], extras)
        return [
            SampleScore(
                correct=res.accuracy[i] >= 0.5,
                extracted=self.extract(r),
                format=res.format[i],
                timeout=res.timed_out[i],
                error=res.error_messages[i],
            )
            for i, r in enumerate(responses)
        ]
