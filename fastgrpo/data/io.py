"""Open a table of examples from a local file/folder or a hub id, as a `datasets.Dataset`.

One loader for training prompts and eval benchmarks alike, so `name@split`,
parquet, jsonl, json, arrow and `save_to_disk` folders behave the same everywhere.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from fastgrpo.log import get_logger

log = get_logger(__name__)

LOCAL_SUFFIXES = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".arrow": "arrow", ".csv": "csv"}


class DataSourceError(ValueError):
    """The data could not be found or read; the message says where we looked and what to do."""


@dataclass
class BadRows:
    """What to do with a row that cannot be used (`data.on_bad_row`), and the count of those skipped.

    `error` (the default) stops at once, naming the file, the line or row and the problem;
    `skip` drops the row, counts it, and `report` prints the count with the first few reasons.
    """

    policy: str = "error"
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)

    def bad(self, where: str, problem: str, more: int = 0) -> None:
        """One bad row (`more`: further bad rows found in the same scan, reported with the error)."""
        if self.policy != "skip":
            extra = f" ({more} more bad row(s) after it)" if more else ""
            raise DataSourceError(f"{where}: {problem}{extra}. Fix the data, or set data.on_bad_row=skip "
                                  "to drop bad rows (they are counted and reported)")
        self.skipped += 1
        if len(self.reasons) < 3:
            self.reasons.append(f"{where}: {problem}")

    def report(self, source: str) -> None:
        if self.skipped:
            log.warning("data.on_bad_row=skip: skipped %d bad row(s) of %s (first: %s)", self.skipped, source,
                        "; ".join(self.reasons))


def _json_lines_problems(path: Path) -> list[tuple[int, str]]:
    """(line number, problem) of every line of a JSON-lines file that is not one JSON object."""
    problems = []
    with path.open("rb") as f:
        for no, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                value = json.loads(line)
            except UnicodeDecodeError as e:
                problems.append((no, f"not UTF-8 text ({e.reason} at byte {e.start})"))
                continue
            except json.JSONDecodeError as e:
                problems.append((no, f"invalid JSON: {e.msg} (column {e.colno})"))
                continue
            if not isinstance(value, dict):
                problems.append((no, f"a JSON {type(value).__name__}, not an object with the row's columns"))
    return problems


def _innermost(e: BaseException) -> BaseException:
    """`datasets` wraps the reader's error in a generic DatasetGenerationError: dig out the real one."""
    while e.__cause__ is not None or (e.__context__ is not None and not e.__suppress_context__):
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return e


def _load_files(builder: str, files: list[Path], bad_rows: BadRows) -> datasets.Dataset:
    """Load local files with the `datasets` builder; a failure names the file, line and problem."""
    try:
        return datasets.load_dataset(builder, data_files=[str(f) for f in files], split="train")
    except Exception as e:
        if builder != "json":
            cause = _innermost(e)
            names = files[0] if len(files) == 1 else f"one of {', '.join(str(f) for f in files)}"
            raise DataSourceError(f"could not read {names}: {type(cause).__name__}: {cause}") from None
        scanned = {f: _json_lines_problems(f) for f in files}
        if not any(scanned.values()):  # one JSON document (an array), or a problem that is not a line's
            cause = _innermost(e)
            raise DataSourceError(f"could not read {files[0] if len(files) == 1 else files}: "
                                  f"{type(cause).__name__}: {cause}") from None
    if bad_rows.policy != "skip":
        f, problems = next((f, p) for f, p in scanned.items() if p)
        total = sum(len(p) for p in scanned.values())
        bad_rows.bad(f"{f} line {problems[0][0]}", problems[0][1], more=total - 1)
    with tempfile.TemporaryDirectory(prefix="fastgrpo-clean-") as tmp:
        cleaned = []
        for i, (f, problems) in enumerate(scanned.items()):
            bad = {no for no, _ in problems}
            for no, problem in problems:
                bad_rows.bad(f"{f} line {no}", problem)
            out = Path(tmp) / f"{i}.jsonl"
            with f.open("rb") as src, out.open("wb") as dst:
                for no, raw in enumerate(src, start=1):
                    if no not in bad:
                        dst.write(raw if raw.endswith(b"\n") else raw + b"\n")
            cleaned.append(out)
        try:  # in memory: the cleaned copies are gone after this block
            return datasets.load_dataset("json", data_files=[str(c) for c in cleaned], split="train",
                                         keep_in_memory=True)
        except Exception as e:
            cause = _innermost(e)
            raise DataSourceError(f"could not read {files}: {type(cause).__name__}: {cause}") from None


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


def _local_dataset(path: Path, split: str, bad_rows: BadRows) -> datasets.Dataset:
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
        return _load_files(builder, [p for p in split_files if LOCAL_SUFFIXES[p.suffix] == builder], bad_rows)
    builder = LOCAL_SUFFIXES.get(path.suffix)
    if builder is None:
        raise DataSourceError(f"{path}: unsupported file type {path.suffix!r}; use parquet, jsonl, json, arrow or csv")
    return _load_files(builder, [path], bad_rows)


def load_table(source: str, split: str = "train", subset: str | None = None,
               bad_rows: BadRows | None = None) -> datasets.Dataset:
    """`source` is a local path, or a hub id with optional `:subset` and `@split` (e.g. `openai/gsm8k:main@test`).

    A local folder takes `@split` too (`data/mydata@test`): a `save_to_disk` DatasetDict's
    split, or the files named after the split. A JSON-lines line that is not one JSON object
    is an error naming the file and line, or with `bad_rows.policy == "skip"` left out and counted.
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows()
    if not source.strip():
        raise DataSourceError("no data source given: set data.train_files to a local file/folder or a hub id")
    name = source
    if "@" in name and not Path(source).expanduser().exists():
        name, split = name.rsplit("@", 1)
    local = Path(name).expanduser()
    if local.exists():
        try:
            return _local_dataset(local, split, bad_rows)
        except DataSourceError:
            raise
        except Exception as e:
            cause = _innermost(e)
            raise DataSourceError(f"could not read {local}: {type(cause).__name__}: {cause}") from e
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
