"""Turning sample records into results: avg@n per benchmark, the JSON/Markdown reports, the terminal table, the plot.

Aggregation follows the reference evaluation: per question, the mean over its
samples; per benchmark, the mean over questions (avg@n); the average row is the
unweighted mean over benchmarks. Length is the mean over all responses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fastgrpo.eval.metrics import maj_at_k, pass_at_k
from fastgrpo.utils.io import atomic_path, atomic_write_json, atomic_write_text

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
PLOT_PNG = "accuracy_vs_length.png"
PLOT_DATA = "accuracy_vs_length.json"
LENGTH_DEFINITION = (
    "generated tokens per response, counted with the model's tokenizer: prompt and padding excluded, "
    "the EOS token included when the model stopped (a response cut at max_new_tokens has no EOS)"
)


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return sum(vals) / len(vals) if vals else None


def summarize_records(per_question: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """Stats of one benchmark (or one group): `per_question[i]` holds question i's sample records."""
    answered = [recs for recs in per_question if recs]
    q_acc = [sum(bool(r["correct"]) for r in recs) / len(recs) for recs in answered]
    flat = [r for recs in answered for r in recs]
    acc = _mean(q_acc)
    tokens = _mean(r["tokens"] for r in flat)
    truncated = _mean(1.0 if r.get("finish") == "length" else 0.0 for r in flat)
    fmt = _mean(float(r["format"]) for r in flat if r.get("format") is not None)
    cut_thinking = sum(1 for r in flat if r.get("truncated_thinking"))
    k_max = min((len(recs) for recs in answered), default=0)
    pass_k = {
        str(k): round(
            100.0
            * _mean(pass_at_k(len(recs), sum(bool(r["correct"]) for r in recs), k) for recs in answered),  # type: ignore[operator]
            4,
        )
        for k in range(1, k_max + 1)
    }
    maj_k = {
        str(k): round(100.0 * _mean(maj_at_k(recs, k) for recs in answered), 4)  # type: ignore[operator]
        for k in range(1, k_max + 1)
    }
    return {
        "accuracy": None if acc is None else round(100.0 * acc, 4),
        "mean_tokens": None if tokens is None else round(tokens, 2),
        "questions": len(answered),
        "samples": len(flat),
        "pass_at_n": None
        if not answered
        else round(100.0 * _mean(any(r["correct"] for r in recs) for recs in answered), 4),  # type: ignore[arg-type]
        "pass_at_k": pass_k,
        "maj_at_k": maj_k,
        "truncated_pct": None if truncated is None else round(100.0 * truncated, 2),
        "truncated_thinking": cut_thinking,
        "truncated_thinking_pct": round(100.0 * cut_thinking / len(flat), 2) if flat else None,
        "format_pct": None if fmt is None else round(100.0 * fmt, 2),
        "timeouts": sum(1 for r in flat if r.get("timeout")),
    }


