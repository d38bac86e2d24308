"""Map checkpoint tensors onto a Hugging Face model folder: names, tied weights, shards, base files.

Why write safetensors directly instead of `model.save_pretrained`: the export
then never holds a model instance next to the state dict (one copy of the
weights in memory), shard names and the index follow the HF convention exactly,
and a dry run can plan every file from the DCP metadata alone.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from fastgrpo.export.checkpoint import EXPORT_MARKER, TensorMeta
from fastgrpo.export.errors import ExportError

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
SAFE_INDEX = "model.safetensors.index.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".onnx")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def parse_size(text: str | int) -> int:
    """'5GB' -> 5e9 bytes (decimal units as HF uses), '2GiB' -> 2**31, '1000' -> 1000."""
    if isinstance(text, int):
        size = text
    else:
        m = _SIZE.match(text)
        if not m:
            raise ExportError(f"--max-shard-size {text!r}: expected a size like 5GB, 500MB or 2GiB")
        size = int(float(m.group(1)) * _UNITS[(m.group(2) or "B").upper()])
    if size <= 0:
        raise ExportError(f"--max-shard-size {text!r} must be positive")
    return size


def format_size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


# -- model structure ------------------------------------------------------------------------------------------
def load_config(base_dir: Path, trust_remote_code: bool = False) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(base_dir), trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ExportError(f"could not read the model config in {base_dir}: {type(e).__name__}: {e}") from None


def build_model(config: Any, trust_remote_code: bool = False) -> torch.nn.Module:
    """An instance of the class named in config.architectures (else AutoModelForCausalLM), on the current device.

    Why the architecture class: the trainer saved the parameter names of that class.
    """
    import transformers

    archs = getattr(config, "architectures", None) or []
    cls = getattr(transformers, archs[0], None) if archs else None
    if cls is not None and isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel):
        return cls(config)
    return transformers.AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


@dataclass
class ModelLayout:
    """Parameter/buffer names the model class expects, and which of them are tied together."""

    names: list[str]
    """state_dict keys in the model's order."""
    tied: dict[str, str]
    """alias -> canonical name (e.g. lm_head.weight -> model.embed_tokens.weight); aliases are not saved."""
    shapes: dict[str, tuple[int, ...]]


def model_layout(config: Any, trust_remote_code: bool = False) -> ModelLayout:
    """Read names and ties from a model built on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        model = build_model(config, trust_remote_code)
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    tied = {alias: names[0] for names in groups.values() for alias in names[1:]}
    state = model.state_dict()
    return ModelLayout(names=list(state), tied=tied, shapes={k: tuple(v.shape) for k, v in state.items()})


def select_tensors(layout: ModelLayout, available: dict[str, TensorMeta]) -> dict[str, str]:
    """Output name -> checkpoint name for every tensor to save.

    Tied aliases collapse onto their canonical name (taken from the alias when the
    checkpoint only has that one). Raises `ExportError` when the checkpoint and the
    run's model config disagree (missing or unexpected tensors, wrong shapes).
    """
    plan: dict[str, str] = {}
    missing: list[str] = []
    aliases_of: dict[str, list[str]] = {}
    for alias, canon in layout.tied.items():
        aliases_of.setdefault(canon, []).append(alias)
    for name in layout.names:
        if name in layout.tied:
            continue
        source = (
            name if name in available else next((a for a in aliases_of.get(name, []) if a in available), None)
        )
        if source is None:
            missing.append(name)
        else:
            plan[name] = source
    known = set(layout.names)
    unexpected = sorted(n for n in available if n not in known)
    wrong = [
        f"{n} {available[n].shape} vs {layout.shapes[n]}"
        for n in available
        if n in known and available[n].shape != layout.shapes[n]
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(
                f"{len(wrong)} tensor(s) have other shapes than the model's (e.g. {'; '.join(wrong[:2])})"
            )
        if missing:
            parts.append(
                f"{len(missing)} tensor(s) the model needs are missing (e.g. {', '.join(missing[:3])})"
            )
        if unexpected:
            parts.append(
                f"{len(unexpected)} tensor(s) are not in the model (e.g. {', '.join(unexpected[:3])})"
            )
        raise ExportError(
            "the checkpoint does not match the run's model config: "
            + "; ".join(parts)
            + ". Export with the hf_base/ of the run that wrote this checkpoint."
        )
    return plan


def plan_shards(sizes: list[tuple[str, int]], max_shard_bytes: int) -> list[list[str]]:
    """Greedy, order-preserving packing; a tensor larger than the limit gets a shard of its own."""
    shards: list[list[str]] = []
    current: list[str] = []
    current_bytes = 0
    for name, nbytes in sizes:
        if current and current_bytes + nbytes > max_shard_bytes:
            shards.append(current)
            current, current_bytes = [], 0
        current.append(name)
        current_bytes += nbytes
    if current:
        shards.append(current)
    return shards


def shard_file_names(n: int) -> list[str]:
    if n == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]


def shard_index(weight_map: dict[str, str], total_size: int) -> str:
    return (
        json.dumps(
            {"metadata": {"total_size": total_size}, "weight_map": weight_map}, indent=2, sort_keys=True
        )
        + "\n"
    )


def write_shard(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def cast_tensor(name: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Cast floating tensors to the export dtype; refuse a cast that overflows (fp32 -> fp16 > 65504)."""
    if not tensor.is_floating_point() or tensor.dtype == dtype:
        return tensor
    out = tensor.to(dtype)
    if not torch.isfinite(out).all() and torch.isfinite(tensor).all():
        raise ExportError(f"{name} overflows {dtype_name(dtype)}: export with --dtype bfloat16 or float32")
    return out


# -- non-weight files -----------------------------------------------------------------------------------------
def base_files(base_dir: Path) -> list[Path]:
    """Config, generation config, tokenizer/processor files and chat template of the base folder (no weights)."""
    out = []
    for p in sorted(base_dir.rglob("*")):
        rel = p.relative_to(base_dir)
        if not p.is_file() or any(part.startswith(".") for part in rel.parts):
            continue
        if p.name.endswith(WEIGHT_SUFFIXES) or p.name.endswith(".index.json"):
            continue
        if rel.as_posix() in ("README.md", EXPORT_MARKER):
            continue
        out.append(p)
    return out


def patched_config_json(base_dir: Path, dtype: torch.dtype) -> str:
    """config.json of the base folder with its dtype set to the export dtype (both v4 and v5 key names)."""
    data = json.loads((base_dir / "config.json").read_text())
    data["dtype"] = dtype_name(dtype)
    if "torch_dtype" in data:
        data["torch_dtype"] = dtype_name(dtype)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def default_generation_config(config: Any) -> str:
    from transformers import GenerationConfig

    return GenerationConfig.from_model_config(config).to_json_string()


def copy_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def has_chat_template(folder: Path) -> bool:
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    tok_cfg = folder / "tokenizer_config.json"
    if tok_cfg.is_file():
        try:
            return bool(json.loads(tok_cfg.read_text()).get("chat_template"))
        except json.JSONDecodeError:
            return False
    return False


def has_tokenizer(folder: Path) -> bool:
    names = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")
    return any((folder / n).is_file() for n in names)
