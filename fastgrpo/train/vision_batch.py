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
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from fastgrpo.rollout.vision import mm_token_type_ids
from fastgrpo.train.batch import Packed, pack
from fastgrpo.train.logprobs import HeadOptions, TokenStats, token_stats

__all__ = ["VisionPacked", "pack_vision", "vision_response_logprobs", "vision_response_token_stats"]


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
    banned = torch.tensor(sorted({*vision_token_ids, image_token_id, *([video_token_id] if video_token_id else [])}))
    stray = 0
    pixel_values, grids, fed = [], [], []
    for i, (p, r, inputs) in enumerate(zip(prompts, responses, processor_inputs, strict=True)):
        n_img = sum(1 for t in p if t == image_token_id)
        if inputs and "image_grid_thw" in inputs and inputs["image_grid_thw"].shape[0] > 0:
            grid = inputs["image_grid_thw"]
            expected = int(grid.prod(-1).sum()) // merge_size**2
            if expected != n_img:
                raise ValueError(f"row {i}: prompt has {n_img} image tokens but its images give {expected}")
            pixel_values.append(inputs["pixel_values"])
            grids.append(grid)
        elif n_img:
            raise ValueError(f"row {i}: prompt has {n_img} image tokens but no pixel_values")
        r_t = torch.as_tensor(list(r), dtype=torch.long)
        bad = torch.isin(r_t, banned)
        stray += int(bad.sum())
        fed.append(r_t.masked_fill(bad, pad_id).tolist())
    base = pack(prompts, responses, pad_id, device, fed_responses=fed)  # 1-D position ids unused with images
    model_inputs: dict[str, torch.Tensor] = {}
    if pixel_values:
        model_inputs = {
            "pixel_values": torch.cat(pixel_values, dim=0).to(device),
            "image_grid_thw": torch.cat(grids, dim=0).to(device),
            "mm_token_type_ids": mm_token_type_ids(base.input_ids.cpu(), image_token_id, video_token_id).to(device),
        }
    return VisionPacked(**{f.name: getattr(base, f.name) for f in fields(base)}, model_inputs=model_inputs,
                        stray_vision_tokens=stray)


def vision_forward_kwargs(packed: VisionPacked) -> dict[str, Any]:
    """With images, position ids are left to the model (3-D mrope); without, the 1-D ones are passed."""
    kwargs: dict[str, Any] = {"input_ids": packed.input_ids, "attention_mask": packed.attention_mask,
                              "use_cache": False}
    if packed.model_inputs:
        kwargs.update(packed.model_inputs)
    else:
        kwargs["position_ids"] = packed.position_ids
    return kwargs


def vision_response_token_stats(model: Any, packed: VisionPacked, temperature: float = 1.0,
                                opts: HeadOptions | None = None) -> TokenStats:
    """log pi and (per `opts`) entropy of each response token, [N, T], from the language head in chunks."""
    return token_stats(model, vision_forward_kwargs(packed), packed, temperature, opts)


def vision_response_logprobs(model: Any, packed: VisionPacked, temperature: float = 1.0,
                             opts: HeadOptions | None = None) -> torch.Tensor:
    """log pi(response token) for each response position, [N, T]; grads flow if enabled."""
    return vision_response_token_stats(model, packed, temperature, opts).logp
