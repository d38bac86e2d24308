"""The one interface every rollout engine implements (HF generate, vLLM).

Trainer and eval only ever see `RolloutEngine.generate`: prompts in (token ids,
optional images), G responses per prompt out, grouped prompt-major, with the
sampled tokens' log-probs and lengths. Padding never leaves the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    """-1 (or 0) disables top-k."""
    max_new_tokens: int = 256
    seed: int | None = None


@dataclass
class PromptInput:
    prompt_ids: list[int]
    images: list[Any] = field(default_factory=list)
    """PIL images for vision models (already resized); empty for text."""
    processor_inputs: dict[str, Any] | None = None
    """Extra model inputs built by a processor (pixel_values, image_grid_thw) for HF vision models."""
    uid: int | None = None
    """Stable id of the prompt (e.g. its dataset index). Sampling noise is keyed by (seed, uid, sample),
    so a response does not depend on batch composition, rank count or padding."""


@dataclass
class RolloutOutput:
    """Responses grouped prompt-major: index i belongs to prompt i // n."""

    response_ids: list[list[int]]
    """Generated ids; ends with EOS when the model stopped, never contains padding."""
    logprobs: list[list[float]] | None
    """Log-prob of each generated token under the sampling distribution (None if not computed)."""
    n: int

    @property
    def lengths(self) -> list[int]:
        return [len(r) for r in self.response_ids]

    def prompt_index(self, i: int) -> int:
        return i // self.n


class RolloutEngine(Protocol):
    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> RolloutOutput: ...

    def sync_weights(self, model: Any) -> None:
        """Make the engine sample from `model`'s current weights (no-op when it shares them)."""
        ...

    def sleep(self) -> None:
        """Release engine memory while the actor trains (no-op for HF)."""
        ...

    def wake_up(self) -> None: ...


def eos_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokenizer's EOS plus the generation config's (chat models often stop on several)."""
    eos = [tokenizer.eos_token_id]
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for e in gen_eos if isinstance(gen_eos, list) else [gen_eos]:
        if e is not None and e not in eos:
            eos.append(e)
    return eos
