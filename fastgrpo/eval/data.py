"""Benchmark rows -> `EvalItem`s: find the data (explicit path, data dir, then the hub), map fields, resolve images.

Why a search order: evaluation machines are often offline, so a local copy must
win, and a missing dataset must say every place that was tried and how to fix it.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from fastgrpo.data.io import LOCAL_SUFFIXES, DataSourceError, load_table
from fastgrpo.eval.choices import LETTERS, parse_options
from fastgrpo.eval.registry import BenchmarkSpec
from fastgrpo.log import get_logger
from fastgrpo.reward.reference import papo_label

log = get_logger("eval.data")

DATA_DIR_ENV = "FASTGRPO_EVAL_DATA"
"""Environment variable naming a default data dir (used when `--data-dir` is not given)."""


@dataclass
class EvalItem:
    benchmark: str
    prompt_id: str
    question: str
    """The question (for ShareGPT rows: the whole user turn, instruction and `<image>` included)."""
    answer: str
    """Gold answer text (a letter for multiple choice with an answer index)."""
    options: list[str] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    """PIL images or resolved image paths, loaded when the prompt is built."""
    group: str | None = None
    label: str | None = None
    """The ground truth PAPO-Eval grades against (`fastgrpo.reward.papo_label` of the gold as stored:
    for ShareGPT rows the unstripped assistant turn); None: `papo_label(answer)`. Used by `--scorer reference`."""


def _local_candidates(spec: BenchmarkSpec, data_dir: Path) -> list[Path]:
    out: list[Path] = []
    for stem in dict.fromkeys((spec.name, *spec.local_names)):
        out.append(data_dir / stem)
        out.extend(data_dir / f"{stem}{suffix}" for suffix in LOCAL_SUFFIXES)
        out.extend([data_dir / "papo" / f"{stem}.json", data_dir / "vppo" / f"{stem}.json"])
    return out


def _load_local(path: Path, spec: BenchmarkSpec) -> datasets.Dataset:
    last: DataSourceError | None = None
    for split in dict.fromkeys((spec.split, "test", "validation", "train")):
        try:
            return load_table(str(path), split=split, subset=spec.subset)
        except DataSourceError as e:
            if "no split" not in str(e) and "no file for split" not in str(e):
                raise
            last = e
    raise last  # type: ignore[misc]


def _load_hub(spec: BenchmarkSpec) -> datasets.Dataset:
    if spec.data_files:
        try:
            return datasets.load_dataset(spec.source, data_files=spec.data_files, split="train")
        except Exception as e:
            raise DataSourceError(
                f"could not load {spec.source!r} file {spec.data_files}: {type(e).__name__}: {e}"
            ) from None
    return load_table(spec.source, split=spec.split, subset=spec.subset)


def locate(spec: BenchmarkSpec, data_dir: str | Path | None = None) -> tuple[datasets.Dataset, Path | None]:
    """The benchmark's table and the local file/folder it came from (None for the hub).

    An explicit `spec.path` that is not an existing file/folder goes through `load_table`, like
    `data.train_files`: a hub id `name[:subset][@split]` or a local `folder@split`.
    """
    if spec.path:
        p = Path(spec.path).expanduser()
        if p.exists():
            return _load_local(p, spec), p
        try:
            table = load_table(spec.path, split=spec.split, subset=spec.subset)
        except DataSourceError as e:
            raise DataSourceError(f"{spec.name}: {e}") from None
        folder = Path(spec.path.rsplit("@", 1)[0]).expanduser()
        return table, folder if folder.exists() else None
    tried: list[Path] = []
    dirs = [Path(d).expanduser() for d in (data_dir, os.environ.get(DATA_DIR_ENV)) if d]
    for d in dict.fromkeys(dirs):
        for cand in _local_candidates(spec, d):
            tried.append(cand)
            if cand.exists():
                return _load_local(cand, spec), cand
    try:
        return _load_hub(spec), None
    except DataSourceError as e:
        looked = "\n  ".join(str(p) for p in tried) or "(no --data-dir given)"
        stems = ", ".join(dict.fromkeys((spec.name, *spec.local_names)))
        raise DataSourceError(
            f"benchmark {spec.name!r} ({spec.title}) not found.\n"
            f"Looked locally in:\n  {looked}\n"
            f"and on the hub: {spec.source_label}: {e}\n"
            f"Provide it with --data-dir DIR holding <stem>.parquet|.jsonl|.json|.arrow or a saved `datasets` "
            f"folder (stem: {stems}), or --data {spec.name}=PATH."
        ) from None


def _image_bases(source: Path | None, data_dir: str | Path | None) -> list[Path]:
    bases: list[Path] = []
    if source is not None:
        start = source if source.is_dir() else source.parent
        bases += [start, start.parent, start.parent.parent]
    if data_dir:
        bases.append(Path(data_dir).expanduser())
    return list(dict.fromkeys(bases))


def _rel_variants(value: str) -> list[str]:
    text = value.strip().replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    out = [text]
    if text.startswith("data/"):
        out.append(text[len("data/") :])
    out.append(f"images/{Path(text).name}")
    return list(dict.fromkeys(out))


def _fetch_hub_images(spec: BenchmarkSpec) -> Path | None:
    """Download a hub benchmark's images once (PAPO zip or VPPO folder) into the user cache."""
    if not (spec.image_archive or spec.image_glob):
        return None
    from huggingface_hub import snapshot_download

    root = (
        Path(os.environ.get("FASTGRPO_CACHE", Path.home() / ".cache" / "fastgrpo"))
        / "eval_images"
        / spec.name
    )
    marker = root / ".complete"
    if marker.exists():
        return root
    pattern = spec.image_archive or spec.image_glob
    snap = Path(snapshot_download(spec.source, repo_type="dataset", allow_patterns=[pattern]))
    root.mkdir(parents=True, exist_ok=True)
    if spec.image_archive:
        with zipfile.ZipFile(snap / spec.image_archive) as zf:
            zf.extractall(root / "images")
    else:
        (root / "data").mkdir(exist_ok=True)
        link = root / "data" / "images"
        if not link.exists():
            link.symlink_to(snap / "data" / "images", target_is_directory=True)
    marker.touch()
    return root


