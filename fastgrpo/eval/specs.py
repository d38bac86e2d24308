"""Command-line benchmark selection -> `BenchmarkSpec`s: `--data NAME=PATH`, `--split`, `--group-key`, custom keys.

Why here and not in the CLI: plain functions over the registry, testable without Typer; a bad
value raises `EvalSetupError` (the CLI turns it into exit 2 with the message).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastgrpo.eval.prompts import EvalSetupError
from fastgrpo.eval.registry import UnknownBenchmarkError, custom_benchmark, get_benchmark

_HUB_ID = re.compile(r"^[\w.\-]+/[\w.\-]+(:[\w.\-]+)?(@[\w.\-]+)?$")


def split_assignments(values: list[str] | None, names: list[str], flag: str) -> dict[str, str]:
    """`--data PATH` (one benchmark) or `--data NAME=PATH` (any number) -> {name: value}."""
    out: dict[str, str] = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if sep and key and not Path(value).exists():
            if key.strip().lower() == "custom":
                out["custom"] = rest
                continue
            try:
                out[get_benchmark(key).name] = rest
                continue
            except UnknownBenchmarkError:
                pass
        if len(names) != 1:
            raise EvalSetupError(f"{flag} {value!r}: with several benchmarks write {flag} NAME=VALUE")
        out[names[0]] = value
    return out


def group_keys(value: str | None, names: list[str]) -> dict[str, str]:
    """`--group-key KEY` applies to the custom benchmark when there is one, else to every benchmark;
    `--group-key NAME=KEY` to one benchmark."""
    if not value:
        return {}
    out: dict[str, str] = {}
    for part in value.split(","):
        name, sep, key = part.partition("=")
        if sep:
            out["custom" if name.strip().lower() == "custom" else get_benchmark(name).name] = key.strip()
        else:
            targets = ["custom"] if "custom" in names else names
            out.update(dict.fromkeys(targets, part.strip()))
    return out


def build_specs(
    names: list[str], data: dict[str, str], splits: dict[str, str], keys: dict[str, Any]
) -> list[Any]:
    import dataclasses

    groups = group_keys(keys.pop("group_key", None), names)
    specs = []
    for name in names:
        if name == "custom":
            path = data.get("custom")
            keys = {**keys, "group_key": groups.get("custom")}
            if not path:
                raise EvalSetupError(
                    "--bench custom needs --data PATH (a local parquet/jsonl/json/arrow file or datasets folder)"
                )
            if not Path(path).expanduser().exists():
                raise EvalSetupError(f"custom benchmark data not found: {path}")
            kwargs = {k: v for k, v in keys.items() if v is not None}
            specs.append(custom_benchmark(path, split=splits.get("custom", "train"), **kwargs))
            continue
        spec = get_benchmark(name)
        if name in data:
            value = data[name]
            if Path(value).expanduser().exists():
                spec = dataclasses.replace(spec, path=value)
            elif _HUB_ID.match(value):
                source, split = value.rsplit("@", 1) if "@" in value else (value, spec.split)
                source, subset = source.split(":", 1) if ":" in source else (source, spec.subset)
                spec = dataclasses.replace(spec, source=source, split=split, subset=subset, data_files=None)
            else:
                raise EvalSetupError(
                    f"--data for {name}: {value!r} is neither an existing file/folder nor a hub id (org/name)"
                )
        if name in splits:
            spec = dataclasses.replace(spec, split=splits[name])
        if name in groups:
            spec = dataclasses.replace(spec, fields=dataclasses.replace(spec.fields, group=groups[name]))
        specs.append(spec)
    return specs
