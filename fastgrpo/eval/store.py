"""The generations file: one JSON line per sample, appended and flushed per batch, read back to resume.

Why: a long eval that dies (preemption, Ctrl-C) must not redo finished samples. A
sample is keyed by (benchmark, prompt id, sample idx); a line cut short by a kill
is dropped (and trimmed from the file) on the next start. A data-parallel run's ranks
append to shard files beside it (`generations.rank<r>.jsonl`, see `shard_path`), which
`merge_shards` folds back in.
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


def shard_path(path: str | Path, rank: int) -> Path:
    """Where data-parallel rank `rank` appends: `generations.rank<r>.jsonl` beside `path`."""
    p = Path(path)
    return p.with_name(f"{p.stem}.rank{rank}{p.suffix}")


def _records_in(path: Path) -> list[dict[str, Any]]:
    """Every whole record line of a file (a last line cut short by a kill is skipped)."""
    out = []
    for line in path.read_bytes().decode("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            sample_key(rec)
        except (ValueError, KeyError, TypeError):
            continue
        out.append(rec)
    return out


def merge_shards(path: str | Path) -> int:
    """Fold data-parallel shard files into `path` (a shard's record replaces the main file's: it is newer,
    e.g. re-graded), rewrite it atomically and delete the shards; the number of shard records merged."""
    p = Path(path)
    shards = sorted(p.parent.glob(f"{p.stem}.rank*{p.suffix}")) if p.parent.exists() else []
    if not shards:
        return 0
    records: dict[Key, dict[str, Any]] = {}
    if p.exists():
        for r in _records_in(p):
            records.setdefault(sample_key(r), r)
    merged = 0
    for shard in shards:
        for r in _records_in(shard):
            records[sample_key(r)] = r
            merged += 1
    atomic_write_text(p, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values()))
    for shard in shards:
        shard.unlink()
    return merged


class GenerationStore:
    """Append-only sample records with an in-memory index; `path=None` keeps them in memory only.

    `append_path`: write new (and re-graded) records there instead of `path` (a data-parallel
    rank's shard file; `path` is then only read).
    """

    def __init__(
        self, path: str | Path | None, read_only: bool = False, append_path: str | Path | None = None
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.append_path = Path(append_path) if append_path is not None else None
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
        self._write(new)

    def _write(self, new: list[dict[str, Any]]) -> None:
        target = self.append_path or (None if self.read_only else self.path)
        if target is None or not new:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "a", encoding="utf-8") as fh:
            for r in new:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def replace(self, records: Iterable[dict[str, Any]]) -> None:
        """Update existing records (e.g. re-scored with another scorer) and rewrite the file atomically."""
        records = list(records)
        for r in records:
            self.records[sample_key(r)] = r
        if self.append_path is not None:  # a shard: appended records win when the shards are merged
            self._write(records)
        elif self.path is not None and not self.read_only:
            atomic_write_text(
                self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.records.values())
            )
