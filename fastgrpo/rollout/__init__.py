"""Rollout engines behind one interface (`RolloutEngine.generate`): HF generate and vLLM."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from fastgrpo.models.loader import eos_token_ids
from fastgrpo.rollout.base import PromptInput, RolloutEngine, RolloutOutput, SamplingParams

__all__ = ["ENGINE_NAMES", "PromptInput", "RolloutEngine", "RolloutOutput", "SamplingParams", "make_engine",
           "resolve_engine_name"]

ENGINE_NAMES = ("auto", "hf", "vllm")
"""rollout.engine / `fastgrpo eval --engine`."""


def resolve_engine_name(engine: str) -> str:
    """The one engine choice (trainer, validation, eval): `auto` picks vllm when it is importable and CUDA is
    present, else HF generate. Raises ValueError for a name not in ENGINE_NAMES."""
    if engine not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {engine!r}; choose auto, hf or vllm")
    if engine != "auto":
        return engine
    if torch.cuda.is_available() and importlib.util.find_spec("vllm") is not None:
        return "vllm"
    return "hf"


def make_engine(name: str, model: Any, tokenizer: Any, micro_batch_size: int = 64,
                return_logprobs: bool | None = None, *, processor: Any | None = None,
                **vllm_kwargs: Any) -> RolloutEngine:
    """The one engine factory: HF generate or vLLM, for a text model or (given `processor`) a vision one.

    `processor`: a `fastgrpo.data.processor.VisionProcessor` for a Qwen-VL model; the engine then feeds
    image patches, never samples vision tokens, and (vLLM) resizes images with the processor's pixel
    bounds. `return_logprobs`: the engine also returns each sampled token's log-prob (None: the
    engine's default, off for HF, on for vLLM). `vllm_kwargs` go to `VLLMRolloutEngine`
    (tensor_parallel_size, gpu_memory_utilization, ...).
    """
    name = resolve_engine_name(name)
    if processor is not None:
        tokenizer = processor.tokenizer
    eos = eos_token_ids(model, tokenizer)
    if name == "hf":
        if processor is not None:
            from fastgrpo.rollout.vision import VisionHFRolloutEngine

            return VisionHFRolloutEngine(model, tokenizer.pad_token_id, eos, image_token_id=processor.image_token_id,
                                         video_token_id=processor.video_token_id,
                                         suppress_token_ids=processor.vision_token_ids,
                                         micro_batch_size=micro_batch_size, return_logprobs=bool(return_logprobs))
        from fastgrpo.rollout.hf import HFRolloutEngine

        return HFRolloutEngine(model, tokenizer.pad_token_id, eos, micro_batch_size=micro_batch_size,
                               return_logprobs=bool(return_logprobs))
    if name == "vllm":
        from fastgrpo.rollout.vllm import VLLMRolloutEngine

        if return_logprobs is not None:
            vllm_kwargs["return_logprobs"] = return_logprobs
        if processor is not None:
            vllm_kwargs.setdefault("image_token_id", processor.image_token_id)
            vllm_kwargs.setdefault("suppress_token_ids", processor.vision_token_ids)
            vllm_kwargs.setdefault("mm_processor_kwargs",
                                   {"min_pixels": processor.min_pixels, "max_pixels": processor.max_pixels})
        return VLLMRolloutEngine(model, tokenizer, eos_token_ids=eos, **vllm_kwargs)
    raise ValueError(f"unknown rollout engine {name!r}; choose auto, hf or vllm")
