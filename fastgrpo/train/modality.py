"""What differs between training a text model and a vision-language one, behind one interface.

`load_modality` (called once in the recipe's setup) reads model.path and returns a `TextModality`
or a `VisionModality`. Each owns, for its kind of model: the tokenizer (and the Qwen-VL processor),
loading the training prompts, the rollout engine (`fastgrpo.rollout.make_engine`), the engine's
prompt inputs, the actor's packing (`fastgrpo.train.batch` / `fastgrpo.train.vision_batch`) and
the response log-probs. The recipe calls these and never asks which kind of model it trains.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from fastgrpo.config import Config
from fastgrpo.data.chat_template import configure_chat_template
from fastgrpo.data.io import BadRows, DataSourceError
from fastgrpo.data.processor import VisionProcessor
from fastgrpo.data.prompts import PromptExample, load_prompts
from fastgrpo.data.vision import load_vision_prompts
from fastgrpo.models.loader import is_vision_model, load_tokenizer
from fastgrpo.rollout import PromptInput, RolloutEngine, make_engine
from fastgrpo.train.batch import Packed, pack, pack_shared_prompt, pack_varlen, response_token_stats
from fastgrpo.train.dist import DistInfo, barrier
from fastgrpo.train.logprobs import HeadOptions, TokenStats
from fastgrpo.train.step_batch import Sample
from fastgrpo.train.vision_batch import pack_vision, vision_response_token_stats

__all__ = ["Modality", "TextModality", "VisionModality", "load_modality"]


class Modality:
    """The interface; see the module docstring. `processor` is None for a text model."""

    name: str
    tokenizer: Any
    processor: VisionProcessor | None = None

    def __init__(self, cfg: Config, info: DistInfo | None) -> None:
        self.cfg, self._info = cfg, info

    @property
    def info(self) -> DistInfo:
        if self._info is None:
            raise RuntimeError("this modality was loaded without a process group (load_modality(cfg)): "
                               "it has the tokenizer side only")
        return self._info

    def load_prompts(self, bad_rows: BadRows) -> list[PromptExample]:
        """data.train_files as prompts of this modality (rendered, tokenized, complexity set)."""
        raise NotImplementedError

    @property
    def chat_template(self) -> str | None:
        """The template prompts are rendered with (None: the tokenizer's own)."""
        return None

    def check_benchmarks(self, benchmarks: Sequence[Any]) -> None:
        """Raise ValueError for validation benchmarks this model cannot take."""

    def val_benchmark_kwargs(self) -> dict[str, Any]:
        """`custom_benchmark` arguments for data.val_files that depend on the modality."""
        return {"image_key": None, "prompt": self.cfg.data.format_prompt}

    def resolve_packing(self, requested: str, attn: str | None) -> str:
        """actor.packing `auto` -> this modality's best layout; a layout it cannot use -> ValueError."""
        raise NotImplementedError

    def make_engine(self, model: Any, **vllm_kwargs: Any) -> RolloutEngine:
        """The rollout engine per rollout.engine, returning the sampling log-probs."""
        r = self.cfg.rollout
        return make_engine(r.engine, model, self.tokenizer, r.micro_batch_size, return_logprobs=True,
                           processor=self.processor, **vllm_kwargs)

    def prompt_input(self, example: PromptExample, engine_name: str) -> PromptInput:
        raise NotImplementedError

    @contextmanager
    def update_scope(self) -> Iterator[None]:
        """One policy update: per-update caches live in here."""
        yield

    def pack(self, samples: Sequence[Sample], packing: str) -> Packed:
        raise NotImplementedError

    def token_stats(self, model: torch.nn.Module, packed: Packed, opts: HeadOptions) -> TokenStats:
        raise NotImplementedError

    def save_pretrained(self, folder: Path) -> None:
        """Write what a checkpoint's HF folder needs besides the model config: tokenizer (and image processor)."""
        self.tokenizer.save_pretrained(folder)


class TextModality(Modality):
    name = "text"

    def __init__(self, cfg: Config, info: DistInfo | None) -> None:
        super().__init__(cfg, info)
        self.tokenizer = load_tokenizer(cfg.model)
        configure_chat_template(cfg.data, self.tokenizer)  # data.override_chat_template / chat_template_kwargs

    def load_prompts(self, bad_rows: BadRows) -> list[PromptExample]:
        return load_prompts(self.cfg.data.train_files, self.cfg.data, self.tokenizer, bad_rows=bad_rows)

    def resolve_packing(self, requested: str, attn: str | None) -> str:
        """`auto` -> shared_prompt with sdpa, padding-free varlen with flash-attn, else padded."""
        if requested == "shared_prompt" and attn != "sdpa":
            raise ValueError(f"actor.packing=shared_prompt needs sdpa attention, not attn_implementation {attn!r}; "
                             "set actor.packing=padded, varlen or auto")
        if requested != "auto":
            return requested
        return {"sdpa": "shared_prompt", "flash_attention_2": "varlen"}.get(str(attn), "padded")

    def check_benchmarks(self, benchmarks: Sequence[Any]) -> None:
        from fastgrpo.eval import resolve_names

        images = [b.name for b in benchmarks if b.modality == "vision"]
        if images:
            raise ValueError(f"eval.benchmarks: {', '.join(images)} need images, but {self.cfg.model.path} is a text "
                             f"model; choose text benchmarks (`text`: {', '.join(resolve_names('text'))})")

    def prompt_input(self, example: PromptExample, engine_name: str) -> PromptInput:
        return PromptInput(example.prompt_ids, uid=example.uid)

    def pack(self, samples: Sequence[Sample], packing: str) -> Packed:
        prompts, responses = [s.example.prompt_ids for s in samples], [s.response_ids for s in samples]
        pad, device = self.tokenizer.pad_token_id, self.info.device
        if packing == "shared_prompt":
            return pack_shared_prompt(prompts, responses, pad, device, self.cfg.actor.pack_length)
        if packing == "varlen":
            return pack_varlen(prompts, responses, pad, device)
        return pack(prompts, responses, pad, device)

    def token_stats(self, model: torch.nn.Module, packed: Packed, opts: HeadOptions) -> TokenStats:
        return response_token_stats(model, packed, self.cfg.rollout.temperature, opts)


class VisionModality(Modality):
    """Qwen-VL models: images in the prompts, patches re-encoded on the rank that trains on them."""

    name = "vision"

    def __init__(self, cfg: Config, info: DistInfo | None) -> None:
        super().__init__(cfg, info)
        self.processor = VisionProcessor.from_pretrained(cfg.model.tokenizer_path or cfg.model.path,
                                                         cfg.data.min_pixels, cfg.data.max_pixels,
                                                         trust_remote_code=cfg.model.trust_remote_code)
        configure_chat_template(cfg.data, self.processor)
        self.tokenizer = self.processor.tokenizer
        self._patches: dict[int, dict[str, torch.Tensor]] = {}

    def load_prompts(self, bad_rows: BadRows) -> list[PromptExample]:
        cfg, info = self.cfg, self.info
        # Local rank 0 of each node computes (and caches) the image complexity first; the others
        # read its cache (per node: the cache folder need not be shared between nodes).
        if info.local_rank != 0:
            barrier(info)
        examples = load_vision_prompts(cfg.data.train_files, cfg.data, self.processor, bad_rows=bad_rows)
        if info.local_rank == 0:
            barrier(info)
        text_only = sum(1 for e in examples if not e.images)
        if text_only and info.world_size > 1:
            # Measured on 2 gloo ranks: a backward with images reduce-scatters the vision tower's unit
            # in another order than one without, so the collectives mismatch (abort or hang).
            raise DataSourceError(
                f"{text_only} of {len(examples)} prompts in data.train_files have no image; with "
                f"{info.world_size} processes, ranks with and without images take mismatched FSDP "
                "collectives. Drop the text-only rows (or give each one an image), or train on one process."
            )
        return list(examples)

    @property
    def chat_template(self) -> str | None:
        return self.processor.chat_template

    def val_benchmark_kwargs(self) -> dict[str, Any]:
        # The images too; without a format prompt the bare question, whose own `<image>` markers place them.
        return {"image_key": self.cfg.data.image_key, "prompt": self.cfg.data.format_prompt or "{question}"}

    def resolve_packing(self, requested: str, attn: str | None) -> str:
        if requested in ("shared_prompt", "varlen"):
            raise ValueError(f"actor.packing={requested} needs a text model, not a vision one (3-D rope "
                             "positions); set actor.packing=padded (or auto)")
        return "padded"

    def prompt_input(self, example: PromptExample, engine_name: str) -> PromptInput:
        return self.processor.prompt_input(example, with_processor_inputs=engine_name == "hf")

    @contextmanager
    def update_scope(self) -> Iterator[None]:
        """Patches are re-encoded once per prompt and update (ppo_epochs and the reference reuse them)."""
        self._patches = {}
        try:
            yield
        finally:
            self._patches = {}

    def _processor_inputs(self, example: PromptExample) -> dict[str, torch.Tensor] | None:
        if not example.images:
            return None
        cached = self._patches.get(example.uid)
        if cached is None:
            cached = self.processor.prompt_input(example, with_processor_inputs=True).processor_inputs
            self._patches[example.uid] = cached
        return cached

    def pack(self, samples: Sequence[Sample], packing: str) -> Packed:
        p = self.processor
        return pack_vision([s.example.prompt_ids for s in samples], [s.response_ids for s in samples],
                           [self._processor_inputs(s.example) for s in samples], self.tokenizer.pad_token_id,
                           self.info.device, p.image_token_id, p.video_token_id, p.vision_token_ids, p.merge_size)

    def token_stats(self, model: torch.nn.Module, packed: Packed, opts: HeadOptions) -> TokenStats:
        return vision_response_token_stats(model, packed, self.cfg.rollout.temperature, opts)

    def save_pretrained(self, folder: Path) -> None:
        super().save_pretrained(folder)
        self.processor.image_processor.save_pretrained(folder)


def load_modality(cfg: Config, info: DistInfo | None = None) -> Modality:
    """The modality of model.path (a vision tower in its config: vision), its tokenizer/processor loaded.

    Without `info` (the dry run) only the tokenizer side works: no prompts, engine or packing.
    """
    kind = VisionModality if is_vision_model(cfg.model) else TextModality
    return kind(cfg, info)
