"""The data of one training step, typed: scored `Group`s from the rollout, a `StepBatch` for the update.

rollout + scores -> `Group` (one prompt, its G responses and their scores)
kept groups + every candidate -> `StepBatch.build` (one call into `fastgrpo.algo.step.fast_grpo_step`)
-> `StepBatch` ([B, G] advantages, KL coefficients, rewards; [B] easy/hard)
-> `StepBatch.samples()` -> one `Sample` per response, what the policy update packs and weighs.

Why typed: the update, its micro-batch plan, the packing and the entropy buckets read named fields
instead of positions in tuples, and the group math has one entry point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from fastgrpo.algo.difficulty import DifficultyWindow
from fastgrpo.algo.overlong import truncation_step
from fastgrpo.algo.step import fast_grpo_step
from fastgrpo.config.schema import AlgorithmConfig
from fastgrpo.data.prompts import PromptExample

__all__ = ["Group", "GroupScores", "Sample", "StepBatch", "TruncationSettings"]


@dataclass
class GroupScores:
    """The reward scorer's scores of a group's responses, one per response."""

    accuracy: list[float]
    format: list[float]
    overall: list[float]
    """The reward: accuracy and format combined (reward.format_weight)."""

    def by_name(self, name: str) -> list[float]:
        """`accuracy`, `format` or `overall` by name (algorithm.filter_key)."""
        if name not in ("accuracy", "format", "overall"):
            raise ValueError(f"no score named {name!r}; choose accuracy, format or overall")
        return getattr(self, name)


@dataclass
class Group:
    """One prompt and its G scored responses."""

    example: PromptExample
    response_ids: list[list[int]]
    texts: list[str]
    scores: GroupScores
    errors: list[str | None] | None = None  # the reward function's exception per response (None: scored)
    rollout_logprobs: list[list[float]] | None = None
    """The engine's log-prob of each sampled token (None when the engine gives none)."""

    @property
    def lengths(self) -> list[int]:
        return [len(r) for r in self.response_ids]


@dataclass(frozen=True)
class Sample:
    """One response as the policy update sees it."""

    example: PromptExample
    response_ids: list[int]
    advantage: float
    kl_coef: float
    is_hard: bool
    rollout_logprobs: list[float] | None
    """The engine's sampling log-probs of `response_ids` (None when the engine gives none)."""
    in_loss: bool = True
    """False: a truncated response under algorithm.mask_truncated (scored, but out of the loss)."""


@dataclass(frozen=True)
class TruncationSettings:
    """What `StepBatch.build` needs to find truncated responses (no EOS within data.max_response_length)."""

    max_response_length: int = 2**62
    """data.max_response_length (the default: no response counts as truncated)."""
    eos_token_ids: tuple[int, ...] = ()
    overlong_buffer_len: int = 0
    overlong_penalty_factor: float = 1.0


@dataclass
class StepBatch:
    """The kept groups of one step with their group math; per-sample tensors are [B, G], `is_hard` [B]."""

    groups: list[Group]
    advantages: torch.Tensor
    kl_coef: torch.Tensor
    rewards: torch.Tensor
    is_hard: torch.Tensor
    in_loss: torch.Tensor
    """[B, G] bool: False for the responses algorithm.mask_truncated drops from the loss."""

    @classmethod
    def build(cls, groups: list[Group], candidates: list[Group], algorithm: AlgorithmConfig,
              window: DifficultyWindow | None = None, truncation: TruncationSettings | None = None,
              ) -> tuple[StepBatch, dict[str, float]]:
        """Difficulty, easy/hard split, thinking reward, advantages and KL coefficients of the kept `groups`.

        `candidates` is every group generated this step (the kept ones among them, in the same order);
        `window` is the running difficulty window for `algorithm.difficulty_population: window`;
        `truncation`: what makes a response truncated, and the overlong penalty / loss mask rules.
        """
        a = algorithm
        kept_ids = {id(g) for g in groups}
        kept = torch.tensor([id(g) in kept_ids for g in candidates])
        if int(kept.sum()) != len(groups):
            raise ValueError("every kept group must be one of the candidates")

        def scores(key: str) -> torch.Tensor:
            return torch.tensor([g.scores.by_name(key) for g in candidates], dtype=torch.float32)

        kept_groups = [g for g in candidates if id(g) in kept_ids]  # candidate order, as the algo's rows
        t = truncation or TruncationSettings()
        trunc = truncation_step([g.response_ids for g in kept_groups], t.max_response_length, t.eos_token_ids,
                                t.overlong_buffer_len, t.overlong_penalty_factor, a.mask_truncated)
        overall = scores("overall")
        overall[kept] += trunc.penalty  # DAPO's soft overlong penalty joins the reward of the kept groups
        out = fast_grpo_step(
            overall=overall, accuracy=scores("accuracy"), format_reward=scores("format"),
            response_length=torch.tensor([g.lengths for g in candidates], dtype=torch.float32),
            complexity=torch.tensor([g.example.complexity for g in candidates], dtype=torch.float32),
            kept=kept, difficulty_window=window if a.difficulty_population == "window" else None,
            adv_estimator=a.adv_estimator, thinking_reward=a.thinking_reward,
            thinking_reward_weight=a.thinking_reward_weight, easy_percentile=a.easy_percentile,
            kl_type=a.kl_type, kl_coef=a.kl_coef, kl_min_coef=a.kl_min_coef, kl_max_coef=a.kl_max_coef,
            kl_direction=a.kl_coef_direction,
        )
        batch = cls(kept_groups, out.advantages, out.kl_coef, out.rewards, out.is_hard, trunc.keep)
        return batch, {**out.metrics, **trunc.metrics(out.is_hard)}

    def samples(self) -> list[Sample]:
        """One `Sample` per response, group by group (the samples of one prompt are contiguous)."""
        return [
            Sample(g.example, r, float(self.advantages[gi, j]), float(self.kl_coef[gi, j]), bool(self.is_hard[gi]),
                   None if g.rollout_logprobs is None else g.rollout_logprobs[j], bool(self.in_loss[gi, j]))
            for gi, g in enumerate(self.groups) for j, r in enumerate(g.response_ids)
        ]

    def records(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` responses as samples.jsonl rows (prompt, response, answer, scores)."""
        out: list[dict[str, Any]] = []
        for gi, g in enumerate(self.groups):
            for j in range(len(g.texts)):
                if len(out) >= limit:
                    return out
                out.append({
                    "uid": g.example.uid, "prompt": g.example.prompt_text, "response": g.texts[j],
                    "answer": g.example.answer, "accuracy": g.scores.accuracy[j],
                    "reward": float(self.rewards[gi, j]), "length": g.lengths[j],
                    "hard": bool(self.is_hard[gi]),
                    **({"reward_error": g.errors[j]} if g.errors and g.errors[j] else {}),
                })
        return out
