"""`make demo` / `python -m fastgrpo.demo`: fast-slow thinking reproduced in miniature on a CPU.

Why a pipeline of CLI calls: the demo is also the end-to-end check of what a user
runs. Each stage is the public command (`fastgrpo train`, `fastgrpo export`,
`fastgrpo eval`) in a subprocess, so the demo exercises exactly the shipped
paths, and a failed stage says which command to rerun by hand.

Stages (each skipped or resumed when its output already exists):
  1. data        runs/demo/data/{train,test}.jsonl (seeded generator)
  2. warm-start  the tiny model: the one shipped in fastgrpo/demo/base when the settings are the default
                 recipe's (copied, seconds), else trained (about 5 minutes; `--train-warmstart` always
                 trains); cached by a hash of its settings; runs/demo/base links to it
  3. train       configs/demo.yaml (FAST-GRPO) and configs/demo_grpo.yaml (plain GRPO)
  4. export      each run's final checkpoint -> <run>/export (HF folder)
  5. eval        base, grpo and fast on the test split, broken down by k
  Stages 3-5 run in two lanes side by side (`--jobs 2`, the default; each command gets half the torch
  threads, its output in <out>/logs/): FAST-GRPO's train, export, eval; and the base eval, then GRPO's.
  6. report      table + plot per k (runs/demo/report.md, runs/demo/demo_per_k.png), and the
                 verdict of this run against the demo's targets (fastgrpo/demo/verdict.py)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fastgrpo.demo import task, verdict
from fastgrpo.run_dir import RunDir, latest_checkpoint

console = Console(stderr=True)
ROOT = Path(__file__).resolve().parents[2]
MODELS = ("base", "grpo", "fast")
WARMSTART_DTYPES = ("auto", "float32", "bfloat16")


@dataclass
class DemoOptions:
    out: Path = Path("runs/demo")
    fast_config: Path = ROOT / "configs" / "demo.yaml"
    grpo_config: Path = ROOT / "configs" / "demo_grpo.yaml"
    seed: int = 0
    n_train: int = 4000
    n_test_per_k: int = task.N_TEST_PER_K
    threads: int = 2
    jobs: int = 2
    """Lanes run side by side after the warm-start (1: one stage after another, output on the terminal).
    Why 2: the tiny model's rollout barely gains from a second thread (the per-token loop dominates), so
    two 1-thread lanes finish sooner than two 2-thread runs in a row (297 s against 340 s measured for the
    train/export/eval part on the 2-core demo machine, benchmarks/RESULTS.md)."""
    steps: int | None = None
    """Override trainer.max_steps for both runs (None: the configs' value)."""
    warmstart_steps: int | None = None
    warmstart_seed: int | None = None
    """Seed of the warm-start's initialization and batches; None: WarmStartSettings' default (0)."""
    warmstart_slow_prob: tuple[float, ...] | None = None
    """Slow-solution probability per k of the warm-start mix; None: WarmStartSettings' default."""
    warmstart_slow_style: str | None = None
    """How the warm-start's slow solutions think (task.SLOW_STYLES); None: WarmStartSettings' default."""
    warmstart_dtype: str = "auto"
    """Warm-start compute: "auto" is the shipped model's (bfloat16) when the other warm-start settings are
    the default recipe's, so it is copied rather than trained; otherwise, and with `train_warmstart`, bfloat16
    autocast where the CPU has native bf16 (1.04x faster with 2 threads), else float32. Each dtype trains
    other weights, so its own cache and multi-seed figures in benchmarks/RESULTS.md."""
    train_warmstart: bool = False
    """Train the warm-start now (about 5 minutes) even if a cached or shipped model matches its settings."""
    eval_n: int | None = None
    eval_limit: int | None = None
    eval_max_new_tokens: int | None = None
    """None: eval.max_new_tokens of the FAST config."""
    eval_seed: int | None = None
    """Sampling seed of the evals; None: seed + 1."""
    extra_overrides: list[str] = field(default_factory=list)
    cache: Path | None = None
    """Warm-start cache root; None: <out>/cache. benchmarks/demo_seeds.py shares runs/demo/cache."""
    log: Path | None = None
    """Append the commands' output to this file instead of the terminal (seeds run side by side)."""


@dataclass
class Stage:
    name: str
    seconds: float = 0.0
    status: str = "pending"
    lane: str = ""


class DemoError(RuntimeError):
    pass


def _env(threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }


def _run(cmd: list[str], threads: int, log: Path | None = None) -> None:
    """Run a public command, streaming its output (or appending it to `log`); a failure names the
    command to rerun."""
    if log is None:
        console.print(f"[dim]$ {shlex.join(cmd)}[/]", highlight=False)
        rc = subprocess.call(cmd, env=_env(threads), cwd=ROOT)
    else:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("a") as f:
            f.write(f"$ {shlex.join(cmd)}\n")
            f.flush()
            rc = subprocess.call(cmd, env=_env(threads), cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        where = "" if log is None else f" (output in {log})"
        raise DemoError(f"command failed (exit {rc}): {shlex.join(cmd)}{where}")


def _fastgrpo(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastgrpo", *args]


FINGERPRINT = ".demo_fingerprint"


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).hexdigest()[:16]


def _claim(folder: Path, fingerprint: str) -> None:
    """Make `folder` belong to this stage's inputs before the stage runs.

    Train and eval resume whatever they find in their output folder; after the
    warm-start, a config or an override changed, that would silently mix old and
    new results. A folder from other inputs is moved aside to `<name>.stale-<time>`.
    """
    mark = folder / FINGERPRINT
    if folder.exists() and not (mark.exists() and mark.read_text().strip() == fingerprint):
        aside = folder.with_name(f"{folder.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
        folder.rename(aside)
        console.print(f"[yellow]{folder} came from other inputs; moved to {aside}[/]", highlight=False)
    folder.mkdir(parents=True, exist_ok=True)
    mark.write_text(fingerprint + "\n")


def _model_fingerprint(model_dir: Path) -> str:
    """Identity of a model folder: its resolved path and weights file stamp."""
    weights = sorted(model_dir.resolve().glob("*.safetensors"))
    return _fingerprint(
        model_dir.resolve(), *[(w.name, w.stat().st_size, w.stat().st_mtime_ns) for w in weights]
    )


def _sampler() -> str:
    from fastgrpo.rollout.hf import SAMPLER  # lazy: transformers is slow to import

    return SAMPLER


def _data_key(o: DemoOptions) -> str:
    return _fingerprint(o.seed, o.n_train, o.n_test_per_k, task.HOLDOUT_MIN_K)


# ----------------------------------------------------------------------------------------- stages
def stage_data(o: DemoOptions) -> dict[str, Path]:
    return task.write_splits(o.out / "data", seed=o.seed, n_train=o.n_train, n_test_per_k=o.n_test_per_k)


def warmstart_settings(o: DemoOptions) -> Any:
    """The WarmStartSettings these options train (their hash names the cache folder)."""
    from fastgrpo.demo.warmstart import WarmStartSettings, shipped_warmstart

    kw: dict[str, Any] = {"data_seed": o.seed, "n_test_per_k": o.n_test_per_k}
    if o.warmstart_seed is not None:
        kw["seed"] = o.warmstart_seed
    if o.warmstart_steps is not None:
        kw["steps"] = o.warmstart_steps
        kw["warmup_steps"] = min(20, max(1, o.warmstart_steps // 10))
    if o.warmstart_slow_prob is not None:
        kw["slow_prob"] = tuple(o.warmstart_slow_prob)
    if o.warmstart_slow_style is not None:
        kw["slow_style"] = o.warmstart_slow_style
    if o.warmstart_dtype == "auto" and not o.train_warmstart:
        shipped = WarmStartSettings(**kw, compute_dtype="bfloat16")
        if shipped_warmstart(shipped) is not None:
            return shipped
    kw["compute_dtype"] = resolve_warmstart_dtype(o.warmstart_dtype)
    return WarmStartSettings(**kw)


def resolve_warmstart_dtype(name: str) -> str:
    """"auto" -> "bfloat16" on CPUs with native bf16, else "float32"; an explicit dtype is kept."""
    from fastgrpo.demo.warmstart import COMPUTE_DTYPES, cpu_has_native_bf16

    if name == "auto":
        return "bfloat16" if cpu_has_native_bf16() else "float32"
    if name not in COMPUTE_DTYPES:
        raise DemoError(f"warm-start dtype must be auto or one of {COMPUTE_DTYPES}, got {name!r}")
    return name


def cache_root(o: DemoOptions) -> Path:
    return o.cache if o.cache is not None else o.out / "cache"


def stage_warmstart(o: DemoOptions) -> Path:
    """Train (or reuse) the warm-start model and point <out>/base at it."""
    import torch

    from fastgrpo.demo.warmstart import DONE_FILE, cache_dir, shipped_warmstart, warm_start

    s = warmstart_settings(o)
    folder = cache_dir(s, cache_root(o))
    if (folder / DONE_FILE).exists() and not o.train_warmstart:
        console.print(f"warm-start: cached {folder}")
    elif shipped_warmstart(s) is not None and not o.train_warmstart:
        folder = warm_start(s, cache_root(o))
        console.print(f"warm-start: the shipped model (fastgrpo/demo/base, the default recipe's weights; "
                      f"--train-warmstart trains it again), copied to {folder}")
    else:
        torch.set_num_threads(o.threads)
        with Progress(
            TextColumn("[bold]warm-start"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            t = progress.add_task("sft", total=s.steps, loss="")
            folder = warm_start(
                s,
                cache_root(o),
                on_step=lambda i, loss: progress.update(t, completed=i + 1, loss=f"loss {loss:.3f}"),
                force=o.train_warmstart,
                use_shipped=not o.train_warmstart,
            )
    link = o.out / "base"
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.resolve() == folder.resolve():
            return link
        if not link.is_symlink():
            raise DemoError(f"{link} exists and is not a link to the warm-start cache; remove it and rerun")
        link.unlink()
    tmp = link.with_name(".base.tmp")
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(os.path.relpath(folder.resolve(), link.parent.resolve()))
    tmp.replace(link)  # atomic: a reader never sees no link
    return link


def _train_overrides(o: DemoOptions, experiment: str) -> list[str]:
    ov = [
        f"data.train_files={o.out / 'data' / 'train.jsonl'}",
        f"data.val_files={o.out / 'data' / 'test.jsonl'}",
        f"model.path={o.out / 'base'}",
        f"trainer.output_dir={o.out}",
        f"trainer.experiment_name={experiment}",
    ]
    if o.steps is not None:
        ov.append(f"trainer.max_steps={o.steps}")
    return ov + o.extra_overrides


def stage_train(o: DemoOptions, config: Path, experiment: str) -> Path:
    overrides = _train_overrides(o, experiment)
    run_dir = o.out / experiment
    _claim(run_dir, _fingerprint(config.read_text(), overrides, _model_fingerprint(o.out / "base"), _data_key(o),
                                 _sampler()))
    _run(_fastgrpo("train", str(config), *overrides), o.threads, o.log)
    return run_dir


def stage_export(o: DemoOptions, run_dir: Path) -> Path:
    """Export the final checkpoint, unless <run>/export already holds exactly that checkpoint."""
    out = run_dir / "export"
    ckpt = latest_checkpoint(RunDir(run_dir).checkpoints)
    if ckpt is None:
        raise DemoError(f"{run_dir}: training left no checkpoint to export")
    mark = run_dir / ".demo_export"
    fp = _fingerprint(ckpt.resolve(), ckpt.stat().st_mtime_ns)
    if (out / "config.json").exists() and mark.exists() and mark.read_text().strip() == fp:
        console.print(f"export: {out} is up to date with {ckpt.name}")
        return out
    _run(_fastgrpo("export", str(run_dir), "--to", "local"), o.threads, o.log)
    if not (out / "config.json").exists():
        raise DemoError(f"export finished but {out} has no config.json")
    mark.write_text(fp + "\n")
    return out


def eval_command(o: DemoOptions, model_dir: Path, name: str) -> list[str]:
    """The eval call: the test split as a custom benchmark, per-k breakdown, the training prompt."""
    cmd = _fastgrpo(
        "eval",
        "--config",
        str(o.fast_config),
        "--bench",
        "custom",
        "--data",
        str(o.out / "data" / "test.jsonl"),
        "--prompt-key",
        "problem",
        "--answer-key",
        "answer",
        "--group-key",
        "k",
        "--prompt",
        task.FORMAT_PROMPT,
        "--model",
        str(model_dir),
        "--out",
        str(o.out / "eval" / name),
        "--name",
        name,
        "--engine",
        "hf",
        "--workers",
        "0",
        "--seed",
        str(o.seed + 1 if o.eval_seed is None else o.eval_seed),
    )
    if o.eval_n is not None:
        cmd += ["--n", str(o.eval_n)]
    if o.eval_limit is not None:
        cmd += ["--limit", str(o.eval_limit)]
    if o.eval_max_new_tokens is not None:
        cmd += ["--max-new-tokens", str(o.eval_max_new_tokens)]
    return cmd


def stage_eval(o: DemoOptions, model_dir: Path, name: str) -> Path:
    cmd = eval_command(o, model_dir, name)
    out = o.out / "eval" / name
    _claim(out, _fingerprint(o.fast_config.read_text(), cmd[2:], _model_fingerprint(model_dir), _data_key(o), _sampler()))
    _run(cmd, o.threads, o.log)
    return out


# ----------------------------------------------------------------------------------------- report
@dataclass
class KRow:
    accuracy: float
    mean_tokens: float
    slow_fraction: float
    samples: int


def per_k_from_generations(path: Path) -> dict[int, KRow]:
    """Per-k accuracy, mean tokens and slow fraction from an eval's generations.jsonl.

    Why not results.json alone: it has accuracy and tokens per group but not the
    slow/fast split, which is the point of the demo.
    """
    acc: dict[int, list[float]] = defaultdict(list)
    tok: dict[int, list[float]] = defaultdict(list)
    slow: dict[int, list[float]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        k = int(r["group"])
        acc[k].append(float(r["correct"]))
        tok[k].append(float(r["tokens"]))
        slow[k].append(float(task.is_slow(r["response"])))
    return {
        k: KRow(
            sum(acc[k]) / len(acc[k]), sum(tok[k]) / len(tok[k]), sum(slow[k]) / len(slow[k]), len(acc[k])
        )
        for k in sorted(acc)
    }


def per_k_table(results: dict[str, dict[int, KRow]]) -> str:
    ks = sorted({k for r in results.values() for k in r})
    head = "| model | " + " | ".join(f"k={k}" for k in ks) + " | all |"
    sep = "|---|" + "---|" * (len(ks) + 1)
    lines = []
    for metric, fmt in (("accuracy", "{:.2f}"), ("mean_tokens", "{:.1f}"), ("slow_fraction", "{:.2f}")):
        lines += [f"**{metric.replace('_', ' ')}**", "", head, sep]
        for name, rows in results.items():
            vals = [getattr(rows[k], metric) if k in rows else None for k in ks]
            present = [v for v in vals if v is not None]
            mean = sum(present) / len(present) if present else None
            cells = ["-" if v is None else fmt.format(v) for v in [*vals, mean]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_per_k(results: dict[str, dict[int, KRow]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for name, rows in results.items():
        ks = sorted(rows)
        for ax, metric in zip(axes, ("accuracy", "mean_tokens", "slow_fraction"), strict=True):
            ax.plot(ks, [getattr(rows[k], metric) for k in ks], marker="o", label=name)
    for ax, title in zip(
        axes, ("accuracy", "mean generated tokens", "fraction slow (thinking)"), strict=True
    ):
        ax.set_title(title)
        ax.set_xlabel("k (numbers summed)")
        ax.grid(alpha=0.3)
        ax.set_xticks(sorted({k for rows in results.values() for k in rows}))
    axes[0].set_ylim(0, 1.02)
    axes[2].set_ylim(0, 1.02)
    axes[0].legend()
    fig.suptitle("CPU demo: sums of k digits, test split (sampled at temperature 1)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def reading(results: dict[str, dict[int, KRow]]) -> list[str]:
    """Two sentences that say what the table shows, easiest and hardest k, FAST against GRPO."""
    if not {"grpo", "fast"} <= set(results):
        return []
    g, f = results["grpo"], results["fast"]
    ks = sorted(set(g) & set(f))
    if not ks:
        return []
    out = []
    for k, label in ((ks[0], "easiest"), (ks[-1], "hardest")):
        out.append(
            f"- {label} (k={k}): FAST {f[k].accuracy:.2f} accuracy with {f[k].mean_tokens:.1f} tokens "
            f"({f[k].slow_fraction:.0%} slow), GRPO {g[k].accuracy:.2f} with {g[k].mean_tokens:.1f} "
            f"({g[k].slow_fraction:.0%} slow)."
        )

    def mean(rows: dict[int, KRow], attr: str) -> float:
        return sum(getattr(rows[k], attr) for k in ks) / len(ks)

    saved = 1 - mean(f, "mean_tokens") / max(mean(g, "mean_tokens"), 1e-9)
    out.append(
        f"- all k: FAST uses {saved:.0%} fewer tokens than GRPO "
        f"(accuracy {mean(f, 'accuracy'):.2f} vs {mean(g, 'accuracy'):.2f})."
    )
    return out


def write_report(o: DemoOptions, results: dict[str, dict[int, KRow]], stages: list[Stage],
                 wall: float | None = None) -> Path:
    png = plot_per_k(results, o.out / "demo_per_k.png")
    lines = [
        "# fastgrpo CPU demo: fast-slow thinking in miniature",
        "",
        "Sums of k single-digit numbers (k = 2 easy ... 6 hard); a tiny Qwen2 warm-started on a mix of",
        "slow (running sums inside `<think>`) and fast (`<think></think>` then the answer) solutions,",
        "then trained with plain GRPO (`configs/demo_grpo.yaml`) and FAST-GRPO (`configs/demo.yaml`).",
        "Evaluated on the test split (`fastgrpo eval --bench custom --group-key k`), sampled at",
        f"temperature 1; test sums with k >= {task.HOLDOUT_MIN_K} never appear in training (k=2 has only 81).",
        "",
        *reading(results),
        "",
        per_k_table(results),
        f"![per k]({png.name})",
        "",
        *verdict_section(results),
        "## Stages",
        "",
        "| stage | status | seconds | lane |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s.name} | {s.status} | {s.seconds:.1f} | {s.lane or '-'} |" for s in stages]
    wall = sum(s.seconds for s in stages) if wall is None else wall
    how = (f"{o.threads} torch threads" if o.jobs == 1 else
           f"warm-start with {o.threads} torch threads, then two lanes side by side with "
           f"{lane_threads(o)} each, so the stage times add up to more than the total")
    lines += ["", f"Total: {wall:.1f} s on {os.cpu_count()} CPU cores ({how}).", ""]
    report = o.out / "report.md"
    report.write_text("\n".join(lines))
    return report


def verdict_section(results: dict[str, dict[int, KRow]]) -> list[str]:
    """The report's verdict of this run against the targets (nothing without both GRPO and FAST)."""
    if not {"grpo", "fast"} <= set(results):
        return []
    return [
        "## Verdict of this run",
        "",
        verdict.verdict_markdown(verdict.run_verdict(results)),
        "",
        verdict.MULTI_SEED_POINTER,
        "",
    ]


def print_verdict(results: dict[str, dict[int, KRow]]) -> None:
    if not {"grpo", "fast"} <= set(results):
        return
    checks = verdict.run_verdict(results)
    table = Table(title="verdict of this run: FAST-GRPO against GRPO")
    for col, justify in (("target", "left"), ("k", "right"), ("measured", "right"), ("verdict", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for target, k, value, _, v in verdict.verdict_rows(checks):
        table.add_row(target, k, value, f"[green]{v}[/]" if v == "met" else f"[red]{v}[/]")
    out = Console()
    out.print(table)
    out.print(f"{sum(c.met for c in checks)} of {len(checks)} checks met. {verdict.MULTI_SEED_POINTER}",
              highlight=False)


def print_results(results: dict[str, dict[int, KRow]]) -> None:
    ks = sorted({k for r in results.values() for k in r})
    table = Table(title="test accuracy / mean tokens / slow fraction, per k")
    table.add_column("model")
    for k in ks:
        table.add_column(f"k={k}", justify="right")
    for name, rows in results.items():
        table.add_row(
            name,
            *[
                f"{rows[k].accuracy:.2f} / {rows[k].mean_tokens:.1f} / {rows[k].slow_fraction:.2f}"
                if k in rows
                else "-"
                for k in ks
            ],
        )
    Console().print(table)


# ----------------------------------------------------------------------------------------- main
def run_demo(o: DemoOptions) -> Path:
    if o.jobs not in (1, 2):
        raise DemoError(f"jobs must be 1 or 2 (the demo has two training runs), got {o.jobs}")
    o.out = o.out.resolve()  # the commands run from the repo root, wherever the demo was started
    o.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    stages: list[Stage] = []

    def stage(name: str, fn: Any, opts: DemoOptions, *args: Any, lane: str = "") -> Any:
        s = Stage(name, lane=lane if o.jobs > 1 else "")
        stages.append(s)
        if o.jobs == 1:
            console.rule(f"[bold]{name}")
        start = time.perf_counter()
        try:
            out = fn(opts, *args)
            s.status = "ok"
            return out
        except BaseException:
            s.status = "failed"
            raise
        finally:
            s.seconds = time.perf_counter() - start

    stage("data", stage_data, o)
    stage("warm-start", stage_warmstart, o)
    evals = run_lanes(o, stage)
    results = {name: per_k_from_generations(evals[name] / "generations.jsonl") for name in MODELS}
    wall = time.perf_counter() - t0
    report = write_report(o, results, stages, wall)
    print_results(results)
    print_verdict(results)
    console.print(f"wrote {report} and {o.out / 'demo_per_k.png'} (total {wall:.0f} s)", highlight=False)
    return report


def lane_threads(o: DemoOptions) -> int:
    """Torch threads of each lane's commands: `o.threads` split between the `o.jobs` lanes."""
    return max(1, o.threads // o.jobs)


def _lane_options(o: DemoOptions, stage_name: str) -> DemoOptions:
    """A lane's stage: its share of the threads, and its own log file unless the caller gave one."""
    if o.jobs == 1:
        return o
    log = o.log or o.out / "logs" / f"{stage_name.replace(' ', '_')}.log"
    return replace(o, threads=lane_threads(o), log=log)


def run_lanes(o: DemoOptions, stage: Any) -> dict[str, Path]:
    """Train, export and evaluate: FAST-GRPO in one lane; the base model's eval, then GRPO, in the other.

    With `o.jobs == 2` the lanes run side by side with a live view of each (training steps read from the
    run's metrics.jsonl); a failed lane lets the other finish its current command, then the demo stops
    naming the failed command and its log.
    """
    evals: dict[str, Path] = {}
    current: dict[str, tuple[str, Path | None]] = {}
    failed = threading.Event()

    def run(lane: str, name: str, fn: Any, *args: Any) -> Any:
        if failed.is_set():
            raise DemoError(f"{name} not started: the other lane failed")
        opts = _lane_options(o, name)
        current[lane] = (name, opts.log)
        try:
            return stage(name, fn, opts, *args, lane=lane)
        except BaseException:
            failed.set()
            raise

    def model_lane(lane: str, name: str, config: Path) -> None:
        run_dir = run(lane, f"train {name}", stage_train, config, name)
        model = run(lane, f"export {name}", stage_export, run_dir)
        evals[name] = run(lane, f"eval {name}", stage_eval, model, name)

    def lane_fast() -> None:
        model_lane("fast", "fast", o.fast_config)

    def lane_grpo() -> None:
        evals["base"] = run("grpo", "eval base", stage_eval, o.out / "base", "base")
        model_lane("grpo", "grpo", o.grpo_config)

    if o.jobs == 1:
        lane_grpo()
        lane_fast()
        return evals
    total_steps = {name: _max_steps(o, config) for name, config in (("grpo", o.grpo_config), ("fast", o.fast_config))}
    console.print(f"two lanes side by side ({lane_threads(o)} torch thread(s) each); "
                  f"each command's output goes to {o.out / 'logs'}/<stage>.log", highlight=False)
    with ThreadPoolExecutor(max_workers=2) as pool, Progress(
        TextColumn("{task.fields[lane]:>4}"), TextColumn("{task.description:<12}"), BarColumn(),
        MofNCompleteColumn(), TimeElapsedColumn(), console=console,
    ) as progress:
        futures = {lane: pool.submit(fn) for lane, fn in (("fast", lane_fast), ("grpo", lane_grpo))}
        bars = {lane: progress.add_task("", total=None, lane=lane) for lane in futures}
        while not all(f.done() for f in futures.values()):
            for lane, bar in bars.items():
                _show_lane(progress, bar, current.get(lane), o, total_steps, futures[lane])
            time.sleep(0.5)
        for lane, bar in bars.items():
            _show_lane(progress, bar, current.get(lane), o, total_steps, futures[lane])
    errors = [(lane, f.exception()) for lane, f in futures.items() if f.exception() is not None]
    errors.sort(key=lambda e: "not started" in str(e[1]))  # the lane that failed first, not the one it stopped
    if errors:
        lane, err = errors[0]
        name, log = current[lane]
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:]) if log and log.exists() else ""
        raise DemoError(f"{name}: {err}" + (f"\nlast lines of {log}:\n{tail}" if tail else ""))
    return evals


def _max_steps(o: DemoOptions, config: Path) -> int | None:
    if o.steps is not None:
        return o.steps
    steps = (yaml.safe_load(config.read_text()) or {}).get("trainer", {}).get("max_steps")
    return steps if isinstance(steps, int) else None


def _show_lane(progress: Progress, bar: Any, now: tuple[str, Path | None] | None, o: DemoOptions,
               total_steps: dict[str, int | None], future: Any) -> None:
    """One lane's row: its stage, and for a training stage the steps logged so far."""
    if now is None:
        return
    name, _ = now
    if future.done():
        ok = future.exception() is None
        progress.update(bar, description="done" if ok else f"{name}: stopped", total=1, completed=int(ok))
        return
    kind, _, run = name.partition(" ")
    if kind == "train":
        metrics = o.out / run / "metrics.jsonl"
        done = sum(1 for _ in metrics.open()) if metrics.exists() else 0
        progress.update(bar, description=name, total=total_steps.get(run), completed=done)
    else:
        progress.update(bar, description=name, total=None, completed=0)


def slow_probs(text: str) -> tuple[float, ...]:
    """`--warmstart-slow-prob`: one probability in [0, 1] per k = 2..6, comma-separated."""
    try:
        probs = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers, e.g. 0.5,0.3,0.6,0.99,0.995") from None
    n = task.K_MAX - task.K_MIN + 1
    if len(probs) != n or not all(0.0 <= p <= 1.0 for p in probs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected {n} probabilities in [0, 1], one per k = "
                                         f"{task.K_MIN}..{task.K_MAX}")
    return probs


def parse_args(argv: list[str] | None = None) -> DemoOptions:
    ap = argparse.ArgumentParser(prog="python -m fastgrpo.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/demo"), help="Demo folder (default runs/demo).")
    ap.add_argument("--threads", type=int, default=2,
                    help="Torch threads: the warm-start's, split between the lanes after it.")
    ap.add_argument("--jobs", type=int, default=2, choices=(1, 2),
                    help="2: after the warm-start, FAST-GRPO and GRPO train side by side (output in <out>/logs); "
                    "1: one stage after another, output on the terminal.")
    ap.add_argument("--steps", type=int, default=None, help="trainer.max_steps for both runs.")
    ap.add_argument("--warmstart-steps", type=int, default=None, help="Warm-start SFT steps.")
    ap.add_argument("--warmstart-seed", type=int, default=None,
                    help="Seed of the warm-start's initialization and batches (default 0, the shipped model's); "
                    "another seed trains another draw of the recipe.")
    ap.add_argument("--warmstart-slow-prob", type=slow_probs, default=None, metavar="P2,P3,P4,P5,P6",
                    help="Slow-solution probability per k of the warm-start mix (default "
                    f"{','.join(map(str, task.WARMSTART_SLOW_PROB))}).")
    ap.add_argument("--warmstart-slow-style", default=None, choices=task.SLOW_STYLES,
                    help=f"How the warm-start's slow solutions think (default {task.DEFAULT_SLOW_STYLE}; "
                    "see fastgrpo/demo/task.py slow_solution).")
    ap.add_argument("--warmstart-dtype", default="auto", choices=WARMSTART_DTYPES,
                    help="Warm-start compute: auto (default) is the shipped model's, bfloat16, when the other "
                    "warm-start settings are the default recipe's (then nothing is trained); otherwise bfloat16 "
                    "autocast where the CPU has native bf16, else float32. Each dtype trains other weights, "
                    "cached apart.")
    ap.add_argument("--train-warmstart", action="store_true",
                    help="Train the warm-start now (about 5 minutes) instead of using the shipped or a cached "
                    "model. With the default settings on a CPU with native bf16 this reproduces the shipped "
                    "weights; with float32 it trains another draw (benchmarks/RESULTS.md).")
    ap.add_argument("--eval-n", type=int, default=None, help="Samples per test question.")
    ap.add_argument("--eval-limit", type=int, default=None, help="Only the first N test questions.")
    ap.add_argument("--seed", type=int, default=0, help="Data seed (train/test splits).")
    ap.add_argument(
        "--quick", action="store_true", help="Smoke test: a few steps everywhere (minutes -> seconds)."
    )
    ap.add_argument("overrides", nargs="*", help="Extra trainer overrides for both runs, e.g. actor.lr=2e-4.")
    a = ap.parse_args(argv)
    o = DemoOptions(
        out=a.out,
        threads=a.threads,
        jobs=a.jobs,
        steps=a.steps,
        warmstart_steps=a.warmstart_steps,
        warmstart_seed=a.warmstart_seed,
        warmstart_slow_prob=a.warmstart_slow_prob,
        warmstart_slow_style=a.warmstart_slow_style,
        warmstart_dtype=a.warmstart_dtype,
        train_warmstart=a.train_warmstart,
        eval_n=a.eval_n,
        eval_limit=a.eval_limit,
        seed=a.seed,
        extra_overrides=list(a.overrides),
    )
    if a.quick:
        make_quick(o)
    return o


def make_quick(o: DemoOptions) -> DemoOptions:
    """`--quick`: a few steps everywhere (also benchmarks/demo_seeds.py --quick)."""
    o.steps = o.steps or 2
    o.warmstart_steps = o.warmstart_steps or 10
    o.eval_n = o.eval_n or 1
    o.eval_limit = o.eval_limit or 40
    # A smaller batch and shorter answers: the smoke test checks the pipeline, not the learning. The
    # 10-step warm-start solves nothing yet, so online filtering would keep no group: it is off.
    o.extra_overrides = ["data.rollout_batch_size=4", "rollout.n=4", "actor.global_batch_size=16",
                         "actor.micro_batch_size=16", "data.max_response_length=32",
                         "algorithm.online_filtering=false", *o.extra_overrides]
    o.eval_max_new_tokens = o.eval_max_new_tokens or 32
    return o


def main(argv: list[str] | None = None) -> int:
    o = parse_args(argv)
    try:
        run_demo(o)
    except DemoError as e:
        console.print(f"[bold red]demo failed:[/] {e}", highlight=False)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
