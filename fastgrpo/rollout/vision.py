"""The HF rollout engine for vision-language models (Qwen2-VL / Qwen2.5-VL); built by `fastgrpo.rollout.make_engine`.

`VisionHFRolloutEngine` is the HF engine with three things a Qwen-VL model needs:
- `mm_token_type_ids` (0 text, 1 image, 2 video) aligned with the left-padded
  batch: transformers 5 computes the 3-D mrope positions from them, and
  without them generation silently falls back to 1-D positions, sampling from
  another distribution than the one the trainer scores;
- batches mixing text-only and image prompts (a text prompt contributes no
  patches);
- the vision special tokens are never sampled (a stray `<|image_pad|>` in a
  response would break the trainer's forward: image tokens must match patches).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from fastgrpo.rollout.base import PromptInput, RolloutOutput, SamplingParams
from fastgrpo.rollout.hf import HFRolloutEngine, _LogprobRecorder

__all__ = ["VisionHFRolloutEngine", "mm_token_type_ids"]


def mm_token_type_ids(input_ids: torch.Tensor, image_token_id: int, video_token_id: int | None = None) -> torch.Tensor:
    """Per-token modality, as Qwen-VL processors return it: 0 text (and padding), 1 image, 2 video."""
    types = torch.zeros_like(input_ids, dtype=torch.long)
    types[input_ids == image_token_id] = 1
    if video_token_id is not None:
        types[input_ids == video_token_id] = 2
    return types


class _SuppressTokens(LogitsProcessor):
    """Sets the given tokens' scores to -inf, out of place: generate keeps the raw logits it was given."""

    def __init__(self, token_ids: Sequence[int]) -> None:
        self.token_ids = torch.tensor(list(token_ids), dtype=torch.long)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.index_fill(-1, self.token_ids.to(scores.device), float("-inf"))


class _VisionGenerate:
    """Wraps the model so `generate` gets `mm_token_type_ids` and the vision-token suppressor.

    Everything else (train/eval, parameters, config) is the wrapped model's.
    """

    def __init__(self, model: Any, image_token_id: int, video_token_id: int | None,
                 suppress_token_ids: Sequence[int]) -> None:
        self.module = model
        self._image, self._video = image_token_id, video_token_id
        self._suppress = list(suppress_token_ids)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        if "pixel_values" in kwargs or "pixel_values_videos" in kwargs:
            kwargs.setdefault("mm_token_type_ids", mm_token_type_ids(kwargs["input_ids"], self._image, self._video))
        if self._suppress:  # first, so temperature, top-k/p and the Gumbel noise never revive them
            procs = list(kwargs.get("logits_processor") or [])
            # ... after the log-prob recorder only: it records the trainer's distribution (the full vocabulary)
            at = 1 if procs and isinstance(procs[0], _LogprobRecorder) else 0
            kwargs["logits_processor"] = LogitsProcessorList([*procs[:at], _SuppressTokens(self._suppress), *procs[at:]])
        return self.module.generate(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


class VisionHFRolloutEngine(HFRolloutEngine):
    """`HFRolloutEngine` for Qwen-VL models; prompts carry `processor_inputs` (pixel_values, image_grid_thw)."""

    fast_decode = False  # generation goes through the wrapper that adds mm_token_type_ids and suppresses vision tokens

    def __init__(self, model: Any, pad_token_id: int, eos_token_ids: list[int], image_token_id: int,
                 video_token_id: int | None = None, suppress_token_ids: Sequence[int] = (),
                 micro_batch_size: int = 64, return_logprobs: bool = False) -> None:
        self.image_token_id, self.video_token_id = image_token_id, video_token_id
        self.suppress_token_ids = list(suppress_token_ids)
        super().__init__(model, pad_token_id, eos_token_ids, micro_batch_size, return_logprobs)

    @property
    def model(self) -> Any:
        return self._wrapped

    @model.setter
    def model(self, model: Any) -> None:
        inner = model.module if isinstance(model, _VisionGenerate) else model
        self._wrapped = _VisionGenerate(inner, self.image_token_id, self.video_token_id, self.suppress_token_ids)

    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> RolloutOutput:
        return super().generate(_fill_empty_processor_inputs(prompts), params)

    def _generate_chunk(self, chunk: list[tuple[PromptInput, int]], params: SamplingParams,
                        synced: bool) -> tuple[list[list[int]], list[list[float]]]:
        if all(_num_rows(p.processor_inputs) == 0 for p, _ in chunk):  # no image in this chunk: plain text
            chunk = [(dataclasses.replace(p, processor_inputs=None), s) for p, s in chunk]
        return super()._generate_chunk(chunk, params, synced)


def _num_rows(inputs: dict[str, Any] | None) -> int:
    if not inputs or "image_grid_thw" not in inputs:
        return 0
    return int(inputs["image_grid_thw"].shape[0])


def _fill_empty_processor_inputs(prompts: list[PromptInput]) -> list[PromptInput]:
    """Give text-only prompts zero-row tensors, so a batch mixing them with image prompts concatenates."""
    template = next((p.processor_inputs for p in prompts if p.processor_inputs), None)
    if template is None:
        return prompts
    empty = {k: v.new_zeros((0, *v.shape[1:])) for k, v in template.items()}
    return [p if p.processor_inputs else dataclasses.replace(p, processor_inputs=dict(empty)) for p in prompts]
