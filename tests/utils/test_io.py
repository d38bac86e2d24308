"""Atomic writes and durable appends (`fastgrpo.utils.io`): a crash mid-write leaves the old file whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastgrpo.train.loggers import truncate_jsonl
from fastgrpo.utils.io import append_lines, atomic_path, atomic_write_text

KILLED_MID_WRITE = """
import os, sys
from fastgrpo.utils.io import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "w") as f:
        f.write("new: half of it")
        f.flush()
    os._exit(9)  # the process dies mid-write: no cleanup, no rename
"""


def test_a_process_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "config.yaml"
    atomic_write_text(target, "old: whole\n")
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(target)], check=False)
    assert proc.returncode == 9
    assert target.read_text() == "old: whole\n"
    atomic_write_text(target, "new: whole\n")  # the next write succeeds beside the leftover temp file
    assert target.read_text() == "new: whole\n"


def test_an_error_mid_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"ne")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


def test_append_cuts_a_half_line_left_by_a_kill(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    append_lines(log, [json.dumps({"step": 1, "x": 0.5})])
    with log.open("a") as f:  # what a kill inside the old `f.write` could leave
        f.write('{"step": 2, "x": 0.')
    append_lines(log, [json.dumps({"step": 2, "x": 0.25}), json.dumps({"step": 3, "x": None})])
    assert [json.loads(line) for line in log.read_text().splitlines()] == [
        {"step": 1, "x": 0.5}, {"step": 2, "x": 0.25}, {"step": 3, "x": None}]
    truncate_jsonl(log, 2)  # resume rewinds to the checkpoint's step
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def test_append_to_a_file_holding_only_a_half_line(tmp_path: Path) -> None:
    log = tmp_path / "samples.jsonl"
    log.write_text('{"step": 1, "resp')
    append_lines(log, ['{"step": 1}'])
    assert log.read_text() == '{"step": 1}\n'
