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
                return_logprobs: bool | None = None, **vllm_kwargs: Any) -> RolloutEngine:
    """`return_logprobs`: the engine also returns each sampled token's log-prob (None: the engine's default,
    off for HF, on for vLLM). `vllm_kwargs` go to `VLLMRolloutEngine`."""
    name = resolve_engine_name(name)
    eos = eos_token_ids(model, tokenizer)
    if name == "hf":
        from fastgrpo.rollout.hf import HFRolloutEngine

        return HFRolloutEngine(model, tokenizer.pad_token_id, eos, micro_batch_size=micro_batch_size,
                               return_logprobs=bool(return_logprobs))
    if name == "vllm":
        from fastgrpo.rollout.vllm import VLLMRolloutEngine

        if return_logprobs is not None:
            vllm_kwargs["return_logprobs"] = return_logprobs
        return VLLMRolloutEngine(model, tokenizer, eos_token_ids=eos, **vllm_kwargs)
    raise ValueError(f"unknown rollout engine {name!r}; choose auto, hf or vllm")
