"""Load the actor and reference models and shard them with FSDP2.

FSDP2 (`fully_shard`) wraps each decoder layer, then the root; the same call
runs on CPU with gloo (tests) and on GPUs with nccl. A single process trains
the plain module: sharding over one rank only adds hook overhead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

from fastgrpo.config import ModelConfig
from fastgrpo.train.dist import DistInfo
from fastgrpo.train.kernels import apply_liger, is_vision_config, select_attn_implementation
from fastgrpo.utils.optional import MissingDependencyError


class ModelLoadError(RuntimeError):
    """The model or tokenizer could not be loaded; the message names the path."""


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """model.dtype -> the compute dtype (`auto`: bfloat16 on GPU, float32 on CPU)."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return DTYPES[name]


def resolve_master_dtype(name: str, compute: torch.dtype) -> torch.dtype:
    """actor.master_dtype -> the dtype of the actor's parameters and optimizer state; never below the compute's."""
    master = DTYPES[name]
    if master.itemsize < compute.itemsize or (master != compute and master.itemsize == compute.itemsize):
        raise ValueError(f"actor.master_dtype={name} cannot hold model.dtype's {str(compute).replace('torch.', '')} "
                         "compute weights; set actor.master_dtype=float32")
    return master


def load_model_config(cfg: ModelConfig) -> Any:
    """model.path's config.json (no weights)."""
    check_model_path(cfg.path)
    try:
        return AutoConfig.from_pretrained(cfg.path, trust_remote_code=cfg.trust_remote_code)
    except Exception as e:
        raise ModelLoadError(f"could not read a model config from {cfg.path!r}: {type(e).__name__}: {e}") from None


DEMO_BASE = "runs/demo/base"
"""Where `make demo` links its warm-start model; configs/demo*.yaml train from it."""


def check_model_path(path: str, key: str = "model.path") -> None:
    """Fail with the fix when `path` names a local folder that is not there.

    Why: transformers tries a missing path as a hub id, and a relative path such as
    `runs/demo/base` then fails with "Repo id must be in the form ...", which hides
    the cause. A path counts as local when it starts with `.`, `/` or `~`, or is no
    valid hub id (huggingface_hub's own check: e.g. more than one `/`).
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

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


def is_vision_model(cfg: ModelConfig) -> bool:
    """Whether model.path holds a vision-language model (its config has a vision tower)."""
    return is_vision_config(load_model_config(cfg))


def load_tokenizer(cfg: ModelConfig) -> Any:
    path = cfg.tokenizer_path or cfg.path
    check_model_path(path, "model.tokenizer_path" if cfg.tokenizer_path else "model.path")
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    except Exception as e:
        raise ModelLoadError(f"could not load the tokenizer from {path!r}: {type(e).__name__}: {e}") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def load_policy_model(cfg: ModelConfig, device: torch.device, for_training: bool,
                      param_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """A causal LM, or an image-text-to-text model when the config has a vision tower.

    Parameters are loaded in `param_dtype` (default: model.dtype's compute dtype); the attention kernel is
    chosen for the compute dtype, since under mixed precision fp32 master weights run in bf16 (flash-attn).
    """
    check_model_path(cfg.path)
    compute = resolve_dtype(cfg.dtype, device)
    dtype = param_dtype or compute
    try:
        attn = select_attn_implementation(cfg.attn_implementation, device, compute)
    except (MissingDependencyError, RuntimeError, ValueError) as e:
        raise ModelLoadError(str(e)) from None
    try:
        config = AutoConfig.from_pretrained(cfg.path, trust_remote_code=cfg.trust_remote_code)
    except Exception as e:
        raise ModelLoadError(f"could not read a model config from {cfg.path!r}: {type(e).__name__}: {e}") from None
    # Qwen2-VL / Qwen2.5-VL / Qwen3-VL load as image-text-to-text models, which AutoModelForCausalLM does not do.
    auto_class = AutoModelForImageTextToText if is_vision_config(config) else AutoModelForCausalLM
    kind = "vision-language model" if is_vision_config(config) else "causal LM"
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
    if for_training:
        model.train()
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    else:
        model.eval()
        model.requires_grad_(False)
    return model


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The repeated transformer blocks of the language model: the unit FSDP2 shards and gathers one at a time.

    A vision-language model's vision blocks are left to the root unit on purpose: they run only when a
    micro-batch has images, and a rank without images would skip their all-gathers while the other
    ranks wait in them (a hang). The root unit is gathered on every rank at every forward.
    """
    names = getattr(model, "_no_split_modules", None) or []
    language_model = getattr(getattr(model, "model", None), "language_model", None)
    scope = language_model if isinstance(language_model, torch.nn.Module) else model
    layers = [m for m in scope.modules() if type(m).__name__ in names]
    if not layers:
        raise ModelLoadError(f"cannot find decoder layers to shard in {type(model).__name__}")
    return layers


def shard_fsdp2(model: torch.nn.Module, info: DistInfo, compute_dtype: torch.dtype | None,
                reshard_after_forward: bool) -> None:
    """Apply FSDP2 `fully_shard` to every decoder layer and then the root (in place).

    `compute_dtype` (when it differs from the parameters'): `MixedPrecisionPolicy(param_dtype=compute_dtype,
    reduce_dtype=float32)`: the sharded parameters (and so AdamW's state and the checkpoints) stay in their
    dtype, each unit is cast when gathered, and gradients are reduced and accumulated in fp32.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(info.device.type, (info.world_size,))
    kwargs: dict[str, Any] = {"mesh": mesh, "reshard_after_forward": reshard_after_forward}
    param_dtype = next(model.parameters()).dtype
    if compute_dtype is not None and compute_dtype != param_dtype:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