def average_row(benchmarks: dict[str, dict[str, Any]]) -> dict[str, Any]:
    accs = [b["accuracy"] for b in benchmarks.values() if b.get("accuracy") is not None]
    toks = [b["mean_tokens"] for b in benchmarks.values() if b.get("mean_tokens") is not None]
    return {
        "accuracy": None if not accs else round(sum(accs) / len(accs), 4),
        "mean_tokens": None if not toks else round(sum(toks) / len(toks), 2),
        "benchmarks": len(accs),
        "samples": sum(b.get("samples", 0) for b in benchmarks.values()),
    }


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def results_table(results: dict[str, Any], title: str | None = None) -> Table:
    table = Table(title=title or f"{results.get('model', 'model')}  (scorer: {results.get('scorer')})")
    for col, justify in (
        ("Benchmark", "left"),
        ("Accuracy %", "right"),
        ("Mean tokens", "right"),
        ("Questions", "right"),
        ("Samples", "right"),
        ("n", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name, b in results["benchmarks"].items():
        table.add_row(
            b.get("title", name),
            _fmt(b["accuracy"]),
            _fmt(b["mean_tokens"], 1),
            _fmt(b["questions"]),
            _fmt(b["samples"]),
            _fmt(b.get("sampling", {}).get("n")),
        )
        for g, s in (b.get("groups") or {}).items():
            table.add_row(
                f"  {b.get('group_key', 'group')}={g}",
                _fmt(s["accuracy"]),
                _fmt(s["mean_tokens"], 1),
                _fmt(s["questions"]),
                _fmt(s["samples"]),
                "",
                style="dim",
            )
    avg = results.get("average") or {}
    if len(results["benchmarks"]) > 1:
        table.add_section()
        table.add_row(
            "Average",
            _fmt(avg.get("accuracy")),
            _fmt(avg.get("mean_tokens"), 1),
            "",
            _fmt(avg.get("samples")),
            "",
            style="bold",
        )
    for pool, p in (results.get("pooled") or {}).items():
        table.add_row(
            f"{pool} (pooled)",
            _fmt(p["accuracy"]),
            _fmt(p["mean_tokens"], 1),
            _fmt(p["questions"]),
            _fmt(p["samples"]),
            "",
            style="italic",
        )
    return table


def print_results(results: dict[str, Any], console: Console | None = None) -> None:
    (console or Console()).print(results_table(results))


def results_markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Evaluation: {results.get('model', 'model')}",
        "",
        f"- scorer: `{results.get('scorer')}`; engine: `{results.get('engine')}`; truncated thinking: "
        f"`{results.get('truncated_thinking', '-')}`",
        "- accuracy: avg@n (per question the mean over its n samples, then the mean over questions)",
        f"- tokens: {results.get('length_definition', LENGTH_DEFINITION)}",
        "",
        "| Benchmark | Accuracy % | Mean tokens | Questions | Samples | n | temperature | top_p | top_k | max_new_tokens |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, b in results["benchmarks"].items():
        s = b.get("sampling", {})
        lines.append(
            f"| {b.get('title', name)} | {_fmt(b['accuracy'])} | {_fmt(b['mean_tokens'], 1)} | {b['questions']} | "
            f"{b['samples']} | {s.get('n', '-')} | {s.get('temperature', '-')} | {s.get('top_p', '-')} | "
            f"{s.get('top_k', '-')} | {s.get('max_new_tokens', '-')} |"
        )
    avg = results.get("average") or {}
    lines.append(
        f"| **Average** | **{_fmt(avg.get('accuracy'))}** | **{_fmt(avg.get('mean_tokens'), 1)}** | | "
        f"{avg.get('samples', '')} | | | | | |"
    )
    for pool, p in (results.get("pooled") or {}).items():
        lines.append(
            f"| *{pool} (pooled: {', '.join(p['benchmarks'])})* | {_fmt(p['accuracy'])} | "
            f"{_fmt(p['mean_tokens'], 1)} | {p['questions']} | {p['samples']} | | | | | |"
        )
    for name, b in results["benchmarks"].items():
        if not b.get("groups"):
            continue
        key = b.get("group_key", "group")
        lines += [
            "",
            f"## {b.get('title', name)} by `{key}`",
            "",
            f"| {key} | Accuracy % | Mean tokens | Questions | Samples |",
            "|---|---:|---:|---:|---:|",
        ]
        for g, s in b["groups"].items():
            lines.append(
                f"| {g} | {_fmt(s['accuracy'])} | {_fmt(s['mean_tokens'], 1)} | {s['questions']} | "
                f"{s['samples']} |"
            )
    lines += _pass_maj_markdown(results)
    return "\n".join(lines) + "\n"


def _pass_maj_markdown(results: dict[str, Any]) -> list[str]:
    """pass@k and maj@k for every k <= n, per benchmark and per group; truncated-thinking counts."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for name, b in results["benchmarks"].items():
        rows.append((b.get("title", name), b))
        key = b.get("group_key", "group")
        rows += [(f"{b.get('title', name)}, {key}={g}", s) for g, s in (b.get("groups") or {}).items()]
    k_max = max((len(s.get("pass_at_k") or {}) for _, s in rows), default=0)
    if not k_max:
        return []
    ks = [str(k) for k in range(1, k_max + 1)]
    out = [
        "",
        "## pass@k and maj@k (%)",
        "",
        "pass@k: unbiased estimate 1 - C(n-c, k) / C(n, k) per question, mean over questions; maj@k: the "
        "majority answer of a question's first k samples is correct. Truncated thinking: responses that "
        "opened `<think>` and never closed it.",
        "",
        "| Benchmark | metric | " + " | ".join(f"k={k}" for k in ks) + " | truncated thinking |",
        "|---|---|" + "---:|" * len(ks) + "---:|",
    ]
    for label, s in rows:
        cut = f"{s.get('truncated_thinking', 0)} ({_fmt(s.get('truncated_thinking_pct'))}%)"
        for metric, key in (("pass@k", "pass_at_k"), ("maj@k", "maj_at_k")):
            vals = s.get(key) or {}
            cells = " | ".join(_fmt(vals.get(k)) for k in ks)
            out.append(f"| {label} | {metric} | {cells} | {cut if metric == 'pass@k' else ''} |")
    return out


def write_reports(results: dict[str, Any], out_dir: str | Path, plot: bool = True) -> None:
    """results.json (atomically), results.md, and the accuracy-vs-length plot with its data sidecar."""
    out = Path(out_dir)
    atomic_write_json(out / RESULTS_JSON, results)
    atomic_write_text(out / RESULTS_MD, results_markdown(results))
    if plot:
        plot_accuracy_vs_length([results], out / PLOT_PNG)


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json, or a folder holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_JSON
    if not p.exists():
        raise FileNotFoundError(f"no results file at {p}")
    data = json.loads(p.read_text())
    if "benchmarks" not in data:
        raise ValueError(f"{p} is not a fastgrpo eval results.json (no 'benchmarks')")
    data.setdefault("_path", str(p))
    return data


def model_labels(results_list: Sequence[dict[str, Any]]) -> list[str]:
    """One distinct label per results file: the model name, disambiguated by its folder when repeated."""
    labels = [str(r.get("label") or r.get("model") or f"model{i}") for i, r in enumerate(results_list)]
    for i, label in enumerate(labels):
        if labels.count(label) > 1 and results_list[i].get("_path"):
            labels[i] = f"{label} ({Path(results_list[i]['_path']).parent.name})"
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if label in seen:
            seen[label] += 1
            labels[i] = f"{label} #{seen[label]}"
        else:
            seen[label] = 1
    return labels


def plot_points(
    results_list: Sequence[dict[str, Any]], labels: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The plotted data: one point per (model, benchmark) with both numbers known."""
    labels = list(labels) if labels is not None else model_labels(results_list)
    points = []
    for label, res in zip(labels, results_list, strict=True):
        for name, b in res["benchmarks"].items():
            if b.get("accuracy") is None or b.get("mean_tokens") is None:
                continue
            points.append(
                {
                    "model": label,
                    "benchmark": name,
                    "title": b.get("title", name),
                    "mean_tokens": b["mean_tokens"],
                    "accuracy": b["accuracy"],
                }
            )
    return points


def _accuracy_range(accs: list[float], min_span: float = 10.0) -> tuple[float, float]:
    """Y range around the points, at least `min_span` points wide, kept inside [0, 100] where possible."""
    lo, hi = min(accs), max(accs)
    half = max((hi - lo) * 0.6, min_span / 2)
    center = (lo + hi) / 2
    bottom, top = center - half, center + half
    if bottom < 0:
        bottom, top = 0.0, min(100.0, top - bottom)
    if top > 100:
        bottom, top = max(0.0, bottom - (top - 100)), 100.0
    return bottom - 1.0, top + 1.0


def plot_accuracy_vs_length(
    results_list: Sequence[dict[str, Any]], path: str | Path, labels: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """Scatter accuracy (%) against mean generated tokens; writes PNG + a JSON sidecar of the same points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    points = plot_points(results_list, labels)
    models = list(dict.fromkeys(p["model"] for p in points))
    markers = "osD^vP*Xh<>"
    fig, ax = plt.subplots(figsize=(7.5, 5.0), dpi=110)
    try:
        for i, model in enumerate(models):
            pts = [p for p in points if p["model"] == model]
            ax.scatter(
                [p["mean_tokens"] for p in pts],
                [p["accuracy"] for p in pts],
                label=model,
                marker=markers[i % len(markers)],
                s=46,
                alpha=0.85,
            )
            for p in pts:
                ax.annotate(
                    p["title"],
                    (p["mean_tokens"], p["accuracy"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
        if points:
            ax.set_ylim(*_accuracy_range([p["accuracy"] for p in points]))
        ax.set_xlabel("mean generated tokens")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("Accuracy vs. response length")
        ax.grid(True, alpha=0.3)
        if models:
            ax.legend(fontsize=8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    atomic_write_json(path.with_suffix(".json"), {"x": "mean_tokens", "y": "accuracy", "points": points})
    return points


def compare(paths: Sequence[str | Path], out_dir: str | Path) -> dict[str, Any]:
    """Plot and tabulate several results files together (`fastgrpo eval compare A B --out DIR`)."""
    results_list = [load_results(p) for p in paths]
    labels = model_labels(results_list)
    out = Path(out_dir)
    points = plot_accuracy_vs_length(results_list, out / PLOT_PNG, labels)
    benchmarks = list(dict.fromkeys(name for r in results_list for name in r["benchmarks"]))
    rows = {
        name: {
            label: {k: r["benchmarks"].get(name, {}).get(k) for k in ("accuracy", "mean_tokens")}
            for label, r in zip(labels, results_list, strict=True)
        }
        for name in benchmarks
    }
    average = {label: r.get("average", {}) for label, r in zip(labels, results_list, strict=True)}
    data = {
        "models": labels,
        "sources": [str(p) for p in paths],
        "benchmarks": rows,
        "average": average,
        "points": points,
    }
    atomic_write_json(out / "comparison.json", data)
    header = "| Benchmark | " + " | ".join(f"{m} acc % | {m} tokens" for m in labels) + " |"
    lines = ["# Comparison", "", header, "|---|" + "---:|---:|" * len(labels)]
    for name in benchmarks:
        cells = " | ".join(
            f"{_fmt(rows[name][m]['accuracy'])} | {_fmt(rows[name][m]['mean_tokens'], 1)}" for m in labels
        )
        lines.append(f"| {name} | {cells} |")
    cells = " | ".join(
        f"{_fmt(average[m].get('accuracy'))} | {_fmt(average[m].get('mean_tokens'), 1)}" for m in labels
    )
    lines.append(f"| **Average** | {cells} |")
    atomic_write_text(out / "comparison.md", "\n".join(lines) + "\n")
    return data


def comparison_table(data: dict[str, Any]) -> Table:
    table = Table(title="Accuracy % / mean tokens")
    table.add_column("Benchmark")
    for m in data["models"]:
        table.add_column(m, justify="right")
    for name, row in data["benchmarks"].items():
        table.add_row(
            name, *(f"{_fmt(row[m]['accuracy'])} / {_fmt(row[m]['mean_tokens'], 0)}" for m in data["models"])
        )
    table.add_section()
    table.add_row(
        "Average",
        *(
            f"{_fmt(data['average'][m].get('accuracy'))} / {_fmt(data['average'][m].get('mean_tokens'), 0)}"
            for m in data["models"]
        ),
        style="bold",
    )
    return table
