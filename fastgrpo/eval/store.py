"""The generations file: one JSON line per sample, appended and flushed per batch, read back to resume.

Why: a long eval that dies (preemption, Ctrl-C) must not redo finished samples. A
sample is keyed by (benchmark, prompt id, sample idx); a line cut short by a kill
is dropped (and trimmed from the file) on the next start.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastgrpo.utils.io import atomic_write_text

GENERATIONS = "generations.jsonl"

Key = tuple[str, str, int]


def sample_key(record: dict[str, Any]) -> Key:
    return (str(record["benchmark"]), str(record["prompt_id"]), int(record["sample_idx"]))


class GenerationStore:
    """Append-only sample records with an in-memory index; `path=None` keeps them in memory only."""

    def __init__(self, path: str | Path | None, read_only: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.read_only = read_only  # read the file, never write it (non-zero ranks of a distributed run)
        self.records: dict[Key, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        data = self.path.read_bytes()
        if (
            data and not data.endswith(b"\n") and not self.read_only
        ):  # killed mid-write: drop the partial line
            cut = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as fh:
                fh.truncate(cut)
            data = data[:cut]
        for line in data.decode("utf-8", errors="replace").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                self.records.setdefault(sample_key(rec), rec)
            except (ValueError, KeyError, TypeError):
                continue

    def __contains__(self, key: Key) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def get(self, key: Key) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Add records and make them durable (flush + fsync) before returning."""
        new = [r for r in records if sample_key(r) not in self.records]
        for r in new:
            self.records[sample_key(r)] = r
        if self.path is None or self.read_only or not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as fh:
            for r in new:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def replace(self, records: Iterable[dict[str, Any]]) -> None:
        """Update existing records (e.g. re-scored with another scorer) and rewrite the file atomically."""
        for r in records:
            self.records[sample_key(r)] = r
        if self.path is not None and not self.read_only:
            atomic_write_text(
                self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records.values())
            )


