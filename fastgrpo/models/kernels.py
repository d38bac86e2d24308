"""Attention implementation and optional Liger kernels, chosen from the config with clear errors.

- `select_attn_implementation`: `auto` -> flash_attention_2 when CUDA, a half
  compute dtype and the `flash_attn` package are all there, else sdpa; an
  explicit `flash_attention_2` without the package or without CUDA is an error
  that says what to install or set, never an ImportError traceback. The dtype
  checked is the *compute* dtype (model.dtype): fp32 master parameters
  (actor.master_dtype) run in bf16 under FSDP2's mixed-precision policy, which
  flash-attn accepts.
- `apply_liger`: Liger's Triton kernels (RMSNorm, SwiGLU, RoPE) patched into a
  loaded model. Its fused linear cross-entropy is not patched into the model's
  forward (it would replace the forward's logits); the log-prob pass calls it
  itself where it fits (actor.logprob_method=liger, `fastgrpo.train.logprobs`).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch

from fastgrpo.log import get_logger
from fastgrpo.utils.optional import require

log = get_logger(__name__)

__all__ = ["apply_liger", "is_vision_config", "select_attn_implementation"]

ATTN_CHOICES = ("auto", "eager", "sdpa", "flash_attention_2")


def select_attn_implementation(requested: str, device: torch.device, dtype: torch.dtype | None = None) -> str:
    """The `attn_implementation` to pass to `from_pretrained` for `model.attn_implementation=requested`.

    `dtype` is the compute dtype (model.dtype), not the master parameters' (actor.master_dtype).
    """
    if requested not in ATTN_CHOICES:
        raise ValueError(f"model.attn_implementation={requested!r}; choose one of {', '.join(ATTN_CHOICES)}")
    half = dtype in (torch.bfloat16, torch.float16)
    if requested == "auto":
        if device.type == "cuda" and half and flash_attn_imports():
            return "flash_attention_2"
        return "sdpa"
    if requested == "flash_attention_2":
        require("flash_attn", extra=None, what="model.attn_implementation=flash_attention_2",
                install=FLASH_ATTN_INSTALL)
        if device.type != "cuda":
            raise RuntimeError("model.attn_implementation=flash_attention_2 needs a CUDA device; use sdpa on CPU")
        if dtype is not None and not half:
            raise RuntimeError(f"flash_attention_2 computes in bfloat16/float16, not {dtype}; set model.dtype=bfloat16 "
                               "(the master weights stay in actor.master_dtype=float32)")
    return requested


# flash-attn is in no extra: PyPI has only its source package, and building it needs the installed torch.
FLASH_ATTN_INSTALL = "pip install flash-attn --no-build-isolation (after torch; README: Install on a GPU machine)"


def flash_attn_imports() -> bool:
    """Whether `import flash_attn` works, not merely whether it is installed: a wheel built against another
    torch is found by importlib but fails to load (undefined symbol), and `auto` must then fall back to sdpa."""
    if importlib.util.find_spec("flash_attn") is None:
        return False
    try:
        importlib.import_module("flash_attn")
    except Exception as e:  # ImportError, OSError from a mismatched binary
        log.warning("flash_attn is installed but does not import (%s: %s); attn_implementation=auto uses sdpa",
                    type(e).__name__, e)
        return False
    return True


def apply_liger(model: Any, enabled: bool, rope: bool = True, rms_norm: bool = True, swiglu: bool = True) -> bool:
    """Patch Liger kernels into `model` in place when `enabled` (model.enable_liger); returns whether it did.

    Raises MissingDependencyError without the `liger_kernel` package. Cross-entropy kernels stay off.
    """
    if not enabled:
        return False
    require("liger_kernel", extra="liger", what="model.enable_liger=true")
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    _apply_liger_kernel_to_instance(model=model, rope=rope, rms_norm=rms_norm, swiglu=swiglu,
                                    cross_entropy=False, fused_linear_cross_entropy=False)
    return True


def is_vision_config(config: Any) -> bool:
    """Whether a model config is a vision-language one (it has a vision tower config)."""
    return getattr(config, "vision_config", None) is not None
