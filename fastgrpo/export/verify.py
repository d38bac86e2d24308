"""Check an export folder before it is published: it reloads with `transformers` and reproduces the checkpoint.

Why compare against a model rebuilt from the checkpoint tensors (rounded to the
export dtype) in float32: both sides then hold the same numbers, so any
difference beyond float noise means a missing, misnamed, mistied or mis-cast
tensor, or a config that does not describe the weights.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastgrpo.export.errors import VerifyError
from fastgrpo.export.hf_folder import build_model, has_tokenizer
from fastgrpo.log import get_logger

log = get_logger("export")

PROBE_MESSAGES = [{"role": "user", "content": "What is 17 * 24? Think briefly, then answer in \\boxed{}."}]
MAX_PROBE_TOKENS = 48
RTOL = 1e-4
"""Allowed max |difference| relative to the logits' scale (both sides compute in float32 on equal weights)."""


@dataclass
class VerifyReport:
    max_abs_diff: float
    tolerance: float
    num_tokens: int
    tokenizer: bool
    chat_template: bool


@contextlib.contextmanager
def _no_init() -> Iterator[None]:
    """Skip random init when building the reference model (its weights are overwritten anyway)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers
        yield
        return
    with no_init_weights():
        yield


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No "Loading weights" progress bars: the reload is an internal check, not something the user asked for."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_tokenizer(folder: Path, trust_remote_code: bool) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    except Exception as e:
        raise VerifyError(f"the exported tokenizer does not load: {type(e).__name__}: {e}") from None


def _probe_ids(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    """A fixed input: the chat-formatted probe question when a tokenizer exists, else fixed ids."""
    ids: list[int] = []
    if tokenizer is not None:
        if getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(PROBE_MESSAGES, add_generation_prompt=True, tokenize=False)
        else:
            text = PROBE_MESSAGES[0]["content"]
        ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = [i for i in ids if 0 <= i < vocab_size][:MAX_PROBE_TOKENS]
    if len(ids) < 4:
        ids = [(7 * i + 3) % vocab_size for i in range(16)]
    return torch.tensor([ids], dtype=torch.long)


@torch.no_grad()
def _logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model(input_ids=ids, use_cache=False).logits.float()


def _reference_logits(
    config: Any,
    tensors: dict[str, torch.Tensor],
    dtype: torch.dtype,
    ids: torch.Tensor,
    tied: dict[str, str],
    trust_remote_code: bool,
) -> torch.Tensor:
    with _no_init():
        model = build_model(config, trust_remote_code)
    model.to(torch.float32)
    # Round to the export dtype, compute in float32: the same numbers the exported folder holds.
    state = {k: v.to(dtype).float() if v.is_floating_point() else v for k, v in tensors.items()}
    result = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in result.missing_keys if k not in tied]
    if missing or result.unexpected_keys:
        raise VerifyError(
            f"the checkpoint does not fit the model: missing {missing[:3]}, "
            f"unexpected {result.unexpected_keys[:3]}"
        )
    if tied:
        model.tie_weights()
    out = _logits(model, ids)
    del model, state
    return out


def _exported_logits(folder: Path, ids: torch.Tensor, trust_remote_code: bool) -> torch.Tensor:
    import transformers

    config = transformers.AutoConfig.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
    archs = getattr(config, "architectures", None) or []
    cls = getattr(transformers, archs[0], None) if archs else None
    if cls is None:
        cls = transformers.AutoModelForCausalLM
    try:
        model, info = cls.from_pretrained(
            str(folder), dtype=torch.float32, output_loading_info=True, trust_remote_code=trust_remote_code
        )
    except Exception as e:
        raise VerifyError(
            f"the exported folder does not load with transformers: {type(e).__name__}: {e}"
        ) from None
    problems = {
        k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    if problems:
        raise VerifyError(f"the exported weights do not match the model: {problems}")
    out = _logits(model, ids)
    del model
    return out


def verify_export(
    folder: Path,
    config: Any,
    tensors: dict[str, torch.Tensor],
    dtype: torch.dtype,
    tied: dict[str, str],
    expect_tokenizer: bool,
    expect_chat_template: bool,
    trust_remote_code: bool = False,
) -> VerifyReport:
    """Raise `VerifyError` unless `folder` reloads and its logits match the checkpoint's on a fixed input.

    `tensors` are the checkpoint tensors as loaded (training dtype, checkpoint names);
    `tied` maps tied aliases to canonical names.
    """
    tokenizer = None
    if expect_tokenizer or has_tokenizer(folder):
        tokenizer = _load_tokenizer(folder, trust_remote_code)
    if expect_chat_template and not (tokenizer is not None and getattr(tokenizer, "chat_template", None)):
        raise VerifyError("the chat template was lost: the exported tokenizer has none")
    cfg_dtype = json.loads((folder / "config.json").read_text()).get("dtype")
    if cfg_dtype != str(dtype).removeprefix("torch."):
        raise VerifyError(f"config.json says dtype {cfg_dtype!r}, the weights are {dtype}")
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config  # VL: the LM's
    ids = _probe_ids(
        tokenizer, int(getattr(text_config, "vocab_size", 0) or getattr(config, "vocab_size", 2))
    )
    with _quiet_transformers():
        ref = _reference_logits(config, tensors, dtype, ids, tied, trust_remote_code)
        got = _exported_logits(folder, ids, trust_remote_code)
    if got.shape != ref.shape:
        raise VerifyError(f"logits shape {tuple(got.shape)} != checkpoint's {tuple(ref.shape)}")
    if not torch.isfinite(ref).all():
        raise VerifyError("the checkpoint's own logits are not finite (NaN/inf weights?)")
    diff = float((got - ref).abs().max())
    tol = RTOL * max(1.0, float(ref.abs().max()))
    if not diff <= tol:
        raise VerifyError(f"exported logits differ from the checkpoint's by {diff:.3g} (tolerance {tol:.3g})")
    log.info(
        "verified: reloads with transformers, logits match (max |diff| %.2g on %d tokens)", diff, ids.shape[1]
    )
    return VerifyReport(diff, tol, int(ids.shape[1]), tokenizer is not None, expect_chat_template)
