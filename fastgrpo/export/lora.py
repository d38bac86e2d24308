"""Export a LoRA run: its checkpoints hold the adapters only; the frozen base is the run's model.path.

The export is the base with W + scale * B @ A in every adapted layer, written like any full checkpoint, so
the rest of the exporter (sharding, dtype, card, verification) is shared. (An adapter-only peft folder is
not offered yet.)
"""

from __future__ import annotations

from typing import Any

import torch

from fastgrpo.config import ModelConfig
from fastgrpo.export.checkpoint import CheckpointInfo, TensorMeta, load_tensors, read_tensor_metadata
from fastgrpo.export.errors import ExportError
from fastgrpo.models.loader import ModelLoadError, load_weights
from fastgrpo.models.lora import LoraSpec, adapter_state_dict, add_lora, merged_weights


def lora_spec(ckpt: CheckpointInfo) -> LoraSpec | None:
    """The run's actor.lora, or None for a full fine-tuning run."""
    lora = (ckpt.run_config.get("actor") or {}).get("lora") or {}
    if not lora.get("rank"):
        return None
    return LoraSpec(rank=int(lora["rank"]), alpha=float(lora.get("alpha", 32.0)),
                    dropout=float(lora.get("dropout", 0.0)), target_modules=tuple(lora.get("target_modules") or ()))


def _base_config(ckpt: CheckpointInfo) -> ModelConfig:
    model = ckpt.run_config.get("model") or {}
    path = model.get("path")
    if not path:
        raise ExportError(f"{ckpt.path} is a LoRA checkpoint, but its run's config.yaml names no model.path "
                          "(the frozen base the adapters apply to)")
    return ModelConfig(path=str(path), dtype="float32", attn_implementation="eager",
                       trust_remote_code=bool(model.get("trust_remote_code", False)))


def adapter_model(ckpt: CheckpointInfo, spec: LoraSpec) -> torch.nn.Module:
    """The base model (fp32, CPU) with the checkpoint's adapters loaded: the policy the run trained."""
    cfg = _base_config(ckpt)
    try:
        model = load_weights(cfg, "cpu", torch.float32)
    except ModelLoadError as e:
        raise ExportError(f"{ckpt.path} is a LoRA checkpoint; its base model (the run's model.path) could not be "
                          f"loaded: {e}. Run export where that path resolves (the training directory)") from None
    add_lora(model, spec, torch.float32)
    # Only the adapters: DCP may also list a tied alias of a frozen tensor (lm_head.weight), the base's own.
    saved = {k for k in read_tensor_metadata(ckpt.model_dir) if ".lora_" in k}
    expected = set(adapter_state_dict(model))
    if saved != expected:
        missing, extra = sorted(expected - saved)[:3], sorted(saved - expected)[:3]
        raise ExportError(f"the adapters in {ckpt.model_dir} do not fit the run's LoRA settings on "
                          f"{cfg.path}: missing {missing}, unexpected {extra}")
    adapters = load_tensors(ckpt.model_dir, sorted(saved))
    model.load_state_dict(adapters, strict=False)
    return model.eval()


def merged_tensors(ckpt: CheckpointInfo, spec: LoraSpec) -> dict[str, torch.Tensor]:
    """The merged model's full state dict (plain HF names), in fp32."""
    model = adapter_model(ckpt, spec)
    return dict(merged_weights(model.state_dict().items(), spec.scaling))


def merged_metadata(config: Any, dtype: torch.dtype, trust_remote_code: bool = False) -> dict[str, TensorMeta]:
    """Names and shapes of the merged model (built on the meta device: no memory), in `dtype`."""
    from fastgrpo.export.hf_folder import build_model

    with torch.device("meta"):
        model = build_model(config, trust_remote_code)
    return {k: TensorMeta(tuple(v.shape), dtype if v.is_floating_point() else v.dtype)
            for k, v in model.state_dict().items()}
