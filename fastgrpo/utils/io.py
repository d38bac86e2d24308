"""Atomic file writes: a crash never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO


def _plain_file_mode(path: Path) -> int:
    """The mode `open(path, "w")` would leave: the existing file's, else 0o666 minus the umask.

    Why: `mkstemp` creates 0o600 files; a report written through it must not end up less readable
    than the files written with a plain `open` beside it (e.g. an eval's generations.jsonl).
    """
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temp file beside `path` for a writer that wants a path (savefig, to_parquet); on leaving the block it
    is fsynced and renamed onto `path`, on an error removed, so `path` is the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _plain_file_mode(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, mode)
        os.close(fd)
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def _cut_partial_tail(f: BinaryIO) -> None:
    """Truncate a trailing line without its newline (what a kill mid-write leaves) from an open file."""
    end = f.seek(0, os.SEEK_END)
    if end == 0:
        return
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return
    pos = end
    while pos > 0:
        start = max(0, pos - 65536)
        f.seek(start)
        chunk = f.read(pos - start)
        nl = chunk.rfind(b"\n")
        if nl >= 0:
            f.truncate(start + nl + 1)
            return
        pos = start
    f.truncate(0)


def append_lines(path: str | Path, lines: list[str]) -> None:
    """Append whole lines durably (JSONL logs): one write, flushed and fsynced before returning.

    Why: a log appended every step must survive a kill with every finished line intact. A line cut
    short by an earlier kill is removed first, so the next line never glues onto it and every line
    stays parseable (resume and readers parse each line).
    """
    if not lines:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line.rstrip("\n") + "\n" for line in lines).encode("utf-8")
    with open(path, "a+b") as f:
        _cut_partial_tail(f)
        f.seek(0, os.SEEK_END)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
