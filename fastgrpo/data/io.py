"""Open a table of examples from a local file/folder or a hub id, as a `datasets.Dataset`.

One loader for training prompts and eval benchmarks alike, so `name@split`,
parquet, jsonl, json, arrow and `save_to_disk` folders behave the same everywhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import datasets

LOCAL_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow", ".csv": "csv"}


class DataSourceError(ValueError):
    """The data could not be found or read; the message says where we looked and what to do."""


# File/folder name keywords per split, as the hub's data-file inference uses them.
SPLIT_NAMES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}


def _names_split(rel: Path, names: tuple[str, ...]) -> bool:
    """`train.jsonl`, `data/test-00000.parquet`, `val/x.json` name their split; `contest.json` does not."""
    words = "|".join(re.escape(n) for n in names)
    return re.search(rf"(^|[\W_])({words})($|[\W_\d])", rel.with_suffix("").as_posix()) is not None


def _split_files(path: Path, files: list[Path], split: str) -> list[Path]:
    rel = {p: p.relative_to(path) for p in files}
    chosen = [p for p in files if _names_split(rel[p], SPLIT_NAMES.get(split, (split,)))]
    if not chosen and split == "train":  # files named after no split are the train split, as on the hub
        other = tuple(n for names in SPLIT_NAMES.values() for n in names)
        chosen = [p for p in files if not _names_split(rel[p], other)]
    if not chosen:
        raise DataSourceError(
            f"{path}: no file for split {split!r} (name a file or folder after it, e.g. {split}.jsonl)"
        )
    return chosen


def _local_dataset(path: Path, split: str) -> datasets.Dataset:
    if path.is_dir():
        if any((path / f).exists() for f in ("dataset_info.json", "state.json", "dataset_dict.json")):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataSourceError(f"{path}: no split {split!r}; available: {', '.join(ds)}")
                ds = ds[split]
            return ds
        files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES)
        if not files:
            raise DataSourceError(f"{path}: folder has no parquet/jsonl/json/arrow/csv files")
        split_files = _split_files(path, files, split)
        builder = LOCAL_SUFFIXES[split_files[0].suffix]
        data_files = [str(p) for p in split_files if LOCAL_SUFFIXES[p.suffix] == builder]
        return datasets.load_dataset(builder, data_files=data_files, split="train")
    builder = LOCAL_SUFFIXES.get(path.suffix)
    if builder is None:
        raise DataSourceError(f"{path}: unsupported file type {path.suffix!r}; use parquet, jsonl, json, arrow or csv")
    return datasets.load_dataset(builder, data_files=str(path), split="train")


def load_table(source: str, split: str = "train", subset: str | None = None) -> datasets.Dataset:
    """`source` is a local path, or a hub id with optional `:subset` and `@split` (e.g. `openai/gsm8k:main@test`).

    A local folder takes `@split` too (`data/mydata@test`): a `save_to_disk` DatasetDict's
    split, or the files named after the split.
    """
    if not source.strip():
        raise DataSourceError("no data source given: set data.train_files to a local file/folder or a hub id")
    name = source
    if "@" in name and not Path(source).expanduser().exists():
        name, split = name.rsplit("@", 1)
    local = Path(name).expanduser()
    if local.exists():
        try:
            return _local_dataset(local, split)
        except DataSourceError:
            raise
        except Exception as e:
            raise DataSourceError(f"could not read {local}: {e}") from e
    if ":" in name:
        name, subset = name.split(":", 1)
    looks_local = source.startswith((".", "/", "~")) or Path(name).suffix in LOCAL_SUFFIXES
    if looks_local or not name or name.count("/") > 1:
        raise DataSourceError(f"data file or folder not found: {source}")
    try:
        return datasets.load_dataset(name, subset, split=split)
    except Exception as e:
        raise DataSourceError(
            f"could not load {name!r} (subset={subset}, split={split}) from the hub: {type(e).__name__}: {e}. "
            "Without network access, download it elsewhere and pass a local parquet/jsonl/arrow path."
        ) from None
