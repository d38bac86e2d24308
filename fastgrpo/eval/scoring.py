"""Eval grading through the training reward pool (`fastgrpo.reward.RewardScorer`).

Why the same pool: a pathological response must not hang an eval any more than
a training step, and "correct" must mean the same thing in validation curves and
in eval tables. Two modes:

* `mathverify` (default): the training grader - last `\\boxed{}` (after `</think>`),
  math-verify gold-first equivalence, and for questions with options the letter /
  option-text rules (`choices` are passed per sample).
* `reference`: PAPO-Eval's own rule (`compute_accuracy_boxed_math`, run through the
  `mathruler` package) against PAPO's label (gold + newline, `fastgrpo.reward.papo_label`),
  so numbers compare like for like with published tables.

Truncated thinking (lm-eval / lighteval convention): when the template thinks (the
response opens `<think>`, or the prompt already did: `think_in_prompt`) and the response
never closes it, the model has not answered yet. `truncated_thinking="wrong"` grades it
wrong whatever a draft box in the monologue says; `"search"` grades it like any other
response. Default: `wrong` for `mathverify`, `search` for `reference` (PAPO's code has no
such rule, and the reference mode must reproduce it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from fastgrpo.eval.data import EvalItem
from fastgrpo.reward import RewardScorer, extract_answer, papo_label, reference_extract

ScorerMode = Literal["mathverify", "reference"]
SCORER_MODES: tuple[str, ...] = ("mathverify", "reference")
TRUNCATED_THINKING_MODES: tuple[str, ...] = ("wrong", "search")
GRADER_VERSION = 2
"""2: `reference` through mathruler with PAPO's label; math-verify spelling fixes; truncated thinking."""


def default_truncated_thinking(mode: str) -> str:
    """`wrong` for the default scorer; `search` (no rule) for `reference`, which must stay PAPO's."""
    return "search" if mode == "reference" else "wrong"


def is_truncated_thinking(response: str, think_in_prompt: bool = False) -> bool:
    """The response is still inside its thinking span: `<think>` opened (here or by the prompt), no `</think>`."""
    return (think_in_prompt or "<think>" in response) and "</think>" not in response


def reference_label(item: EvalItem) -> str:
    """The ground truth PAPO-Eval grades this item against (gold as stored + newline)."""
    return item.label if item.label is not None else papo_label(item.answer)


@dataclass
class SampleScore:
    correct: bool
    extracted: str | None
    format: float
    timeout: bool
    error: str | None = None
    truncated_thinking: bool = False


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
        truncated_thinking: str | None = None,
        think_in_prompt: bool = False,
    ) -> None:
        if mode not in SCORER_MODES:
            raise ValueError(f"scorer must be one of {', '.join(SCORER_MODES)}, got {mode!r}")
        truncated_thinking = truncated_thinking or default_truncated_thinking(mode)
        if truncated_thinking not in TRUNCATED_THINKING_MODES:
            raise ValueError(
                f"truncated_thinking must be one of {', '.join(TRUNCATED_THINKING_MODES)}, got {truncated_thinking!r}"
            )
        self.mode = mode
        self.truncated_thinking = truncated_thinking
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

    @property
    def key(self) -> str:
        """What a stored sample's grade depends on (a stored sample with another key is re-graded): the mode,
        the grader's version (bumped when grading changes, so old files are re-graded), the options."""
        key = f"{self.mode}@{GRADER_VERSION}"
        if self.truncated_thinking != default_truncated_thinking(self.mode):
            key += f"+truncated_thinking={self.truncated_thinking}"
        return key + ("+think_in_prompt" if self.think_in_prompt else "")

    def score(self, responses: list[str], items: list[EvalItem]) -> list[SampleScore]:
        reference = self.mode == "reference"
        extras: list[dict[str, Any]] = [
            {
                "choices": None if reference else (list(it.options) or None),
                "mode": "reference" if reference else "math_verify",
                "template": self.template,
                "think_in_prompt": self.think_in_prompt,
            }
            for it in items
        ]
        golds = [reference_label(it) if reference else it.answer for it in items]
        res = self.pool.score(responses, golds, extras)
        out = []
        for i, r in enumerate(responses):
            cut = is_truncated_thinking(r, self.think_in_prompt)
            out.append(
                SampleScore(
                    correct=res.accuracy[i] >= 0.5 and not (cut and self.truncated_thinking == "wrong"),
                    extracted=self.extract(r),
                    format=res.format[i],
                    timeout=res.timed_out[i],
                    error=res.error_messages[i],
                    truncated_thinking=cut,
                )
            )
        return out
