"""Pack (prompt, response) pairs with images and compute response log-probs for Qwen-VL models.

The vision counterpart of `fastgrpo.train.batch`: the same right-padded layout and
`gather_index` convention, plus the image inputs. Qwen2-VL uses 3-D (temporal,
height, width) mrope positions, so no `position_ids` are passed: the model
computes them from `attention_mask`, `image_grid_thw` and `mm_token_type_ids`
(built here from the token ids, as the processor does), which also ignores the
padding wherever it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from fastgrpo.rollout.vision import mm_token_type_ids
from fastgrpo.train.batch import Packed

__all__ = ["VisionPacked", "pack_vision", "vision_response_logprobs"]


@dataclass
class VisionPacked(Packed):
    model_inputs: dict[str, torch.Tensor] = field(default_factory=dict)
    """pixel_values [patches, D], image_grid_thw [images, 3], mm_token_type_ids [N, L]; empty without images."""
    stray_vision_tokens: int = 0
    """Vision special tokens found in responses (masked as padding on input; should be 0, the engines suppress them)."""


def pack_vision(
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    processor_inputs: Sequence[dict[str, torch.Tensor] | None],
    pad_id: int,
    device: torch.device,
    image_token_id: int,
    video_token_id: int | None = None,
    vision_token_ids: Sequence[int] = (),
    merge_size: int = 2,
) -> VisionPacked:
    """Right-padded prompt+response rows with their images, in row order.

    `processor_inputs[i]` holds row i's prompt's `pixel_values` / `image_grid_thw` (None for a
    text-only prompt); `merge_size` is the processor's (each image token covers merge_size**2 patches). Rows sharing a prompt repeat its patches: each row's image tokens need
    their own features. A vision token inside a response (it should never be sampled) is fed as
    padding so the image-token count still matches the patches; its log-prob is still scored.
    """
    n = len(prompts)
    if not (len(responses) == len(processor_inputs) == n):
        raise ValueError(f"pack_vision: {n} prompts, {len(responses)} responses, {len(processor_inputs)} inputs")
    lengths = [len(p) + len(r) for p, r in zip(prompts, responses, strict=True)]
    width = max(lengths)
    t_resp = max(1, max(len(r) for r in responses))
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    gather_index = torch.zeros((n, t_resp), dtype=torch.long)
    response_ids = torch.full((n, t_resp), pad_id, dtype=torch.long)
    response_mask = torch.zeros((n, t_resp), dtype=torch.bool)
    banned = torch.tensor(sorted({*vision_token_ids, image_token_id, *([video_token_id] if video_token_id else [])}))
    stray = 0
    pixel_values, grids = [], []
    for i, (p, r, inputs) in enumerate(zip(prompts, responses, processor_inputs, strict=True)):
        p_t = torch.as_tensor(list(p), dtype=torch.long)
        r_t = torch.as_tensor(list(r), dtype=torch.long)
        n_img = int((p_t == image_token_id).sum())
        if inputs and "image_grid_thw" in inputs and inputs["image_grid_thw"].shape[0] > 0:
            grid = inputs["image_grid_thw"]
            expected = int(grid.prod(-1).sum()) // merge_size**2
            if expected != n_img:
                raise ValueError(f"row {i}: prompt has {n_img} image tokens but its images give {expected}")
            pixel_values.append(inputs["pixel_values"])
            grids.append(grid)
        elif n_img:
            raise ValueError(f"row {i}: prompt has {n_img} image tokens but no pixel_values")
        fed = r_t.clone()
        bad = torch.isin(fed, banned)
        if bad.any():
            stray += int(bad.sum())
            fed[bad] = pad_id
        input_ids[i, : len(p)] = p_t
        input_ids[i, len(p) : len(p) + len(r)] = fed
        attention_mask[i, : len(p) + len(r)] = 1
        if len(r):
            gather_index[i, : len(r)] = torch.arange(len(p) - 1, len(p) - 1 + len(r))
            response_ids[i, : len(r)] = r_t
            response_mask[i, : len(r)] = True
    position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)  # 1-D; unused when there are images
    model_inputs: dict[str, torch.Tensor] = {}
    if pixel_values:
        model_inputs = {
            "pixel_values": torch.cat(pixel_values, dim=0).to(device),
            "image_grid_thw": torch.cat(grids, dim=0).to(device),
            "mm_token_type_ids": mm_token_type_ids(input_ids, image_token_id, video_token_id).to(device),
        }
    return VisionPacked(
        input_ids.to(device), attention_mask.to(device), position_ids.to(device),
        gather_index.to(device), response_ids.to(device), response_mask.to(device),
        model_inputs=model_inputs, stray_vision_tokens=stray,
    )


def vision_response_logprobs(model: Any, packed: VisionPacked, temperature: float = 1.0) -> torch.Tensor:
    """log pi(response token) for each response position, [N, T]; grads flow if enabled.

    With images, position ids are left to the model (3-D mrope); without, the 1-D ones are passed.
    """
    kwargs: dict[str, Any] = {"input_ids": packed.input_ids, "attention_mask": packed.attention_mask,
                              "use_cache": False}
    if packed.model_inputs:
        kwargs.update(packed.model_inputs)
    else:
        kwargs["position_ids"] = packed.position_ids
    logits = model(**kwargs).logits
    idx = packed.gather_index.unsqueeze(-1).expand(-1, -1, logits.shape[-1])
    picked = torch.gather(logits, 1, idx).float()  # [N, T, V]: only response positions
    if temperature > 0 and temperature != 1.0:
        picked = picked / temperature
    logp = torch.log_softmax(picked, dim=-1).gather(-1, packed.response_ids.unsqueeze(-1)).squeeze(-1)
    return logp.masked_fill(~packed.response_mask, 0.0)
