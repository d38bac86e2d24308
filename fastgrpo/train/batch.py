"""Pack (prompt, response) pairs into padded tensors and compute response-token log-probs.

One function serves the actor (with grad), the old policy and the frozen
reference (without): the per-token log-prob of each response token under
logits / temperature, laid out [N, T_resp] with a mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Packed:
    input_ids: torch.Tensor  # [N, L] right-padded prompt+response
    attention_mask: torch.Tensor  # [N, L]
    position_ids: torch.Tensor  # [N, L]
    gather_index: torch.Tensor  # [N, T] positions whose logits predict each response token
    response_ids: torch.Tensor  # [N, T]
    response_mask: torch.Tensor  # [N, T] bool


def pack(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int, device: torch.device,
         fed_responses: Sequence[Sequence[int]] | None = None) -> Packed:
    """Right-padded prompt+response rows. `fed_responses` (same lengths) replaces what the model is fed
    while the scored `response_ids` stay the sampled ones (the vision path feeds stray vision tokens as padding)."""
    n = len(prompts)
    fed = responses if fed_responses is None else fed_responses
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    width = max(lengths)
    t_resp = max(1, max(len(r) for r in responses))
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    gather_index = torch.zeros((n, t_resp), dtype=torch.long)
    response_ids = torch.full((n, t_resp), pad_id, dtype=torch.long)
    response_mask = torch.zeros((n, t_resp), dtype=torch.bool)
    for i, (p, r, f) in enumerate(zip(prompts, responses, fed, strict=True)):
        seq = [*p, *f]
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[i, : len(seq)] = 1
        if r:
            gather_index[i, : len(r)] = torch.arange(len(p) - 1, len(p) - 1 + len(r))
            response_ids[i, : len(r)] = torch.tensor(list(r), dtype=torch.long)
            response_mask[i, : len(r)] = True
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    return Packed(
        input_ids.to(device), attention_mask.to(device), position_ids.to(device),
        gather_index.to(device), response_ids.to(device), response_mask.to(device),
    )


def response_logprobs(model: Any, packed: Packed, temperature: float = 1.0) -> torch.Tensor:
    """log pi(response token) for each response position, [N, T]; grads flow if enabled."""
    out = model(
        input_ids=packed.input_ids,
        attention_mask=packed.attention_mask,
        position_ids=packed.position_ids,
        use_cache=False,
    )
    return logprobs_from_logits(out.logits, packed, temperature)


def logprobs_from_logits(logits: torch.Tensor, packed: Packed, temperature: float = 1.0) -> torch.Tensor:
    """Pick the response positions first, so log-softmax runs on [N, T, V] rather than [N, L, V]."""
    idx = packed.gather_index.unsqueeze(-1).expand(-1, -1, logits.shape[-1])
    picked = torch.gather(logits, 1, idx).float()
    if temperature > 0 and temperature != 1.0:
        picked = picked / temperature
    logp = torch.log_softmax(picked, dim=-1).gather(-1, packed.response_ids.unsqueeze(-1)).squeeze(-1)
    return logp.masked_fill(~packed.response_mask, 0.0)
