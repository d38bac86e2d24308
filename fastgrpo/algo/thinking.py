"""Adaptive thinking reward (SPEC section 1, step 4; our documented default form).

With L_i the response length, L_max the longest response of its group and
w = `thinking_reward_weight` (0.5):

* easy question, correct response:   w * (1 - L_i / L_max)   (be concise)
* hard question, incorrect response: w * L_i / L_max         (keep exploring)
* otherwise:                         0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastgrpo.algo._utils import as_bool_tensor, as_float_tensor, check_group_shape

__all__ = ["thinking_reward"]


def thinking_reward(
    response_length: torch.Tensor | Sequence,
    accuracy: torch.Tensor | Sequence,
    is_hard: torch.Tensor | Sequence[bool],
    thinking_reward_weight: float = 0.5,
    mask: torch.Tensor | None = None,
    correct_threshold: float = 0.5,
) -> torch.Tensor:
    """Per-sample thinking reward, [B, G] (added to the accuracy/format reward).

    Why: FAST wants fast thinking on easy questions (reward the shorter of the
    correct answers) and slow thinking on hard ones (reward longer attempts
    when the model still fails, so it does not learn to give up early).
    Lengths are relative to the group's longest response, so the reward is
    scale-free and in [0, w]. A response counts as correct when its accuracy
    exceeds `correct_threshold`. Masked-out samples get 0 and are ignored for
    L_max; a group whose L_max is 0 gets 0.
    """
    lengths = as_float_tensor(response_length)
    acc = as_float_tensor(accuracy)
    check_group_shape("response_length", lengths)
    if acc.shape != lengths.shape:
        raise ValueError(f"accuracy shape {tuple(acc.shape)} != response_length shape {tuple(lengths.shape)}")
    hard = as_bool_tensor(is_hard).reshape(-1)
    if hard.numel() != lengths.shape[0]:
        raise ValueError(f"is_hard must have one entry per group ({lengths.shape[0]}), got {hard.numel()}")
    valid = torch.ones_like(lengths, dtype=torch.bool) if mask is None else as_bool_tensor(mask)
    lengths = torch.where(valid, lengths.clamp_min(0.0), torch.zeros_like(lengths))
    l_max = lengths.max(dim=1, keepdim=True).values
    rel = torch.where(l_max > 0, lengths / l_max.clamp_min(1e-12), torch.zeros_like(lengths))
    correct = acc > correct_threshold
    hard_g = hard[:, None].expand_as(lengths)
    w = float(thinking_reward_weight)
    reward = torch.zeros_like(lengths)
    reward = torch.where(~hard_g & correct, w * (1.0 - rel), reward)
    reward = torch.where(hard_g & ~correct, w * rel, reward)
    reward = torch.where(valid & (l_max > 0), reward, torch.zeros_like(reward))
    return reward
