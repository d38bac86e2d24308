"""A reward function that raises: tolerated up to a budget per step, reported with its inputs.

Why a budget and not "stop at the first error": a user's reward function often fails on a
few odd responses (an unparsable answer, an edge case); those score 0 and training goes on.
A function that fails on much of a step is broken, and training on its zeros would be
silent garbage, so the run stops and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastgrpo.log import get_logger

log = get_logger(__name__)


class RewardFunctionError(RuntimeError):
    """More than reward.max_error_fraction of a step's responses made the reward function raise."""


@dataclass
class RewardFailure:
    uid: int
    """Row of the prompt the response answered."""
    response: str
    error: str
    """`ExceptionType: message`, as the scorer recorded it."""


def _clip(text: str, n: int = 300) -> str:
    return text if len(text) <= n else text[:n] + f"... ({len(text)} chars)"


class RewardErrorBudget:
    """Per step: log the first `log_first` failures of the run, stop above `max_fraction`."""

    def __init__(self, reward_function: str, max_fraction: float, log_first: int = 3) -> None:
        self.reward_function, self.max_fraction, self.log_first = reward_function, max_fraction, log_first
        self.logged = 0

    def check(self, step: int, failures: list[RewardFailure], total: int) -> None:
        """Every rank calls it with the same (gathered) failures, so every rank stops or none does."""
        for f in failures:
            if self.logged >= self.log_first:
                break
            self.logged += 1
            more = "" if self.logged < self.log_first else " (further errors are only counted, in reward/errors)"
            log.warning("step %d: reward function %s raised %s; the response scores 0 (prompt row %d, response %r)%s",
                        step, self.reward_function, f.error, f.uid, _clip(f.response), more)
        if total and len(failures) / total > self.max_fraction:
            first = failures[0]
            raise RewardFunctionError(
                f"step {step}: the reward function {self.reward_function} raised on {len(failures)} of {total} "
                f"responses ({len(failures) / total:.0%} > reward.max_error_fraction={self.max_fraction}); first: "
                f"{first.error} (prompt row {first.uid}, response {_clip(first.response, 200)!r}). Fix the function, "
                "or raise reward.max_error_fraction to score such responses 0 and go on."
            )
