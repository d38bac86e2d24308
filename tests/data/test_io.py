"""load_table: every local format and folder layout, and clear errors (never a network wait)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import datasets
import pytest

from fastgrpo.data.io import DataSourceError, load_table

from .hub_cache import write_hub_cache

ROWS = [{"problem": f"{i}+1", "answer": str(i + 1)} for i in range(5)]


def table(rows: list[dict[str, str]] = ROWS) -> datasets.Dataset:
    return datasets.Dataset.from_list(rows)


def write_jsonl(path: Path, rows: list[dict[str, str]] = ROWS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def assert_rows(ds: datasets.Dataset, rows: list[dict[str, str]] = ROWS) -> None:
    assert isinstance(ds, datasets.Dataset)
    assert ds.to_list() == rows


def test_tests_run_offline() -> None:
    assert datasets.config.HF_HUB_OFFLINE, (
        "tests/conftest.py must set HF_HUB_OFFLINE before datasets is imported"
    )


# --- files ---------------------------------------------------------------------------------------


def test_jsonl(tmp_path: Path) -> None:
    assert_rows(load_table(str(write_jsonl(tmp_path / "d.jsonl"))))


def test_json_array(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS))
    assert_rows(load_table(str(path)))


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    table().to_parquet(str(path))
    assert_rows(load_table(str(path)))


def test_csv(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    table().to_csv(str(path), index=False)
    ds = load_table(str(path))
    assert ds["problem"] == [r["problem"] for r in ROWS]


def test_arrow_file(tmp_path: Path) -> None:
    table().save_to_disk(str(tmp_path / "saved"))
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    assert_rows(load_table(str(arrow)))


def test_home_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write_jsonl(tmp_path / "d.jsonl")
    assert_rows(load_table("~/d.jsonl"))


# --- folders -------------------------------------------------------------------------------------


def test_save_to_disk_dataset(tmp_path: Path) -> None:
    table().save_to_disk(str(tmp_path / "saved"))
    assert_rows(load_table(str(tmp_path / "saved")))


def test_save_to_disk_dataset_dict_split(tmp_path: Path) -> None:
    dd = datasets.DatasetDict({"train": table(ROWS[:3]), "test": table(ROWS[3:])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert_rows(load_table(str(tmp_path / "dd")), ROWS[:3])
    assert_rows(load_table(str(tmp_path / "dd"), split="test"), ROWS[3:])
    assert_rows(load_table(f"{tmp_path / 'dd'}@test"), ROWS[3:])  # `path@split`, like a hub id
    with pytest.raises(DataSourceError, match=r"no split 'validation'; available: train, test"):
        load_table(f"{tmp_path / 'dd'}@validation")


def test_folder_of_split_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "train.jsonl", ROWS[:3])
    write_jsonl(tmp_path / "d" / "test.jsonl", ROWS[3:])
    assert_rows(load_table(str(tmp_path / "d")), ROWS[:3])
    assert_rows(load_table(str(tmp_path / "d"), split="test"), ROWS[3:])
    assert_rows(load_table(f"{tmp_path / 'd'}@test"), ROWS[3:])


def test_folder_of_sharded_parquet_in_split_folders(tmp_path: Path) -> None:
    for split, rows in (("train", ROWS[:3]), ("test", ROWS[3:])):
        (tmp_path / "d" / "data" / split).mkdir(parents=True)
        for i, row in enumerate(rows):
            table([row]).to_parquet(str(tmp_path / "d" / "data" / split / f"{i:05d}.parquet"))
    assert_rows(load_table(str(tmp_path / "d")), ROWS[:3])
    assert_rows(load_table(str(tmp_path / "d"), split="test"), ROWS[3:])


def test_folder_without_split_names_is_the_train_split(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "part-a.jsonl", ROWS[:2])
    write_jsonl(tmp_path / "d" / "part-b.jsonl", ROWS[2:])
    assert_rows(load_table(str(tmp_path / "d")))
    with pytest.raises(
        DataSourceError, match="no file for split 'test'"
    ):  # never the train rows as a test set
        load_table(str(tmp_path / "d"), split="test")


def test_split_name_aliases(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "training.jsonl", ROWS[:2])
    write_jsonl(tmp_path / "d" / "dev.jsonl", ROWS[2:3])
    write_jsonl(tmp_path / "d" / "testing.jsonl", ROWS[3:])
    assert_rows(load_table(str(tmp_path / "d")), ROWS[:2])
    assert_rows(load_table(f"{tmp_path / 'd'}@validation"), ROWS[2:3])
    assert_rows(load_table(f"{tmp_path / 'd'}@test"), ROWS[3:])


def test_test_only_folder_has_no_train_split(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "test.jsonl")
    with pytest.raises(DataSourceError, match="no file for split 'train'"):
        load_table(str(tmp_path / "d"))


def test_split_names_match_whole_words(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "d" / "contest.jsonl", ROWS[:2])  # contains "test", is not the test split
    write_jsonl(tmp_path / "d" / "test.jsonl", ROWS[2:])
    assert_rows(load_table(str(tmp_path / "d"), split="test"), ROWS[2:])


def test_folder_without_data_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "README.md").write_text("nothing here")
    with pytest.raises(DataSourceError, match="folder has no parquet/jsonl/json/arrow/csv files"):
        load_table(str(tmp_path / "d"))


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.parquet", "sub/missing.json"])
def test_missing_local_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(DataSourceError, match="data file or folder not found"):
        load_table(str(tmp_path / name))


@pytest.mark.parametrize("source", ["./nope", "~/definitely/not/here", "data/nope.jsonl", "a/b/c"])
def test_missing_relative_paths_are_not_hub_ids(source: str) -> None:
    with pytest.raises(DataSourceError, match="data file or folder not found"):
        load_table(source)


@pytest.mark.parametrize("source", ["", "   "])
def test_empty_source(source: str) -> None:
    """An empty data.train_files must not read the current directory as a dataset folder."""
    with pytest.raises(DataSourceError, match="no data source given"):
        load_table(source)


def test_unsupported_file_type(tmp_path: Path) -> None:
    path = tmp_path / "d.txt"
    path.write_text("hello")
    with pytest.raises(DataSourceError, match=r"unsupported file type '\.txt'"):
        load_table(str(path))


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "d.parquet"
    path.write_text("not parquet")
    with pytest.raises(DataSourceError, match=r"could not read .*d\.parquet"):
        load_table(str(path))


@pytest.mark.parametrize("source", ["someorg/not-a-dataset", "someorg/not-a-dataset:main@test", "gsm8k"])
def test_unreachable_hub_id_fails_fast_with_advice(source: str) -> None:
    start = time.monotonic()
    with pytest.raises(DataSourceError) as info:
        load_table(source)
    assert time.monotonic() - start < 10, "offline hub lookup must not retry"
    msg = str(info.value)
    assert "from the hub" in msg and "pass a local parquet/jsonl/arrow path" in msg
    if ":main@test" in source:
        assert "(subset=main, split=test)" in msg


def test_hub_id_with_split_loads_from_the_offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path)
    write_hub_cache(tmp_path, "someorg/toy-math", "test", ROWS)
    assert_rows(load_table("someorg/toy-math@test"))