class _ImageResolver:
    def __init__(self, spec: BenchmarkSpec, source: Path | None, data_dir: str | Path | None) -> None:
        self.spec = spec
        self.bases = _image_bases(source, data_dir)
        self.hub = source is None
        self.fetched = False

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, dict):
            if value.get("bytes"):
                from PIL import Image

                return Image.open(io.BytesIO(value["bytes"]))
            value = value.get("path")
        if not isinstance(value, str | Path):
            return value  # already a PIL image
        p = Path(value).expanduser()
        if p.is_absolute() and p.exists():
            return p
        for base in self.bases:
            for rel in _rel_variants(str(value)):
                if (base / rel).exists():
                    return base / rel
        if self.hub and not self.fetched:
            self.fetched = True
            try:
                root = _fetch_hub_images(self.spec)
            except Exception as e:
                raise DataSourceError(f"{self.spec.name}: could not fetch images from the hub: {e}") from None
            if root is not None:
                self.bases.insert(0, root)
                return self(value)
        looked = ", ".join(str(b) for b in self.bases) or "(nowhere: no local source)"
        raise DataSourceError(
            f"{self.spec.name}: image {value!r} not found (looked under {looked}). Unpack the benchmark's "
            "images next to its data file (e.g. DIR/images/... beside DIR/<name>.json)."
        )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _column(row: dict[str, Any], key: str, spec: BenchmarkSpec) -> Any:
    if key not in row:
        raise DataSourceError(
            f"{spec.name}: column {key!r} not in the data (columns: {', '.join(row)}); "
            "set the field mapping (e.g. --prompt-key/--answer-key)."
        )
    return row[key]


def _content(message: dict[str, Any]) -> str:
    value = message.get("content")
    return str(value if value is not None else message.get("value", ""))


def _sharegpt_turns(row: dict[str, Any], spec: BenchmarkSpec) -> tuple[str, str, Any]:
    messages = _column(row, spec.fields.messages, spec)
    user = next((m for m in messages if (m.get("role") or m.get("from")) in ("user", "human")), None)
    if user is None:
        raise DataSourceError(f"{spec.name}: a ShareGPT row has no user message")
    rest = messages[messages.index(user) + 1 :]
    gold = next((m for m in rest if (m.get("role") or m.get("from")) in ("assistant", "gpt")), None)
    if gold is None:
        raise DataSourceError(f"{spec.name}: a ShareGPT row has no assistant (gold answer) message")
    return _content(user), _content(gold).strip(), gold.get("content", gold.get("value"))


def _gold(raw: Any, spec: BenchmarkSpec) -> str:
    text = str(raw).strip() if raw is not None else ""
    if spec.answer_format == "gsm8k":
        text = text.split("####")[-1].strip().replace(",", "")
    return text


def _ids_usable(ds: datasets.Dataset, spec: BenchmarkSpec) -> bool:
    """The id column names questions only when present and unique over the whole table (resume keys on it)."""
    f = spec.fields
    if not f.id or f.id not in ds.column_names:
        return False
    ids = [str(v) for v in ds[f.id]]
    return len(set(ids)) == len(ids)


def rows_to_items(
    ds: datasets.Dataset, spec: BenchmarkSpec, resolve: Any = None, use_ids: bool | None = None
) -> list[EvalItem]:
    f = spec.fields
    if use_ids is None:
        use_ids = _ids_usable(ds, spec)
    ids = [str(v) for v in ds[f.id]] if use_ids and f.id else None
    items: list[EvalItem] = []
    for i, row in enumerate(ds):
        raw: Any = None
        if f.format == "sharegpt":
            question, answer, raw = _sharegpt_turns(row, spec)
        else:
            question = str(_column(row, f.question, spec))
            answer = "" if f.answer_index else _gold(_column(row, f.answer, spec), spec)
        if f.format == "sharegpt":
            answer = _gold(answer, spec)
        options: list[str] = []
        if f.options:
            options = [str(o) for o in _as_list(_column(row, f.options, spec))]
        elif spec.question_type != "free_form":
            options = parse_options(question)
        if f.answer_index:
            idx = int(_column(row, f.answer_index, spec))
            answer = LETTERS[idx]
        images = []
        if f.images and spec.modality == "vision" and (f.images in row or not f.images_optional):
            images = [resolve(v) if resolve else v for v in _as_list(_column(row, f.images, spec))]
        group = None
        if f.group:
            g = _column(row, f.group, spec)
            group = None if g is None else str(g)
        items.append(
            EvalItem(
                spec.name,
                ids[i] if ids else str(i),
                question,
                answer,
                options,
                [im for im in images if im is not None],
                group,
                label=papo_label(raw) if f.format == "sharegpt" else None,
            )
        )
    return items


def load_items(
    spec: BenchmarkSpec, data_dir: str | Path | None = None, limit: int | None = None
) -> list[EvalItem]:
    """The first `limit` questions of a benchmark (all when None), in dataset order."""
    ds, source = locate(spec, data_dir)
    if spec.expected_rows and len(ds) != spec.expected_rows and not spec.path:
        log.warning("%s: %d rows, the reference harness expects %d", spec.name, len(ds), spec.expected_rows)
    use_ids = _ids_usable(ds, spec)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return rows_to_items(ds, spec, _ImageResolver(spec, source, data_dir), use_ids)
