"""Evaluation's model and engine (`--engine auto|hf|vllm`): a path and flags in, the shared pieces out.

Why here: `fastgrpo eval` loads a model from a path (through `fastgrpo.models.loader`, as training
does), while the trainer hands over its live model and engine; both end in the same
`RolloutEngine.generate` call, built by the rollout package's factories.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastgrpo.config import ModelConfig
from fastgrpo.data.io import DataSourceError
from fastgrpo.data.processor import VisionProcessor
from fastgrpo.log import get_logger
from fastgrpo.models import loader
from fastgrpo.models.loader import ModelLoadError
from fastgrpo.rollout import make_engine as make_rollout_engine
from fastgrpo.rollout import resolve_engine_name
from fastgrpo.rollout.base import RolloutEngine
from fastgrpo.utils.optional import MissingDependencyError

log = get_logger("eval.engine")

__all__ = ["EngineUnavailableError", "LoadedModel", "ModelLoadError", "load_model", "make_engine", "resolve_engine_kind"]


class EngineUnavailableError(RuntimeError):
    """The requested engine cannot run here (e.g. vLLM not installed); exit 2 on the CLI."""


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    processor: Any | None
    """A `fastgrpo.data.processor.VisionProcessor` for vision-language models, else None."""
    path: str


REFERENCE_MIN_PIXELS = 1024
REFERENCE_MAX_PIXELS = 589824
"""Image bounds of the PAPO reference evaluation (32*32 .. 768*768 pixels)."""


def _vision_processor(
    path: str, config: Any, min_pixels: int | None, max_pixels: int | None, trust_remote_code: bool
) -> Any | None:
    """The Qwen-VL processor of a vision-language model (None for a text model, with the reason logged)."""
    local = Path(path).expanduser()
    if getattr(config, "vision_config", None) is None and not (local / "preprocessor_config.json").exists():
        return None
    try:
        return VisionProcessor.from_pretrained(
            path, min_pixels=min_pixels, max_pixels=max_pixels, trust_remote_code=trust_remote_code
        )
    except DataSourceError as e:
        log.warning("%s looks like a vision model but its processor could not be built: %s", path, e)
        return None


def load_model(
    path: str,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    load_weights: bool = True,
    device: str | None = None,
    min_pixels: int | None = REFERENCE_MIN_PIXELS,
    max_pixels: int | None = REFERENCE_MAX_PIXELS,
    compute_device: str | None = None,
) -> LoadedModel:
    """Tokenizer (+ vision processor) and weights from a folder or hub id, through `fastgrpo.models.loader`.

    `device`: where the weights go (default: CUDA when present, else the CPU). `compute_device`: where they
    compute, when that is elsewhere (vLLM receives CPU-held weights); it decides `dtype=auto`.
    """
    cfg = ModelConfig(path=path, dtype=dtype, trust_remote_code=trust_remote_code)  # type: ignore[arg-type]
    config = loader.load_model_config(cfg, key="--model")
    tokenizer = loader.load_tokenizer(cfg, key="--model")
    processor = _vision_processor(path, config, min_pixels, max_pixels, trust_remote_code)
    if not load_weights:
        return LoadedModel(None, tokenizer, processor, path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = loader.load_weights(cfg, device, compute_device=compute_device, key="--model")
    return LoadedModel(model, tokenizer, processor, path)


def resolve_engine_kind(kind: str) -> str:
    """`fastgrpo.rollout.resolve_engine_name` (the trainer's `rollout.engine` choice), errors as eval's."""
    try:
        return resolve_engine_name(kind)
    except ValueError as e:
        raise EngineUnavailableError(str(e)) from None


def make_engine(
    kind: str, loaded: LoadedModel, micro_batch_size: int = 64, **vllm_kwargs: Any
) -> RolloutEngine:
    """The rollout package's engines: HF generate or vLLM, the vision variants for a VL model.

    vLLM starts from random weights and receives `loaded.model`'s (which may stay on the CPU);
    `vllm_kwargs` go to `VLLMRolloutEngine` (tensor_parallel_size, gpu_memory_utilization, ...).
    """
    kind = resolve_engine_kind(kind)
    if loaded.model is None:
        raise EngineUnavailableError("the rollout engines need the model weights (load_weights=True)")
    if kind == "vllm":
        vllm_kwargs.setdefault("model_path", loaded.path)
        vllm_kwargs.setdefault("enable_sleep_mode", False)
        vllm_kwargs.setdefault("return_logprobs", False)
    try:
        return make_rollout_engine(kind, loaded.model, loaded.tokenizer, micro_batch_size,
                                   processor=loaded.processor, **vllm_kwargs)
    except MissingDependencyError as e:
        raise EngineUnavailableError(str(e)) from None
