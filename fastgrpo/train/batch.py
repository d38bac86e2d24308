"""Lay out (prompt, response) pairs for one forward pass and compute response-token log-probs.

One function serves the actor (with grad), the old policy and the frozen
reference (without): the per-token log-prob of each response token under
logits / temperature, laid out [N, T_resp] with a mask. Three layouts:

- `pack`: one right-padded row per response (any model, any attention kernel);
- `pack_shared_prompt`: rows hold each prompt once, followed by several of its
  sampled responses. A block mask lets a response see its prompt and itself,
  never a sibling, and position ids restart per response, so every log-prob is
  the padded layout's. Why: the G samples of a group share their prompt, and
  slow and fast answers differ several-fold in length, so the padded layout
  spends most of its compute on repeated prompts and padding (the demo batch:
  12,288 padded positions for 4,240 distinct tokens).
- `pack_varlen`: one padding-free row, sequences separated by restarting
  position ids (flash-attn's varlen path; it takes no block mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from fastgrpo.train.logprobs import HeadOptions, TokenStats, plain_token_stats, token_stats


@dataclass
class Packed:
    input_ids: torch.Tensor  # [R, L] token rows
    attention_mask: torch.Tensor | None  # [R, L] padding mask, [R, 1, L, L] bool block mask (True: attend), or
    # None (`pack_varlen`: sequences told apart by their restarting position ids)
    position_ids: torch.Tensor  # [R, L]
    gather_row: torch.Tensor  # [N] the row holding each response
    gather_index: torch.Tensor  # [N, T] positions (in that row) whose logits predict each response token
    response_ids: torch.Tensor  # [N, T]
    response_mask: torch.Tensor  # [N, T] bool


def _pad_rows(rows: Sequence[Sequence[int]], fill: int, width: int) -> torch.Tensor:
    return torch.tensor([[*r, *[fill] * (width - len(r))] for r in rows], dtype=torch.long)


def _response_targets(responses: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    t_resp = max(1, max((len(r) for r in responses), default=0))
    response_mask = torch.arange(t_resp)[None, :] < torch.tensor([len(r) for r in responses])[:, None]
    return _pad_rows(responses, pad_id, t_resp), response_mask


def pack(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int, device: torch.device,
         fed_responses: Sequence[Sequence[int]] | None = None) -> Packed:
    """Right-padded prompt+response rows. `fed_responses` (same lengths) replaces what the model is fed
    while the scored `response_ids` stay the sampled ones (the vision path feeds stray vision tokens as padding)."""
    n = len(prompts)
    fed = responses if fed_responses is None else fed_responses
    width = max(len(p) + len(r) for p, r in zip(prompts, responses, strict=True))
    response_ids, response_mask = _response_targets(responses, pad_id)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    gather_index = torch.zeros(response_ids.shape, dtype=torch.long)
    for i, (p, r, f) in enumerate(zip(prompts, responses, fed, strict=True)):
        seq = [*p, *f]
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention_mask[i, : len(seq)] = 1
        gather_index[i, : len(r)] = torch.arange(len(p) - 1, len(p) - 1 + len(r))
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
    return Packed(
        input_ids.to(device), attention_mask.to(device), position_ids.to(device), torch.arange(n, device=device),
        gather_index.to(device), response_ids.to(device), response_mask.to(device),
    )


def _assign_rows(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                 row_length: int) -> list[dict[tuple[int, ...], list[int]]]:
    """Greedy first fit, longest response first: join a row already holding the prompt, else open a segment
    (prompt + response) in the first row with room, else a new row. Rows map prompt -> response indices."""
    rows: list[dict[tuple[int, ...], list[int]]] = []
    used: list[int] = []
    for i in sorted(range(len(responses)), key=lambda j: -len(responses[j])):
        key, r = tuple(prompts[i]), len(responses[i])
        target = next((k for k, row in enumerate(rows) if key in row and used[k] + r <= row_length), None)
        if target is None:
            target = next((k for k in range(len(rows)) if used[k] + len(key) + r <= row_length), None)
        if target is None:
            rows.append({})
            used.append(0)
            target = len(rows) - 1
        row = rows[target]
        used[target] += r if key in row else len(key) + r
        row.setdefault(key, []).append(i)
    return rows


def pack_shared_prompt(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int,
                       device: torch.device, row_length: int = 0) -> Packed:
    """Rows of [prompt, response, response, ..., prompt', response', ...] with a block mask.

    Responses sharing a prompt (the same token ids) reuse one copy of it per row. `row_length` caps a row
    (0: the longest single prompt+response, so no row is longer than `pack` would make it; the dense
    [L, L] mask per row stays as cheap as the padded layout's).
    """
    n = len(prompts)
    longest = max(len(p) + len(r) for p, r in zip(prompts, responses, strict=True))
    rows = _assign_rows(prompts, responses, max(row_length, longest))
    # Plain lists first and one tensor per field at the end: element-wise tensor writes would cost more
    # than building the whole layout.
    ids: list[list[int]] = []
    pos: list[list[int]] = []
    seg: list[list[int]] = []  # which prompt segment of the row; -1: padding
    branch: list[list[int]] = []  # which response; -1: the shared prompt (and padding)
    gather_row = [0] * n
    gather_index: list[list[int]] = [[] for _ in range(n)]
    for ri, row in enumerate(rows):
        r_ids: list[int] = []
        r_pos: list[int] = []
        r_seg: list[int] = []
        r_branch: list[int] = []
        for si, (key, members) in enumerate(row.items()):
            lp = len(key)
            r_ids += key
            r_pos += range(lp)
            r_seg += [si] * lp
            r_branch += [-1] * lp
            last_prompt = len(r_ids) - 1
            for i in members:
                col, lr = len(r_ids), len(responses[i])
                r_ids += responses[i]
                r_pos += range(lp, lp + lr)
                r_seg += [si] * lr
                r_branch += [i] * lr
                gather_row[i] = ri
                # Token 0 is predicted from the prompt's last position, token t from token t-1.
                gather_index[i] = [last_prompt, *range(col, col + lr - 1)] if lr else []
        ids.append(r_ids)
        pos.append(r_pos)
        seg.append(r_seg)
        branch.append(r_branch)
    width = max(map(len, ids))
    response_ids, response_mask = _response_targets(responses, pad_id)
    t_resp = response_ids.shape[1]
    position_ids = _pad_rows(pos, 0, width)
    segment, branch_t = _pad_rows(seg, -1, width), _pad_rows(branch, -1, width)
    # Block mask, a few rows at a time so the transient [rows, L, L] tensors stay small for long rows.
    eye = torch.eye(width, dtype=torch.bool)
    chunk = max(1, (1 << 24) // (width * width))
    masks = []
    for c in range(0, len(rows), chunk):
        sg, br, ps = segment[c : c + chunk], branch_t[c : c + chunk], position_ids[c : c + chunk]
        attend = (sg[:, :, None] == sg[:, None, :]) & (sg[:, :, None] >= 0)
        attend &= ps[:, None, :] <= ps[:, :, None]
        attend &= (br[:, None, :] == -1) | (br[:, None, :] == br[:, :, None])
        masks.append(attend | eye)  # a padding position attends to itself only (no all-masked rows)
    return Packed(
        _pad_rows(ids, pad_id, width).to(device), torch.cat(masks)[:, None].to(device), position_ids.to(device),
        torch.tensor(gather_row, dtype=torch.long, device=device), _pad_rows(gather_index, 0, t_resp).to(device),
        response_ids.to(device), response_mask.to(device),
    )


def forward_kwargs(packed: Packed) -> dict[str, Any]:
    """The model inputs of a text layout (the vision layout has its own, see `vision_batch`)."""
    kwargs: dict[str, Any] = {"input_ids": packed.input_ids, "position_ids": packed.position_ids, "use_cache": False}
    if packed.attention_mask is not None:
        kwargs["attention_mask"] = packed.attention_mask
    return kwargs


def pack_varlen(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int,
                device: torch.device) -> Packed:
    """One padding-free row: every prompt+response back to back, position ids restarting at 0 for each.

    No attention mask: transformers reads the sequence boundaries from the position ids (flash-attn's varlen
    kernel with cu_seqlens; sdpa / eager get a block-diagonal causal mask built from them). Why: flash-attn
    takes no [L, L] mask, so `pack_shared_prompt` is out; this drops the padding instead (no repeated-prompt
    savings). With sdpa or eager the mask is dense [L, L] over the whole micro-batch: use shared_prompt there.
    """
    n = len(prompts)
    response_ids, response_mask = _response_targets(responses, pad_id)
    ids: list[int] = []
    pos: list[int] = []
    gather_index: list[list[int]] = []
    for p, r in zip(prompts, responses, strict=True):
        start = len(ids) + len(p) - 1  # the prompt's last position predicts response token 0
        ids += [*p, *r]
        pos += range(len(p) + len(r))
        gather_index.append(list(range(start, start + len(r))))
    return Packed(
        torch.tensor([ids], dtype=torch.long, device=device), None,
        torch.tensor([pos], dtype=torch.long, device=device), torch.zeros(n, dtype=torch.long, device=device),
        _pad_rows(gather_index, 0, response_ids.shape[1]).to(device), response_ids.to(device), response_mask.to(device),
    )


def response_token_stats(model: Any, packed: Packed, temperature: float = 1.0,
                         opts: HeadOptions | None = None) -> TokenStats:
    """log pi and (per `opts`) entropy of each response token, [N, T]; grads flow if enabled.

    By default from the final hidden states in chunks (`fastgrpo.train.logprobs`): no full-vocabulary logits.
    """
    return token_stats(model, forward_kwargs(packed), packed, temperature, opts)


def response_logprobs(model: Any, packed: Packed, temperature: float = 1.0,
                      opts: HeadOptions | None = None) -> torch.Tensor:
    """log pi(response token) for each response position, [N, T]; grads flow if enabled."""
    return response_token_stats(model, packed, temperature, opts).logp


def logprobs_from_logits(logits: torch.Tensor, packed: Packed, temperature: float = 1.0) -> torch.Tensor:
    """The full-logits path: pick the response positions first, so log-softmax runs on [N, T, V], not [R, L, V]."""
    return plain_token_stats(logits, packed, temperature).logp
