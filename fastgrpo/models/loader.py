"""The one model loader: config, tokenizer and weights from a folder or hub id, with one dtype rule.

Training (`fastgrpo.train.model`), validation, `fastgrpo eval` (`fastgrpo.eval.engine`) and the
dry run all load through here, so a model that trains also evaluates, and a dtype means the
same thing everywhere:
- `auto` is bfloat16 where the model *computes* on a CUDA device, float32 elsewhere; a model
  loaded on the CPU is never bfloat16 unless asked (or it is only a weight carrier for a GPU
  engine, whose caller says so by passing `compute_device`);
- an explicit dtype is always honoured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

from fastgrpo.config import ModelConfig
from fastgrpo.models.kernels import apply_liger, is_vision_config, select_attn_implementation
from fastgrpo.utils.optional import MissingDependencyError

__all__ = [
    "DEMO_BASE",
    "DTYPES",
    "ModelLoadError",
    "check_model_path",
    "eos_token_ids",
    "is_vision_model",
    "load_model_config",
    "load_tokenizer",
    "load_weights",
    "resolve_dtype",
]


class ModelLoadError(RuntimeError):
    """The model, its config or its tokenizer could not be loaded; the message names the path (CLI: exit 2)."""


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

DEMO_BASE = "runs/demo/base"
"""Where `make demo` links its warm-start model; configs/demo*.yaml train from it."""


def resolve_dtype(name: str, device: torch.device | str) -> torch.dtype:
    """model.dtype / `--dtype` -> the compute dtype on `device` (`auto`: bfloat16 on CUDA, float32 elsewhere)."""
    if name == "auto":
        return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    if name not in DTYPES:
        raise ModelLoadError(f"unknown dtype {name!r}; choose auto, {', '.join(DTYPES)}")
    return DTYPES[name]


def check_model_path(path: str, key: str = "model.path") -> None:
    """Fail with the fix when `path` names a local folder that is not there.

    Why: transformers tries a missing path as a hub id, and a relative path such as
    `runs/demo/base` then fails with "Repo id must be in the form ...", which hides
    the cause. A path counts as local when it starts with `.`, `/` or `~`, or is no
    valid hub id (huggingface_hub's own check: e.g. more than one `/`).
    """
    if not path:
        raise ModelLoadError(f"{key} is empty: set it to a local model folder or a hub id")
    if Path(path).expanduser().exists():
        return
    local = path.startswith((".", "/", "~"))
    if not local:
        try:
            validate_repo_id(path)
        except HFValidationError:
            local = True
    if not local:
        return
    msg = f"{key} {path!r} does not exist (a local folder, not a hub id such as 'Qwen/Qwen2.5-0.5B-Instruct')"
    if Path(path).as_posix().rstrip("/").endswith(DEMO_BASE):
        msg += (
            f": {DEMO_BASE} is the CPU demo's warm-start model, which `make demo` builds (run from the repo "
            "root); run `make demo` first"
        )
    raise ModelLoadError(msg)


def load_model_config(cfg: ModelConfig, key: str = "model.path") -> Any:
    """model.path's config.json (no weights)."""
    check_model_path(cfg.path, key)
    local = Path(cfg.path).expanduser()
    if local.is_dir() and not (local / "config.json").is_file():
        raise ModelLoadError(f"{key} {cfg.path!r} has no config.json; pass a Hugging Face model folder or hub id")
    try:
        return AutoConfig.from_pretrained(cfg.path, trust_remote_code=cfg.trust_remote_code)
    except Exception as e:
        raise ModelLoadError(f"could not read a model config from {cfg.path!r}: {type(e).__name__}: {e}") from None


def is_vision_model(cfg: ModelConfig) -> bool:
    """Whether model.path holds a vision-language model (its config has a vision tower)."""
    return is_vision_config(load_model_config(cfg))


def load_tokenizer(cfg: ModelConfig, key: str = "model.path") -> Any:
    """model.tokenizer_path's (else model.path's) tokenizer, with a pad token (the EOS when it has none)."""
    path = cfg.tokenizer_path or cfg.path
    check_model_path(path, "model.tokenizer_path" if cfg.tokenizer_path else key)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except Exception as e:
        raise ModelLoadError(f"could not load the tokenizer from {path!r}: {type(e).__name__}: {e}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_weights(cfg: ModelConfig, device: torch.device | str, param_dtype: torch.dtype | None = None,
                 compute_device: torch.device | str | None = None, key: str = "model.path") -> torch.nn.Module:
    """A causal LM, or an image-text-to-text model when the config has a vision tower, on `device`, in eval mode.

    Parameters are loaded in `param_dtype` (default: cfg.dtype's compute dtype on `compute_device`, which is
    `device` unless the weights only travel through this process to an engine elsewhere, as vLLM's do).
    The attention kernel is chosen for the compute dtype: under mixed precision fp32 master weights run
    in bf16 (flash-attn).
    """
    device = torch.device(device)
    compute_on = torch.device(compute_device) if compute_device is not None else device
    compute = resolve_dtype(cfg.dtype, compute_on)
    dtype = param_dtype or compute
    config = load_model_config(cfg, key)
    try:
        attn = select_attn_implementation(cfg.attn_implementation, device, compute)
    except (MissingDependencyError, RuntimeError, ValueError) as e:
        raise ModelLoadError(str(e)) from None
    # Qwen2-VL / Qwen2.5-VL / Qwen3-VL load as image-text-to-text models, which AutoModelForCausalLM does not do.
    vision = is_vision_config(config)
    auto_class = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    kind = "vision-language model" if vision else "causal LM"
    try:
        model = auto_class.from_pretrained(
            cfg.path, config=config, dtype=dtype, attn_implementation=attn, trust_remote_code=cfg.trust_remote_code
        )
        apply_liger(model, cfg.enable_liger)
    except MissingDependencyError as e:
        raise ModelLoadError(str(e)) from None
    except Exception as e:
        raise ModelLoadError(f"could not load a {kind} from {cfg.path!r}: {type(e).__name__}: {e}") from None
    model.to(device)
    model.eval()
    return model


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Where generation stops: the tokenizer's EOS, then the generation config's (chat models often stop on several)."""
    ids: list[int] = []
    gen = getattr(model, "generation_config", None)
    for value in (getattr(tokenizer, "eos_token_id", None), getattr(gen, "eos_token_id", None)):
        for v in value if isinstance(value, list | tuple) else [value]:
            if v is not None and int(v) not in ids:
                ids.append(int(v))
    return ids
