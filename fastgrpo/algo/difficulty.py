"""Question difficulty for FAST-GRPO (SPEC section 1, step 3).

difficulty = (1 - pass_rate) * normalized_complexity

* pass_rate: mean accuracy of a prompt's G samples (the model's own view of
  how hard the question is right now).
* complexity: a per-question, model-free measure normalised to [0, 1] over
  the training set: prompt token count for text, the mean of grayscale
  entropy and edge density for images (measured in `fastgrpo.data.images`,
  which owns the image code); a vision question averages the two.
* easy/hard: a question is hard when its difficulty lies above the
  `easy_percentile` (80 by default) of the population (this step's batch,
  or a running window of recent batches).

These are our documented defaults (see docs/algorithm.md); the paper's exact
image metric could not be read here.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from fastgrpo.algo._utils import as_bool_tensor, as_float_tensor, check_group_shape, masked_mean

__all__ = [
    "ComplexityStats",
    "DifficultyWindow",
    "combine_complexity",
    "difficulty",
    "difficulty_threshold",
    "group_pass_rate",
    "min_max_normalize",
    "split_easy_hard",
    "text_complexity",
]


def group_pass_rate(accuracy: torch.Tensor | Sequence, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean accuracy per group, [B, G] -> [B].

    Why: the pass rate is FAST's model-based ("extrinsic") difficulty signal;
    `mask` allows groups of unequal size (padding entries are ignored, an empty
    group has pass rate 0).
    """
    acc = as_float_tensor(accuracy)
    check_group_shape("accuracy", acc)
    m = None if mask is None else as_bool_tensor(mask)
    return masked_mean(acc, m, dim=1)


def min_max_normalize(
    x: torch.Tensor | Sequence[float],
    lo: float | None = None,
    hi: float | None = None,
    constant_value: float = 1.0,
) -> torch.Tensor:
    """(x - lo) / (hi - lo), clipped to [0, 1]; lo/hi default to x's own min/max.

    Why: complexity measures have arbitrary units (tokens, bits, fractions) and
    must be put on a common [0, 1] scale before being multiplied with
    (1 - pass_rate). Pass lo/hi fitted on the whole training set so a batch is
    normalised consistently. When hi == lo the measure carries no information
    and every entry gets `constant_value` (1.0 by default, so difficulty then
    reduces to 1 - pass_rate instead of collapsing to 0).
    """
    t = as_float_tensor(x, torch.float64)
    if t.numel() == 0:
        return t.float()
    lo_v = float(t.min()) if lo is None else float(lo)
    hi_v = float(t.max()) if hi is None else float(hi)
    if not math.isfinite(hi_v - lo_v) or hi_v - lo_v <= 0:
        return torch.full_like(t, float(constant_value)).float()
    return ((t - lo_v) / (hi_v - lo_v)).clamp(0.0, 1.0).float()


def text_complexity(num_tokens: torch.Tensor | Sequence[int] | int) -> torch.Tensor:
    """Raw text complexity: the prompt's token count (as float).

    Why: longer problem statements carry more conditions to track; the count
    is cheap, model-agnostic and is min-max normalised over the dataset later.
    """
    return as_float_tensor(num_tokens if not isinstance(num_tokens, int) else [num_tokens])


def combine_complexity(
    text_norm: torch.Tensor | Sequence[float],
    image_norm: torch.Tensor | Sequence[float] | None = None,
    has_image: torch.Tensor | Sequence[bool] | None = None,
) -> torch.Tensor:
    """Per-question complexity in [0, 1]: text only, or mean of text and image.

    Why: SPEC default - a vision question averages its normalised text and
    image measures; a text-only question uses the text measure alone.
    """
    t = as_float_tensor(text_norm)
    if image_norm is None:
        return t
    img = as_float_tensor(image_norm)
    both = 0.5 * (t + img)
    if has_image is None:
        return both
    return torch.where(as_bool_tensor(has_image), both, t)


