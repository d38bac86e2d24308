"""Images: read a dataset cell, resize it the way Qwen-VL's processor does, and measure its complexity.

Everything here is about one image and needs only PIL and numpy: no tokenizer, no model.
`image_complexity` is the raw measure behind FAST's intrinsic difficulty of a vision question
(normalised over the dataset in `fastgrpo.data.complexity`, combined with the pass rate in
`fastgrpo.algo.difficulty`).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from fastgrpo.data.io import DataSourceError

__all__ = ["image_complexity", "image_size", "load_image", "resize_image", "resolve_image_path", "smart_resize",
           "stable_size"]


def load_image(value: Any, base_dir: str | Path | None = None) -> Any:
    """One dataset cell -> an RGB PIL image.

    Accepts a PIL image, a path (absolute, `~`, `file://`, or relative to `base_dir`,
    the data file's folder), bytes, a `{"bytes": ..., "path": ...}` dict, or an array.
    """
    from PIL import Image

    if isinstance(value, Image.Image):
        img = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        img = Image.open(io.BytesIO(bytes(value)))
    elif isinstance(value, dict):
        if value.get("bytes"):
            img = Image.open(io.BytesIO(value["bytes"]))
        elif value.get("path"):
            img = Image.open(resolve_image_path(value["path"], base_dir))
        else:
            raise DataSourceError(f"image dict has neither 'bytes' nor 'path': keys {sorted(value)}")
    elif isinstance(value, (str, os.PathLike)):
        img = Image.open(resolve_image_path(value, base_dir))
    elif hasattr(value, "__array__"):
        import numpy as np

        img = Image.fromarray(np.asarray(value))
    else:
        raise DataSourceError(f"cannot read an image from a {type(value).__name__}")
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def resolve_image_path(path: str | os.PathLike, base_dir: str | Path | None) -> Path:
    """An image path as the dataset wrote it -> an existing file (relative paths are relative to the data)."""
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text[len("file://") :]
    p = Path(text).expanduser()
    if not p.is_absolute() and base_dir is not None:
        p = Path(base_dir) / p
    if not p.exists():
        where = f" (relative to {base_dir})" if base_dir is not None and not Path(text).is_absolute() else ""
        raise DataSourceError(f"image file not found: {text}{where}")
    return p.resolve()


def image_size(value: Any) -> tuple[int, int]:
    """(width, height) without decoding the pixels (PIL reads only the header)."""
    from PIL import Image

    if isinstance(value, Image.Image):
        return value.size
    if isinstance(value, (bytes, bytearray, memoryview)):
        with Image.open(io.BytesIO(bytes(value))) as im:
            return im.size
    if isinstance(value, dict) and value.get("bytes"):
        with Image.open(io.BytesIO(value["bytes"])) as im:
            return im.size
    if isinstance(value, (str, os.PathLike)):
        with Image.open(value) as im:
            return im.size
    return load_image(value).size


def smart_resize(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """(height, width): both multiples of `factor`, h*w in [min_pixels, max_pixels], aspect ratio kept.

    The same rule as Qwen2-VL's image processor, so an image resized here is not resized again there.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image has no pixels: {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"image aspect ratio must be below 200, got {width}x{height}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) is larger than max_pixels ({max_pixels})")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def stable_size(height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56,
                max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """`smart_resize` repeated until it no longer changes the size.

    Why: for very elongated images one `smart_resize` can land above max_pixels, and the
    processor's own `smart_resize` would then shrink the image again (fewer image tokens than
    we counted). At the fixed point the processor leaves the image alone.
    """
    h, w = height, width
    for _ in range(32):
        nh, nw = smart_resize(h, w, factor, min_pixels, max_pixels)
        if (nh, nw) == (h, w):
            break
        h, w = nh, nw
    return h, w


def resize_image(image: Any, min_pixels: int, max_pixels: int, factor: int = 28) -> Any:
    """Resize a PIL image to `stable_size` (bicubic, as Qwen's processor), which the processor keeps."""
    from PIL import Image

    h, w = stable_size(image.height, image.width, factor, min_pixels, max_pixels)
    if (w, h) == image.size:
        return image
    return image.resize((w, h), Image.BICUBIC)


# ------------------------------------------------------------------- complexity measure


def _to_gray_array(image: Any, max_side: int | None) -> np.ndarray:
    """PIL image or numpy array -> float64 grayscale in [0, 255], shape [H, W]."""
    from PIL import Image

    if isinstance(image, Image.Image):
        pil = image
    else:
        arr = np.asarray(image)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim == 3 and arr.shape[-1] == 4:
            arr = arr[..., :3]
        if arr.ndim not in (2, 3):
            raise ValueError(f"image array must be [H, W] or [H, W, C], got shape {arr.shape}")
        if arr.dtype != np.uint8:
            a = arr.astype(np.float64)
            if a.size and np.nanmax(a) <= 1.0:
                a = a * 255.0
            arr = np.clip(np.nan_to_num(a), 0, 255).round().astype(np.uint8)
        pil = Image.fromarray(arr)
    if pil.mode != "L":
        pil = pil.convert("RGB").convert("L")  # ITU-R 601-2 luma, as PIL defines it
    if max_side is not None and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        pil = pil.resize(
            (max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.BILINEAR
        )
    return np.asarray(pil, dtype=np.float64)


def image_complexity(
    image: Any, edge_threshold: float = 0.1, max_side: int | None = 512
) -> tuple[float, float]:
    """Raw image complexity: (grayscale entropy in bits, edge density in [0, 1]).

    Why: a cluttered diagram (many intensity levels, many edges) needs more
    visual parsing than a plain one. Entropy is the Shannon entropy of the
    256-bin grayscale histogram (0..8 bits). Edge density is the fraction of
    interior pixels whose Sobel gradient magnitude, scaled so a full black to
    white step equals 1, exceeds `edge_threshold`. Images are downscaled to
    `max_side` first so the measure does not depend much on resolution.
    Normalise both over the dataset with `ComplexityStats`.
    """
    g = _to_gray_array(image, max_side)
    if g.size == 0:
        return 0.0, 0.0
    hist = np.bincount(g.astype(np.uint8).ravel(), minlength=256).astype(np.float64)
    p = hist[hist > 0] / g.size
    entropy = float(-(p * np.log2(p)).sum()) if p.size > 1 else 0.0
    if g.shape[0] < 3 or g.shape[1] < 3:
        return entropy, 0.0
    x = g / 255.0
    # Sobel, written with slices: rows r-1, r, r+1 and columns c-1, c, c+1.
    gx = (x[:-2, 2:] + 2 * x[1:-1, 2:] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[1:-1, :-2] + x[2:, :-2])
    gy = (x[2:, :-2] + 2 * x[2:, 1:-1] + x[2:, 2:]) - (x[:-2, :-2] + 2 * x[:-2, 1:-1] + x[:-2, 2:])
    magnitude = np.hypot(gx, gy) / 4.0
    edge_density = float((magnitude > edge_threshold).mean())
    return entropy, edge_density
