"""Truncated responses: which ones hit the length cap, DAPO's soft overlong penalty, and their metrics.

A response cut at data.max_response_length never showed its ending, so its reward says little about it
(DAPO, arXiv 2503.14476, section 3.4). Two remedies, both off by default:

* `algorithm.mask_truncated`: drop such responses from the loss (`loss_keep_mask`); they still count in
  their group's accuracy, so the pass rate, difficulty and advantages are those of the whole group.
* `reward.overlong_buffer_len` / `overlong_penalty_factor`: the soft overlong punishment added to the
  overall reward, linear over the last `buffer_len` tokens before the cap (`overlong_penalty`).

Pure functions on lists and tensors; the trainer calls them once per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from fastgrpo.algo._utils import as_float_tensor

__all__ = ["Truncation", "is_truncated", "loss_keep_mask", "overlong_penalty", "truncation_metrics", "truncation_step"]


def is_truncated(response_ids: Sequence[Sequence[int]], max_response_length: int,
                 eos_token_ids: Iterable[int]) -> torch.Tensor:
    """[N] bool: the response has max_response_length tokens and does not end with an EOS token.

    Why "and no EOS": a response whose EOS is its last allowed token finished on its own. Engines stop at
    EOS and keep it as the last token (`RolloutOutput.response_ids`), so the last token is all that is
    needed (TRL's mask_truncated_completions tests the same).
    """
    eos = set(int(e) for e in eos_token_ids)
    return torch.tensor([len(r) >= max_response_length and (not r or int(r[-1]) not in eos)
                         for r in response_ids], dtype=torch.bool)


def overlong_penalty(response_length: torch.Tensor | Sequence, max_response_length: int, buffer_len: int,
                     penalty_factor: float = 1.0) -> torch.Tensor:
    """DAPO's soft overlong punishment per response (same shape as `response_length`), <= 0.

    0 up to max_response_length - buffer_len tokens, then -(L - (max - buffer_len)) / buffer_len * factor:
    -factor at the cap. The length counts the EOS token, as verl's DAPO reward manager does (its
    `valid_response_length`). buffer_len 0 disables it (all zeros).
    """
    lengths = as_float_tensor(response_length)
    if buffer_len <= 0:
        return torch.zeros_like(lengths)
    if buffer_len > max_response_length:
        raise ValueError(f"buffer_len ({buffer_len}) must be <= max_response_length ({max_response_length})")
    exceed = lengths - float(max_response_length - buffer_len)
    return (-exceed / float(buffer_len) * float(penalty_factor)).clamp(max=0.0)


def loss_keep_mask(truncated: torch.Tensor, mask_truncated: bool) -> torch.Tensor:
    """Which responses enter the loss: all, or (mask_truncated) the untruncated ones. Same shape, bool."""
    t = torch.as_tensor(truncated, dtype=torch.bool)
    return ~t if mask_truncated else torch.ones_like(t)


def truncation_metrics(truncated: torch.Tensor, is_hard: torch.Tensor, penalty: torch.Tensor | None = None
                       ) -> dict[str, float]:
    """`{all,easy,hard}/truncated_fraction` over a step's responses ([B, G] truncated, [B] is_hard), and with a
    penalty `reward/overlong_penalty` (its mean) and `reward/overlong_fraction` (responses penalized).

    An empty bucket (no easy or no hard group) gives no key, as the other bucket metrics.
    """
    t = torch.as_tensor(truncated, dtype=torch.bool)
    hard = torch.as_tensor(is_hard, dtype=torch.bool).reshape(-1)
    if t.dim() != 2 or t.shape[0] != hard.shape[0]:
        raise ValueError(f"truncated must be [B, G] with B = len(is_hard) ({hard.shape[0]}), got {tuple(t.shape)}")
    out: dict[str, float] = {}
    if t.numel():
        out["all/truncated_fraction"] = float(t.float().mean())
    for name, sel in (("easy", ~hard), ("hard", hard)):
        if bool(sel.any()) and t.shape[1]:
            out[f"{name}/truncated_fraction"] = float(t[sel].float().mean())
    if penalty is not None and penalty.numel():
        out["reward/overlong_penalty"] = float(penalty.float().mean())
        out["reward/overlong_fraction"] = float((penalty < 0).float().mean())
    return out


class Truncation:
    """One step's truncation facts for [B, G] responses, from `truncation_step`."""

    def __init__(self, truncated: torch.Tensor, penalty: torch.Tensor, keep: torch.Tensor, penalized: bool) -> None:
        self.truncated = truncated
        """[B, G] bool: hit max_response_length without EOS."""
        self.penalty = penalty
        """[B, G] float, <= 0: DAPO's overlong penalty, to add to the overall reward (zeros when off)."""
        self.keep = keep
        """[B, G] bool: enters the loss (all, unless mask_truncated)."""
        self._penalized = penalized

    def metrics(self, is_hard: torch.Tensor) -> dict[str, float]:
        return truncation_metrics(self.truncated, is_hard, self.penalty if self._penalized else None)


def truncation_step(response_ids: Sequence[Sequence[Sequence[int]]], max_response_length: int,
                    eos_token_ids: Iterable[int], overlong_buffer_len: int = 0, overlong_penalty_factor: float = 1.0,
                    mask_truncated: bool = False) -> Truncation:
    """Everything the trainer needs about truncated responses for B groups of G responses, in one call.

    Why one call: the recipe adds `penalty` to the overall reward before the advantages, masks the loss with
    `keep`, and logs `metrics(is_hard)`; keeping the rules here leaves it three lines.
    """
    eos = list(eos_token_ids)
    truncated = torch.stack([is_truncated(g, max_response_length, eos) for g in response_ids])
    lengths = torch.tensor([[len(r) for r in g] for g in response_ids], dtype=torch.float32)
    penalty = overlong_penalty(lengths, max_response_length, overlong_buffer_len, overlong_penalty_factor)
    return Truncation(truncated, penalty, loss_keep_mask(truncated, mask_truncated), overlong_buffer_len > 0)
