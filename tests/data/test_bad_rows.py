"""A broken data line or row: the error names the file, the line (or row) and the problem; `skip` counts it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from fastgrpo.config import load_config
from fastgrpo.data.io import BadRows, DataSourceError, load_table
from fastgrpo.data.prompts import load_prompts
from fastgrpo.models.tiny import build_char_tokenizer

ROWS = [{"problem": f"{i}+1", "answer": str(i + 1)} for i in range(6)]


def _lines(rows: list[dict]) -> list[str]:
    return [json.dumps(r) for r in rows]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """Line 3 is cut mid-object (a partial copy), line 5 is a bare list."""
    lines = _lines(ROWS)
    lines[2] = lines[2][:12]
    lines[4] = "[1, 2]"
    return _write(tmp_path / "bad.jsonl", lines)


def test_a_broken_jsonl_line_is_named_with_its_line_number(broken: Path) -> None:
    with pytest.raises(DataSourceError) as info:
        load_table(str(broken))
    msg = str(info.value)
    assert msg.startswith(f"{broken} line 3: invalid JSON: ")
    assert "(1 more bad row(s) after it)" in msg and "data.on_bad_row=skip" in msg
    assert "An error occurred while generating the dataset" not in msg


def test_skip_drops_the_bad_lines_counts_and_reports_them(broken: Path, fastgrpo_log_messages: list[str]) -> None:
    bad = BadRows("skip")
    ds = load_table(str(broken), bad_rows=bad)
    assert ds.to_list() == [r for i, r in enumerate(ROWS) if i not in (2, 4)]
    assert bad.skipped == 2
    bad.report(str(broken))
    (line,) = [m for m in fastgrpo_log_messages if "skipped" in m]
    assert "skipped 2 bad row(s)" in line and f"{broken} line 3: invalid JSON" in line
    assert f"{broken} line 5: a JSON list, not an object" in line


def test_a_broken_line_in_a_folder_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    _write(tmp_path / "data" / "train-0.jsonl", _lines(ROWS[:3]))
    bad_file = _write(tmp_path / "data" / "train-1.jsonl", [*_lines(ROWS[3:]), "{oops"])
    with pytest.raises(DataSourceError, match=rf"^{bad_file} line 4: invalid JSON"):
        load_table(str(tmp_path / "data"))


def test_a_csv_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("problem,answer\n1+1,2\n2+2,4,extra\n")
    with pytest.raises(DataSourceError, match=r"could not read .*d\.csv: .*line 3"):
        load_table(str(path))


def _prompt_setup(tmp_path: Path, rows: list[dict], **overrides: str) -> tuple:
    tok_dir = tmp_path / "tok"
    build_char_tokenizer().save_pretrained(tok_dir)
    data = _write(tmp_path / "rows.jsonl", _lines(rows))
    cfg = load_config(None, [f"data.train_files={data}", *(f"{k}={v}" for k, v in overrides.items())])
    return data, cfg.data, AutoTokenizer.from_pretrained(tok_dir)


def test_rows_without_a_prompt_or_answer_are_bad_rows(tmp_path: Path) -> None:
    rows = [*ROWS[:2], {"problem": None, "answer": "1"}, {"problem": "  ", "answer": "2"},
            {"problem": "3+3", "answer": None}, *ROWS[2:]]
    data, cfg, tok = _prompt_setup(tmp_path, rows)
    with pytest.raises(DataSourceError, match=rf"^{data} row 2 \(counting from 0\): the prompt "
                                              r"\(data.prompt_key='problem'\) is null"):
        load_prompts(str(data), cfg, tok)
    data, cfg, tok = _prompt_setup(tmp_path, rows, **{"data.on_bad_row": "skip"})
    bad = BadRows("skip")
    examples = load_prompts(str(data), cfg, tok, bad_rows=bad)
    assert bad.skipped == 3 and [e.answer for e in examples] == [r["answer"] for r in ROWS]
    assert any("is empty" in r for r in bad.reasons) and any("answer_key='answer') is null" in r for r in bad.reasons)


def test_on_bad_row_is_validated() -> None:
    from fastgrpo.config import ConfigError

    with pytest.raises(ConfigError, match=r"data\.on_bad_row.*'error', 'skip'"):
        load_config(None, ["data.on_bad_row=ignore"])
