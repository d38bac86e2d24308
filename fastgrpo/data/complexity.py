"""Image complexity of a dataset, computed once and cached on disk, and a question's complexity from it.

Why a cache: decoding and measuring every image of a large dataset takes minutes, and every run
(and every rank of a node) would redo it. The cache file is named by a fingerprint of the images'
identities and the measure's parameters, so a changed image or measure is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastgrpo.algo.difficulty import ComplexityStats
from fastgrpo.data.images import image_complexity, load_image
from fastgrpo.log import get_logger
from fastgrpo.utils.io import atomic_write_json

log = get_logger(__name__)

__all__ = ["ImageComplexity", "complexity_cache_dir", "compute_image_complexity", "dataset_fingerprint",
           "vision_complexity"]

COMPLEXITY_VERSION = 1
"""Bump when the image measure changes, so stale cache files are not reused."""


def complexity_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where complexity caches live: the argument, else $FASTGRPO_CACHE_DIR/complexity, else ~/.cache/fastgrpo."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("FASTGRPO_CACHE_DIR"):
        return Path(os.environ["FASTGRPO_CACHE_DIR"]).expanduser() / "complexity"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastgrpo" / "complexity"


def _image_key(value: Any) -> str:
    """A cheap identity for one image: path + size + mtime for files, a content hash otherwise."""
    from PIL import Image

    if isinstance(value, (str, os.PathLike)):
        p = Path(value)
        st = p.stat()
        return f"file:{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if isinstance(value, dict):
        return _image_key(value["bytes"] if value.get("bytes") else value["path"])
    h = hashlib.blake2b(digest_size=16)
    if isinstance(value, (bytes, bytearray, memoryview)):
        h.update(bytes(value))
        return "bytes:" + h.hexdigest()
    if isinstance(value, Image.Image):
        h.update(f"{value.mode}:{value.size}".encode())
        h.update(value.tobytes())
        return "pil:" + h.hexdigest()
    import numpy as np

    arr = np.ascontiguousarray(np.asarray(value))
    h.update(f"{arr.dtype}:{arr.shape}".encode())
    h.update(arr.tobytes())
    return "array:" + h.hexdigest()


def dataset_fingerprint(images: Sequence[Sequence[Any]], **params: Any) -> str:
    """Hash of every row's image identities plus the measure's parameters: the cache file's name."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps({"version": COMPLEXITY_VERSION, **params}, sort_keys=True).encode())
    for row in images:
        h.update(b"\x00row")
        for v in row:
            h.update(_image_key(v).encode())
            h.update(b"\x00")
    return h.hexdigest()


@dataclass
class ImageComplexity:
    values: list[list[tuple[float, float]]]
    """Per row, per image: (grayscale entropy, edge density) as `image_complexity` returns them."""
    fingerprint: str
    path: Path
    from_cache: bool


def compute_image_complexity(images: Sequence[Sequence[Any]], cache_dir: str | Path | None = None,
                             edge_threshold: float = 0.1, max_side: int | None = 512) -> ImageComplexity:
    """Raw image complexity of every row's images, computed once per dataset and cached as JSON.

    The cache file is `<cache_dir>/<fingerprint>.json`; the fingerprint covers each image's
    identity (file path/size/mtime, or a hash of its bytes) and the measure's parameters.
    """
    fp = dataset_fingerprint(images, edge_threshold=edge_threshold, max_side=max_side)
    path = complexity_cache_dir(cache_dir) / f"{fp}.json"
    if path.exists():
        try:
            data = json.loads(path.read_text())
            values = [[(float(e), float(d)) for e, d in row] for row in data["values"]]
            if len(values) == len(images) and all(len(v) == len(r) for v, r in zip(values, images, strict=True)):
                return ImageComplexity(values, fp, path, from_cache=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        log.warning("ignoring unreadable complexity cache %s; recomputing", path)
    values = [[image_complexity(load_image(v), edge_threshold=edge_threshold, max_side=max_side) for v in row]
              for row in images]
    try:
        # atomic: ranks computing at once never read a half-written file
        atomic_write_json(path, {"version": COMPLEXITY_VERSION, "fingerprint": fp, "values": values})
    except OSError as e:
        log.warning("could not write the complexity cache %s: %s", path, e)
    return ImageComplexity(values, fp, path, from_cache=False)


def vision_complexity(text_raw: Sequence[float], image_raw: Sequence[Sequence[tuple[float, float]]],
                      stats: Any | None = None) -> list[float]:
    """Per-question complexity in [0, 1]: mean of normalised text and image measures (text only without images).

    A question's raw image measure is the mean over its images of entropy and of edge density;
    min-max bounds are fitted over the dataset (`ComplexityStats`) unless `stats` is given.
    """
    has = [len(r) > 0 for r in image_raw]
    ent = [sum(e for e, _ in r) / len(r) if r else 0.0 for r in image_raw]
    edge = [sum(d for _, d in r) / len(r) if r else 0.0 for r in image_raw]
    if stats is None:
        stats = ComplexityStats.fit(text_raw, [x for x, h in zip(ent, has, strict=True) if h],
                                    [x for x, h in zip(edge, has, strict=True) if h])
    if not any(has):
        return [float(c) for c in stats.normalize(text_raw).tolist()]
    return [float(c) for c in stats.normalize(text_raw, ent, edge, has).tolist()]