@dataclass
class ComplexityStats:
    """Dataset-wide min/max of each raw complexity measure.

    Why: the SPEC normalises complexity over the training set, not per batch,
    so these are fitted once (data loading) and stored with the checkpoint
    (`to_dict`/`from_dict`) to keep normalisation identical on resume.
    """

    text_min: float = 0.0
    text_max: float = 0.0
    entropy_min: float = 0.0
    entropy_max: float = 0.0
    edge_min: float = 0.0
    edge_max: float = 0.0

    @classmethod
    def fit(
        cls,
        text_raw: Sequence[float] | torch.Tensor,
        entropy_raw: Sequence[float] | torch.Tensor | None = None,
        edge_raw: Sequence[float] | torch.Tensor | None = None,
    ) -> ComplexityStats:
        """Fit from raw measures of the whole training set (images: only the questions that have one)."""

        def _mm(v: Sequence[float] | torch.Tensor | None) -> tuple[float, float]:
            if v is None:
                return 0.0, 0.0
            t = as_float_tensor(v, torch.float64)
            if t.numel() == 0:
                return 0.0, 0.0
            return float(t.min()), float(t.max())

        tmin, tmax = _mm(text_raw)
        emin, emax = _mm(entropy_raw)
        dmin, dmax = _mm(edge_raw)
        return cls(tmin, tmax, emin, emax, dmin, dmax)

    def normalize(
        self,
        text_raw: Sequence[float] | torch.Tensor,
        entropy_raw: Sequence[float] | torch.Tensor | None = None,
        edge_raw: Sequence[float] | torch.Tensor | None = None,
        has_image: Sequence[bool] | torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Normalised complexity in [0, 1] for a batch of questions."""
        text_n = min_max_normalize(text_raw, self.text_min, self.text_max)
        if entropy_raw is None or edge_raw is None:
            return text_n
        ent_n = min_max_normalize(entropy_raw, self.entropy_min, self.entropy_max)
        edge_n = min_max_normalize(edge_raw, self.edge_min, self.edge_max)
        return combine_complexity(text_n, 0.5 * (ent_n + edge_n), has_image)

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> ComplexityStats:
        return cls(**{k: float(v) for k, v in d.items()})


def difficulty(
    pass_rate: torch.Tensor | Sequence[float], complexity: torch.Tensor | Sequence[float]
) -> torch.Tensor:
    """difficulty = (1 - pass_rate) * normalized_complexity (SPEC step 3).

    Why: a question is hard when the model fails it *and* it is intrinsically
    complex; either factor at zero makes it easy.
    """
    p = as_float_tensor(pass_rate)
    c = as_float_tensor(complexity)
    return (1.0 - p) * c


def difficulty_threshold(population: torch.Tensor | Sequence[float], easy_percentile: float = 80.0) -> float:
    """The `easy_percentile`-th percentile (linear interpolation) of a population.

    Why: separated out so the trainer can log the threshold itself.
    """
    t = as_float_tensor(population, torch.float64).flatten()
    t = t[torch.isfinite(t)]
    if t.numel() == 0:
        return float("inf")
    if not 0.0 <= easy_percentile <= 100.0:
        raise ValueError(f"easy_percentile must be in [0, 100], got {easy_percentile}")
    return float(torch.quantile(t, easy_percentile / 100.0))


def split_easy_hard(
    difficulty_values: torch.Tensor | Sequence[float],
    easy_percentile: float = 80.0,
    population: torch.Tensor | Sequence[float] | None = None,
) -> tuple[torch.Tensor, float]:
    """Return (is_hard [B] bool, threshold): hard iff difficulty > percentile.

    Why: the thinking reward and per-bucket metrics need a binary easy/hard
    label. The threshold is taken over `population` (e.g. a running window,
    `difficulty_population: window`) or, by default, over this batch
    (`difficulty_population: batch`). Ties at the threshold count as easy, so
    a batch whose difficulties are all equal is all easy.
    """
    d = as_float_tensor(difficulty_values)
    thr = difficulty_threshold(d if population is None else population, easy_percentile)
    return d > thr, thr


class DifficultyWindow:
    """Running window of recent difficulties (`difficulty_population: window`).

    Why: with small batches the 80th percentile of one batch is noisy; a
    window of the last `difficulty_window` questions gives a steadier split.
    Call `split(batch_difficulty, easy_percentile)`: the batch is added to the
    window first, then split against the whole window.
    """

    def __init__(self, difficulty_window: int = 1024) -> None:
        if difficulty_window <= 0:
            raise ValueError("difficulty_window must be positive")
        self.size = int(difficulty_window)
        self._values: deque[float] = deque(maxlen=self.size)

    def __len__(self) -> int:
        return len(self._values)

    def push(self, values: torch.Tensor | Sequence[float]) -> None:
        self._values.extend(float(v) for v in as_float_tensor(values).flatten().tolist())

    def values(self) -> torch.Tensor:
        return torch.tensor(list(self._values), dtype=torch.float64)

    def split(
        self, difficulty_values: torch.Tensor | Sequence[float], easy_percentile: float = 80.0
    ) -> tuple[torch.Tensor, float]:
        self.push(difficulty_values)
        return split_easy_hard(difficulty_values, easy_percentile, population=self.values())

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "values": list(self._values)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.size = int(state["size"])
        self._values = deque((float(v) for v in state["values"]), maxlen=self.size)
