"""Export a LoRA run: its checkpoints hold the adapters only; the frozen base is the run's model.path.

The export is the base with W + scale * B @ A in every adapted layer, written like any full checkpoint, so
the rest of the exporter (sharding, dtype, card, verification) is shared. `--adapter-only` writes a peft
adapter folder instead, with peft's own `save_pretrained`, for `peft.PeftModel.from_pretrained(base, folder)`.
"""

from __future__ import annotations

from pathlib import Path
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


def write_adapter_folder(ckpt: CheckpointInfo, spec: LoraSpec, out: Path) -> None:
    """peft's own adapter folder (`adapter_config.json`, `adapter_model.safetensors`) in `out`, then checked:
    `peft.PeftModel.from_pretrained(base, out)` must give the trained policy's logits."""
    import peft

    from fastgrpo.models.lora import peft_config

    policy = adapter_model(ckpt, spec)
    base_cfg = _base_config(ckpt)
    wrapped = peft.get_peft_model(load_weights(base_cfg, "cpu", torch.float32), peft_config(spec, _has_vision(policy)))
    result = wrapped.load_state_dict({"base_model.model." + k: v for k, v in adapter_state_dict(policy).items()},
                                     strict=False)
    if result.unexpected_keys or any(".lora_" in k for k in result.missing_keys):
        raise ExportError(f"peft's adapter layout differs from the trainer's: unexpected {result.unexpected_keys[:3]}")
    wrapped.peft_config["default"].base_model_name_or_path = base_cfg.path
    wrapped.save_pretrained(str(out))

    reloaded = peft.PeftModel.from_pretrained(load_weights(base_cfg, "cpu", torch.float32), str(out)).eval()
    vocab = int(getattr(policy.config.get_text_config(), "vocab_size", 32))
    ids = torch.arange(48).remainder(vocab)[None]
    with torch.no_grad():
        diff = (reloaded(input_ids=ids).logits - policy(input_ids=ids).logits).abs().max().item()
    if diff > 1e-4:
        raise ExportError(f"the adapter folder does not reproduce the trained policy (logits differ by {diff:.3g})")


def _has_vision(model: torch.nn.Module) -> bool:
    import re

    from fastgrpo.models.lora import VISION_TOWER

    return any(re.fullmatch(VISION_TOWER, name) for name, _ in model.named_modules())
