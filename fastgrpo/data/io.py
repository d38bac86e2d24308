"""Open a table of examples from a local file/folder or a hub id, as a `datasets.Dataset`.

One loader for training prompts and eval benchmarks alike, so `name@split`,
parquet, jsonl, json, arrow and `save_to_disk` folders behave the same everywhere.
"""

from __future__ import annotations

from pathlib import Path

import datasets

LOCAL_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow", ".csv": "csv"}


class DataSourceError(ValueError):
    """The data could not be found or read; the message says where we looked and what to do."""


def _local_dataset(path: Path, split: str) -> datasets.Dataset:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists():
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DataSourceError(f"{path}: no split {split!r}; available: {', '.join(ds)}")
                ds = ds[split]
            return ds
        if (path / "dataset_dict.json").exists():
            dd = datasets.load_from_disk(str(path))
            return dd[split]
        files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES)
        split_files = [p for p in files if split in p.stem] or files
        if not split_files:
            raise DataSourceError(f"{path}: folder has no parquet/jsonl/json/arrow/csv files")
        builder = LOCAL_SUFFIXES[split_files[0].suffix]
        return datasets.load_dataset(builder, data_files=[str(p) for p in split_files], split="train")
    builder = LOCAL_SUFFIXES.get(path.suffix)
    if builder is None:
        raise DataSourceError(f"{path}: unsupported file type {path.suffix!r}; use parquet, jsonl, json, arrow or csv")
    return datasets.load_dataset(builder, data_files=str(path), split="train")


def load_table(source: str, split: str = "train", subset: str | None = None) -> datasets.Dataset:
    """`source` is a local path, or a hub id with optional `:subset` and `@split` (e.g. `openai/gsm8k:main@test`)."""
    local = Path(source).expanduser()
    if local.exists():
        try:
            return _local_dataset(local, split)
        except DataSourceError:
            raise
        except Exception as e:
            raise DataSourceError(f"could not read {local}: {e}") from e
    name = source
    if "@" in name:
        name, split = name.rsplit("@", 1)
    if ":" in name:
        name, subset = name.split(":", 1)
    looks_local = source.startswith((".", "/", "~")) or Path(source).suffix in LOCAL_SUFFIXES
    if looks_local or not name or name.count("/") > 1:
        raise DataSourceError(f"data file or folder not found: {source}")
    try:
        return datasets.load_dataset(name, subset, split=split)
    except Exception as e:
        raise DataSourceError(
            f"could not load {name!r} (subset={subset}, split={split}) from the hub: {type(e).__name__}: {e}. "
            "Without network access, download it elsewhere and pass a local parquet/jsonl/arrow path."
        ) from None
