"""Model loading and rollout-engine choice for evaluation (`--engine auto|hf|vllm`).

Why here: the CLI loads a model from a path, while the trainer hands over its live
model and engine; both end in the same `RolloutEngine.generate` call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastgrpo.log import get_logger
from fastgrpo.rollout.base import RolloutEngine

log = get_logger("eval.engine")

EngineKind = Literal["auto", "hf", "vllm"]


class ModelLoadError(RuntimeError):
    """The model (or tokenizer) could not be read; exit 2 on the CLI."""


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


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_dtype(dtype: str, device: str) -> Any:
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device == "cuda" or torch.cuda.is_available() else torch.float32
    return getattr(torch, dtype)


def _vision_processor(
    path: str, config: Any, min_pixels: int | None, max_pixels: int | None, trust_remote_code: bool
) -> Any | None:
    """The Qwen-VL processor of a vision-language model (None for a text model, with the reason logged)."""
    local = Path(path).expanduser()
    if getattr(config, "vision_config", None) is None and not (local / "preprocessor_config.json").exists():
        return None
    from fastgrpo.data.io import DataSourceError
    from fastgrpo.data.processor import VisionProcessor

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
) -> LoadedModel:
    """Tokenizer (+ vision processor) and AutoModelForCausalLM / image-text-to-text weights from a folder or hub id."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    local = Path(path).expanduser()
    if (path.startswith((".", "/", "~")) or local.exists()) and not (local / "config.json").exists():
        what = "does not exist" if not local.exists() else "has no config.json"
        raise ModelLoadError(f"model path {path!r} {what}; pass a Hugging Face model folder or hub id")
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ModelLoadError(
            f"could not load the config/tokenizer of {path!r}: {type(e).__name__}: {e}"
        ) from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    processor = _vision_processor(path, config, min_pixels, max_pixels, trust_remote_code)
    if not load_weights:
        return LoadedModel(None, tokenizer, processor, path)
    device = device or _device()
    kwargs = {"dtype": _torch_dtype(dtype, device), "trust_remote_code": trust_remote_code}
    try:
        if getattr(config, "vision_config", None) is not None:
            from transformers import AutoModelForImageTextToText

            model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
        else:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except Exception as e:
        raise ModelLoadError(f"could not load model weights from {path!r}: {type(e).__name__}: {e}") from None
    model.to(device)
    model.eval()
    return LoadedModel(model, tokenizer, processor, path)


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """EOS ids from the tokenizer and the generation config (chat models often stop on several)."""
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    for value in (getattr(tokenizer, "eos_token_id", None), getattr(gen, "eos_token_id", None)):
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    return ids


def resolve_engine_kind(kind: str) -> str:
    """`auto`: vLLM when importable with CUDA, else HF generate (as the trainer's `rollout.engine`)."""
    if kind not in ("auto", "hf", "vllm"):
        raise EngineUnavailableError(f"unknown engine {kind!r}; choose auto, hf or vllm")
    from fastgrpo.rollout import resolve_engine_name

    return resolve_engine_name(kind)


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
    from fastgrpo.utils.optional import MissingDependencyError

    try:
        from fastgrpo.rollout import make_engine as make_rollout_engine

        return make_rollout_engine(kind, loaded.model, loaded.tokenizer, micro_batch_size,
                                   processor=loaded.processor, **vllm_kwargs)
    except MissingDependencyError as e:
        raise EngineUnavailableError(str(e)) from None
