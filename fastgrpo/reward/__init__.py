"""Rewards for FAST-GRPO: answer extraction, math-verify grading, format reward,
the PAPO `reference` rule, custom reward functions and a timeout-safe process pool.

Typical use in the trainer::

    with RewardScorer(reward_function=cfg.reward.reward_function, template=cfg.reward.template,
                      format_weight=cfg.reward.format_weight, timeout_s=cfg.reward.timeout_s,
                      num_workers=cfg.reward.num_workers) as scorer:
        for step in ...:
            result = scorer.score(responses, ground_truths, extras)
            result.accuracy, result.format, result.overall, result.timeouts
"""

from fastgrpo.reward.custom import builtin_math_reward, load_reward_function, normalize_reward_output
from fastgrpo.reward.extract import (
    extract_all_boxed,
    extract_answer,
    extract_answer_tag,
    extract_boxed,
    extract_choice_letter,
    is_choice_letter,
    match_option_text,
    normalize_option_text,
    strip_think,
)
from fastgrpo.reward.math_grader import TEMPLATES, accuracy_reward, combine, format_reward, grade, math_equal
from fastgrpo.reward.reference import papo_label, reference_accuracy, reference_extract
from fastgrpo.reward.scorer import RewardScorer, ScoreResult

__all__ = [
    "TEMPLATES",
    "RewardScorer",
    "ScoreResult",
    "accuracy_reward",
    "builtin_math_reward",
    "combine",
    "extract_all_boxed",
    "extract_answer",
    "extract_answer_tag",
    "extract_boxed",
    "extract_choice_letter",
    "format_reward",
    "grade",
    "is_choice_letter",
    "load_reward_function",
    "match_option_text",
    "math_equal",
    "normalize_option_text",
    "normalize_reward_output",
    "papo_label",
    "reference_accuracy",
    "reference_extract",
    "strip_think",
]
