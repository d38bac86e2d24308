"""Small tensor helpers shared by the algorithm modules (masked means, shape checks)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

TensorLike = torch.Tensor | Sequence[float] | Sequence[Sequence[float]]


def as_float_tensor(x: TensorLike, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Accept lists or tensors so callers (and tests) can pass plain Python data."""
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if not x.is_floating_point() or x.dtype != dtype else x
    return torch.as_tensor(x, dtype=dtype)


def as_bool_tensor(x: torch.Tensor | Sequence[bool] | Sequence[Sequence[bool]]) -> torch.Tensor:
    """Masks may come as 0/1 floats, ints or bools; normalise to bool."""
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    return t.bool() if t.dtype != torch.bool else t


def _full_mask(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return torch.ones_like(values, dtype=torch.bool)
    return mask.bool()


def masked_sum(values: torch.Tensor, mask: torch.Tensor | None, dim: int | None = None) -> torch.Tensor:
    """Sum of `values` where mask is true (all of them when mask is None).

    Entries outside the mask are replaced by zero before summing, so NaN/inf in
    padding positions can never leak into the result.
    """
    m = _full_mask(values, mask)
    v = torch.where(m, values, torch.zeros_like(values))
    return v.sum() if dim is None else v.sum(dim=dim)


def masked_count(values: torch.Tensor, mask: torch.Tensor | None, dim: int | None = None) -> torch.Tensor:
    """How many entries the mask keeps, as a float tensor of `values`' dtype."""
    m = _full_mask(values, mask).to(values.dtype)
    return m.sum() if dim is None else m.sum(dim=dim)


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None, dim: int | None = None) -> torch.Tensor:
    """Mean over kept entries; an empty selection gives 0, never NaN."""
    total = masked_sum(values, mask, dim)
    count = masked_count(values, mask, dim)
    return torch.where(count > 0, total / count.clamp_min(1.0), torch.zeros_like(total))


def check_group_shape(name: str, x: torch.Tensor) -> None:
    """Per-group tensors are [B, G]; fail loudly on anything else."""
    if x.dim() != 2:
        raise ValueError(f"{name} must be shaped [B, G] (prompts x samples), got {tuple(x.shape)}")
