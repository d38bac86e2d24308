"""LoRA adapters on the actor, through peft.

The adapters are injected into the Hugging Face model itself (`peft.inject_adapter_in_model`), not
wrapped in a `PeftModel`: the actor keeps its class, its `config`, its decoder layers (what FSDP2
shards) and the forward the packing code calls, so the rest of the trainer runs unchanged. Only the
adapter matrices require gradients, so only they reach AdamW and the checkpoints.

The reference policy is the same model with the adapters switched off (`adapters_disabled`), not a
second copy of the weights: that is where LoRA's memory saving for KL-regularized RL comes from.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

ADAPTER = "default"
"""peft's adapter name; one adapter per actor."""
VISION_TOWER = r".*\b(visual|vision_tower|vision_model)\b.*"
"""Module names of a vision-language model's vision tower (Qwen2/2.5/3-VL: `model.visual`), never adapted."""
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<which>[AB])\.(?P<adapter>[^.]+)\.weight$")
_BASE_KEY = re.compile(r"^(?P<module>.+)\.base_layer\.(?P<param>weight|bias)$")


@dataclass(frozen=True)
class LoraSpec:
    """What `add_lora` needs from actor.lora (kept apart from the config classes so tests can build one)."""

    rank: int
    alpha: float
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ()

    @property
    def scaling(self) -> float:
        """LoRA's output scale alpha / rank (peft's default, not rsLoRA)."""
        return self.alpha / self.rank


def peft_config(spec: LoraSpec, has_vision_tower: bool = False) -> Any:
    """The `peft.LoraConfig` for `spec`: all linear layers of the language model unless target_modules names them.

    `all-linear` is peft's own selection (every nn.Linear except the output head); the vision tower is
    excluded as EasyR1 does, since its features feed every answer and are trained rarely, if at all.
    """
    import peft  # lazily: importing peft takes seconds, and only LoRA runs need it

    targets: Any = list(spec.target_modules) if spec.target_modules else "all-linear"
    return peft.LoraConfig(
        r=spec.rank, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=targets,
        exclude_modules=VISION_TOWER if has_vision_tower else None, bias="none",
    )


def add_lora(model: torch.nn.Module, spec: LoraSpec, adapter_dtype: torch.dtype) -> None:
    """Inject LoRA adapters into `model` in place; freeze everything else; adapters in `adapter_dtype`.

    The base weights keep their (compute) dtype: they are frozen, so fp32 master copies of them would
    only cost memory. The adapters are the trainable parameters and live in `adapter_dtype` (actor.master_dtype).
    """
    import peft

    try:
        vision = any(re.fullmatch(VISION_TOWER, name) for name, _ in model.named_modules())
        peft.inject_adapter_in_model(peft_config(spec, vision), model, adapter_name=ADAPTER)
    except ValueError as e:  # e.g. target_modules matching nothing
        raise ValueError(f"actor.lora.target_modules: {e}") from None
    for name, p in model.named_parameters():
        adapter = ".lora_" in name
        p.requires_grad_(adapter)
        if adapter and p.dtype != adapter_dtype:
            p.data = p.data.to(adapter_dtype)


def has_lora(model: torch.nn.Module) -> bool:
    return any(".lora_A." in name for name, _ in model.named_parameters())


def _tuner_layers(model: torch.nn.Module) -> list[Any]:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [m for m in model.modules() if isinstance(m, BaseTunerLayer)]


@contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[None]:
    """Run `model` as its base (the reference policy) inside the block; the adapters come back after it.

    Only a flag per adapted layer changes (no weights move), so under FSDP2 every rank flips the same
    flags and the collectives of the forward are the same as with adapters.
    """
    layers = _tuner_layers(model)
    if not layers:
        raise ValueError("adapters_disabled: the model has no LoRA adapters")
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def lora_scaling(model: torch.nn.Module) -> float | None:
    """The adapters' output scale (alpha / rank) as peft set it; None for a model without LoRA."""
    for layer in _tuner_layers(model) if has_lora(model) else []:
        scaling = getattr(layer, "scaling", {}).get(ADAPTER)
        if scaling is not None:
            return float(scaling)
    return None


def adapter_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Adapter tensors only, by their names in `model.state_dict()` (what a LoRA checkpoint holds)."""
    return {k: v for k, v in model.state_dict().items() if ".lora_" in k}


def merged_weights(items: Iterable[tuple[str, torch.Tensor]], scaling: float) -> Iterator[tuple[str, torch.Tensor]]:
    """Stream a LoRA model's full (unsharded) state-dict items as the plain model's: W + scaling * B @ A.

    Input in `state_dict()` order, where each adapted layer's `base_layer.weight` (and bias) come just before
    its `lora_A` and `lora_B`; output under the plain names (`q_proj.weight`), in the same order, holding at
    most one layer's tensors at a time. Why not peft's `merge_adapter`: it merges in place and `unmerge` later
    subtracts the same product, which leaves rounding residue in the weights being trained, and under FSDP2
    the modules hold shards; this works on the gathered tensors the caller streams (vLLM sync, export), and the
    product is formed in fp32 then cast to the base's dtype.
    """
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in items:
        base = _BASE_KEY.match(name)
        lora = _LORA_KEY.match(name)
        if base is None and lora is None:
            yield name, tensor
            continue
        module = (base or lora).group("module")  # type: ignore[union-attr]
        parts = pending.setdefault(module, {})
        if base is not None and base.group("param") == "bias":
            yield f"{module}.bias", tensor
            continue
        parts["W" if base is not None else lora.group("which")] = tensor  # type: ignore[union-attr]
        if len(parts) == 3:
            del pending[module]
            w, a, b = parts["W"], parts["A"], parts["B"]
            delta = (b.float() @ a.float()) * scaling
            yield f"{module}.weight", (w.float() + delta).to(w.dtype)
    if pending:
        raise ValueError(f"LoRA layers without their base weight or both adapters: {sorted(pending)}")


def trainable_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; with tied embeddings the shared tensor counts once."""
    seen: set[int] = set()
    trainable = total = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return trainable, total
