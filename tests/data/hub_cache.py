"""Put a table in the `datasets` cache as if `load_dataset(repo_id)` had downloaded it once.

Why: tests run offline (tests/conftest.py), and offline `load_dataset("org/name", split=...)`
serves exactly this layout, so a hub id can be loaded for real without the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
from datasets.arrow_writer import ArrowWriter


def write_hub_cache(cache_dir: str | Path, repo_id: str, split: str, rows: list[dict[str, Any]]) -> Path:
    """Write `rows` as split `split` of hub dataset `repo_id` under `cache_dir` (HF_DATASETS_CACHE); returns its folder."""
    org, name = repo_id.split("/")
    folder = Path(cache_dir) / f"{org}___{name}" / "default" / "0.0.0" / ("0" * 16)
    folder.mkdir(parents=True, exist_ok=True)
    table = datasets.Dataset.from_list(rows)
    with ArrowWriter(path=str(folder / f"{name}-{split}.arrow"), features=table.features) as writer:
        writer.write_table(table.data.table)
    splits = datasets.SplitDict(dataset_name=name)
    splits.add(datasets.SplitInfo(split, num_examples=len(table), dataset_name=name))
    info = datasets.DatasetInfo(features=table.features, config_name="default", dataset_name=name, splits=splits)
    info.write_to_directory(str(folder))
    return folder
