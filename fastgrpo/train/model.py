"""The actor and reference models for training, sharded with FSDP2.

FSDP2 (`fully_shard`) wraps each decoder layer, then the root; the same call
runs on CPU with gloo (tests) and on GPUs with nccl. A single process trains
the plain module: sharding over one rank only adds hook overhead.
"""

from __future__ import annotations

from typing import Any

import torch

from fastgrpo.config import ModelConfig
from fastgrpo.models.loader import (
    DTYPES,
    ModelLoadError,
    check_model_path,
    is_vision_model,
    load_model_config,
    load_tokenizer,
    load_weights,
    resolve_dtype,
)
from fastgrpo.train.dist import DistInfo

__all__ = [
    "ModelLoadError",
    "check_model_path",
    "decoder_layers",
    "is_vision_model",
    "load_model_config",
    "load_policy_model",
    "load_tokenizer",
    "resolve_dtype",
    "resolve_master_dtype",
    "shard_fsdp2",
]
"""The loading itself is `fastgrpo.models.loader`'s (shared with eval); its names are here for the trainer."""


def resolve_master_dtype(name: str, compute: torch.dtype) -> torch.dtype:
    """actor.master_dtype -> the dtype of the actor's parameters and optimizer state; never below the compute's."""
    master = DTYPES[name]
    if master.itemsize < compute.itemsize or (master != compute and master.itemsize == compute.itemsize):
        raise ValueError(f"actor.master_dtype={name} cannot hold model.dtype's {str(compute).replace('torch.', '')} "
                         "compute weights; set actor.master_dtype=float32")
    return master


def load_policy_model(cfg: ModelConfig, device: torch.device, for_training: bool,
                      param_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """`fastgrpo.models.loader.load_weights`, set up for training (train mode, gradient checkpointing, no KV
    cache) or as a frozen reference (no gradients)."""
    model = load_weights(cfg, device, param_dtype)
    if for_training:
        model.train()
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    else:
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
    # the trainable parameters' dtype (a LoRA actor's frozen base is already in the compute dtype)
    param_dtype = next((p.dtype for p in model.parameters() if p.requires_grad), next(model.parameters()).dtype)
    if compute_dtype is not None and compute_dtype != param_dtype:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
    for layer in decoder_layers(model):
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
