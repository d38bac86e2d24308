"""The CPU demo's FAST-GRPO vs GRPO figures over N seeds: per-k means, 95% intervals, verdict.

Why: one demo run is one sample. The same seed samples differently on another CPU
(float differences grow through sampling), and seeds differ by several points, so
a claim a user can check is a mean over seeds with its interval.

Every seed starts from the demo's cached warm-start (runs/demo/cache, shared with
`make demo`: a copy of the shipped model fastgrpo/demo/base by default, trained once
with `--warmstart-seed`, `--warmstart-dtype` or another warm-start setting) and runs the demo's own stages
(fastgrpo.demo.__main__: train GRPO and FAST-GRPO, export, evaluate both on the
held-out split). Seed s sets `trainer.seed=s data.seed=s` (sampling and prompt
order) and the eval sampling seed s; the data split and the warm-start stay the
same. Seed 1 is the run `make demo` makes: same settings, same warm-start and, by
default, the same 1 torch thread per training run as each of its two lanes, so on
the same CPU its figures are the ones `make demo` prints (checked 2026-12-03: equal
to the last digit; the warm-start's weights were bitwise equal at 1 and 2 threads).

Resumable: a finished seed's per-k results are saved to <out>/seed<s>/result.json
together with a fingerprint of its settings, and reused while the settings match;
an interrupted seed resumes its stages (training resumes from its checkpoint).

    python benchmarks/demo_seeds.py                     # 5 seeds, two side by side, 1 thread each
    python benchmarks/demo_seeds.py --seeds 3 --jobs 3  # 3 seeds side by side
    python benchmarks/demo_seeds.py algorithm.thinking_reward_weight=0.3 --out runs/demo_seeds_w03
    # a FAST-GRPO variant against the GRPO runs already made (GRPO reused per seed when its settings match):
    python benchmarks/demo_seeds.py --fast-config my_fast.yaml --grpo-from runs/demo_seeds --out runs/demo_seeds_x
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path

import yaml

from fastgrpo.demo import task, verdict
from fastgrpo.demo.__main__ import (
    WARMSTART_DTYPES,
    DemoError,
    DemoOptions,
    KRow,
    _fingerprint,
    _train_overrides,
    cache_root,
    eval_command,
    make_quick,
    per_k_from_generations,
    slow_probs,
    stage_data,
    stage_eval,
    stage_export,
    stage_train,
    stage_warmstart,
    warmstart_settings,
)
from fastgrpo.demo.warmstart import cache_dir
from fastgrpo.rollout.hf import SAMPLER
from fastgrpo.utils.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULT = "result.json"
Results = dict[str, dict[int, KRow]]


def seed_options(base: DemoOptions, out: Path, seed: int) -> DemoOptions:
    """The demo's options for one seed: its own folder, the shared warm-start cache, seeded RL and eval."""
    return replace(
        base,
        out=out / f"seed{seed}",
        eval_seed=seed,
        extra_overrides=[f"trainer.seed={seed}", f"data.seed={seed}", *base.extra_overrides],
        log=out / f"seed{seed}" / "log.txt",
    )


def seed_fingerprint(o: DemoOptions) -> str:
    """What a seed's result depends on: both configs, every override, the warm-start, the eval call."""
    return _fingerprint(
        o.fast_config.read_text(),
        o.grpo_config.read_text(),
        _train_overrides(o, "<run>"),
        eval_command(o, Path("<model>"), "<name>")[2:],
        cache_dir(warmstart_settings(o), cache_root(o)).name,
        SAMPLER,
    )


def run_fingerprint(o: DemoOptions, name: str) -> str:
    """What one run's (GRPO's or FAST's) result depends on: its config, the overrides, the warm-start, the eval."""
    config = o.grpo_config if name == "grpo" else o.fast_config

    def anywhere(args: list[str]) -> list[str]:  # the same run in any folder, evaluated by any FAST config file
        return [a.replace(str(o.out), "<out>").replace(str(o.fast_config), "<fast config>") for a in args]

    return _fingerprint(
        config.read_text(),
        anywhere(_train_overrides(o, "<run>")),
        anywhere(eval_command(o, Path("<model>"), "<name>")[2:]),
        yaml.safe_load(o.fast_config.read_text()).get("eval"),  # the eval settings come from the FAST config
        cache_dir(warmstart_settings(o), cache_root(o)).name,
        SAMPLER,
    )


def load_run(folder: Path, o: DemoOptions, name: str) -> dict[int, KRow] | None:
    """One run's saved per-k results in <folder>/result.json if made with these settings, else None."""
    path = folder / RESULT
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("run_fingerprints", {}).get(name) != run_fingerprint(o, name):
        return None
    return {int(k): KRow(**row) for k, row in saved["results"][name].items()}


def saved_grpo(o: DemoOptions, seed: int, grpo_from: Path | None) -> dict[int, KRow] | None:
    """This seed's GRPO result saved with the same settings, in its own folder or in `grpo_from`."""
    for folder in (o.out, None if grpo_from is None else grpo_from / f"seed{seed}"):
        rows = None if folder is None else load_run(folder, o, "grpo")
        if rows is not None:
            return rows
    return None


def load_result(o: DemoOptions) -> Results | None:
    """The seed's saved per-k results if they were made with these settings, else None."""
    path = o.out / RESULT
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("fingerprint") != seed_fingerprint(o):
        return None
    return {name: {int(k): KRow(**row) for k, row in rows.items()} for name, rows in saved["results"].items()}


def run_seed(o: DemoOptions, seed: int, grpo_from: Path | None = None) -> Results:
    """Train, export and evaluate GRPO and FAST-GRPO for one seed (or reuse its saved result; GRPO's also
    from `grpo_from`/seed<seed> when its own settings match)."""
    cached = load_result(o)
    if cached is not None:
        print(f"seed {seed}: finished earlier ({o.out / RESULT})", flush=True)
        return cached
    t0 = time.perf_counter()
    print(f"seed {seed}: running (log: {o.log})", flush=True)
    stage_data(o)
    stage_warmstart(o)
    results: Results = {}
    for name, config in (("grpo", o.grpo_config), ("fast", o.fast_config)):
        reused = saved_grpo(o, seed, grpo_from) if name == "grpo" else None
        if reused is not None:
            print(f"seed {seed}: {name} reused from an earlier run with the same settings", flush=True)
            results[name] = reused
            continue
        model = stage_export(o, stage_train(o, config, name))
        results[name] = per_k_from_generations(stage_eval(o, model, name) / "generations.jsonl")
    seconds = time.perf_counter() - t0
    payload = {
        "seed": seed,
        "fingerprint": seed_fingerprint(o),
        "run_fingerprints": {name: run_fingerprint(o, name) for name in results},
        "seconds": round(seconds, 1),
        "results": {name: {str(k): asdict(row) for k, row in rows.items()} for name, rows in results.items()},
    }
    atomic_write_text(o.out / RESULT, json.dumps(payload, indent=1) + "\n")
    print(f"seed {seed}: done in {seconds:.0f} s", flush=True)
    return results


def _cell(metric: verdict.Metric, values: list[float]) -> str:
    mean, lo, hi = verdict.t_interval(values)
    fmt = (lambda v: f"{v:.2f}x") if metric == "token_ratio" else (lambda v: f"{v:+.1f}")
    return fmt(mean) if math.isnan(lo) else f"{fmt(mean)} [{fmt(lo)}, {fmt(hi)}]"


def summary(runs: dict[int, Results]) -> str:
    """Per-k means with 95% intervals, the per-seed values, and the verdict on the means (markdown)."""
    seeds = sorted(runs)
    ks = sorted(set.intersection(*(set(r["grpo"]) & set(r["fast"]) for r in runs.values())))
    lines = [
        f"Seeds {', '.join(map(str, seeds))} (n = {len(seeds)}); mean over seeds and 95% t-interval.",
        "",
        "| | " + " | ".join(f"k={k}" for k in ks) + " |",
        "|---|" + "---|" * len(ks),
    ]
    for metric, label in (("token_ratio", "tokens FAST / GRPO"), ("accuracy_diff", "accuracy FAST - GRPO (points)")):
        per_k = {k: [verdict.measure(metric, runs[s], k) for s in seeds] for k in ks}  # type: ignore[arg-type]
        lines.append(f"| {label} | " + " | ".join(_cell(metric, per_k[k]) for k in ks) + " |")  # type: ignore[arg-type]
    for name in ("grpo", "fast"):
        for attr, fmt in (("accuracy", "{:.3f}"), ("mean_tokens", "{:.1f}"), ("slow_fraction", "{:.2f}")):
            vals = {k: [getattr(runs[s][name][k], attr) for s in seeds] for k in ks}
            cells = [fmt.format(sum(v) / len(v)) for v in vals.values()]
            lines.append(f"| {name} {attr.replace('_', ' ')} (mean) | " + " | ".join(cells) + " |")
    lines += ["", "Per seed:", "", "| seed | tokens FAST / GRPO, k=" + ",".join(map(str, ks))
              + " | accuracy FAST - GRPO, k=" + ",".join(map(str, ks)) + " |", "|---|---|---|"]
    for s in seeds:
        ratios = " ".join(f"{verdict.measure('token_ratio', runs[s], k):.2f}" for k in ks)
        diffs = " ".join(f"{verdict.measure('accuracy_diff', runs[s], k):+.1f}" for k in ks)
        lines.append(f"| {s} | {ratios} | {diffs} |")
    lines += ["", "Verdict on the means:", "", verdict.verdict_markdown(verdict.seeds_verdict([runs[s] for s in seeds]))]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, DemoOptions]:
    ap = argparse.ArgumentParser(prog="python benchmarks/demo_seeds.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="Number of seeds (default 5).")
    ap.add_argument("--first-seed", type=int, default=1, help="Seeds run from this one up (default 1: the demo's).")
    ap.add_argument("--out", type=Path, default=Path("runs/demo_seeds"), help="Folder for the seeds' runs.")
    ap.add_argument("--cache", type=Path, default=Path("runs/demo/cache"),
                    help="Warm-start cache, shared with `make demo` (default runs/demo/cache).")
    ap.add_argument("--jobs", type=int, default=2, help="Seeds run side by side (each with --threads threads).")
    ap.add_argument("--threads", type=int, default=1,
                    help="Torch threads per seed (default 1: what each of `make demo`'s two lanes uses).")
    ap.add_argument("--steps", type=int, default=None, help="trainer.max_steps for both runs (default: configs').")
    ap.add_argument("--quick", action="store_true", help="Smoke test: the demo's --quick settings for every seed.")
    ap.add_argument("--warmstart-slow-prob", type=slow_probs, default=None, metavar="P2,P3,P4,P5,P6",
                    help="Warm-start mix: slow-solution probability per k (default: the demo's).")
    ap.add_argument("--warmstart-slow-style", default=None, choices=task.SLOW_STYLES,
                    help=f"How the warm-start's slow solutions think (default: the demo's, {task.DEFAULT_SLOW_STYLE}).")
    ap.add_argument("--warmstart-steps", type=int, default=None, help="Warm-start SFT steps (default: the demo's).")
    ap.add_argument("--warmstart-seed", type=int, default=None,
                    help="Seed of the warm-start (default: the shipped model's, 0); another seed trains another "
                    "draw, to see how far the figures depend on the base model.")
    ap.add_argument("--warmstart-dtype", default="auto", choices=WARMSTART_DTYPES,
                    help="Warm-start compute (default auto: bfloat16 where the CPU has native bf16, else float32).")
    ap.add_argument("--fast-config", type=Path, default=None,
                    help="FAST-GRPO config instead of configs/demo.yaml (a variant to compare with the same GRPO runs).")
    ap.add_argument("--grpo-from", type=Path, default=None,
                    help="Reuse each seed's GRPO result from this earlier --out folder when its settings match.")
    ap.add_argument("overrides", nargs="*", help="Extra trainer overrides for both runs, e.g. actor.lr=2e-4.")
    a = ap.parse_args(argv)
    if a.seeds < 2:
        ap.error("--seeds must be >= 2 (an interval needs two seeds)")
    if a.jobs < 1 or a.threads < 1:
        ap.error("--jobs and --threads must be >= 1")
    o = DemoOptions(out=a.out.resolve(), cache=a.cache.resolve(), threads=a.threads, steps=a.steps,
                    extra_overrides=list(a.overrides), warmstart_slow_prob=a.warmstart_slow_prob,
                    warmstart_slow_style=a.warmstart_slow_style,
                    warmstart_steps=a.warmstart_steps, warmstart_dtype=a.warmstart_dtype,
                    warmstart_seed=a.warmstart_seed)
    if a.fast_config is not None:
        if not a.fast_config.is_file():
            ap.error(f"--fast-config {a.fast_config}: no such file")
        o.fast_config = a.fast_config.resolve()
    if a.grpo_from is not None and not a.grpo_from.is_dir():
        ap.error(f"--grpo-from {a.grpo_from}: no such folder")
    if a.quick:
        make_quick(o)
    return a, o


def main(argv: list[str] | None = None) -> int:
    a, base = parse_args(argv)
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    options = {s: seed_options(base, base.out, s) for s in seeds}
    t0 = time.perf_counter()
    try:
        stage_warmstart(options[seeds[0]])  # once, before seeds run side by side
        with ThreadPoolExecutor(max_workers=a.jobs) as pool:
            futures = {s: pool.submit(run_seed, options[s], s, a.grpo_from and a.grpo_from.resolve()) for s in seeds}
            runs = {s: f.result() for s, f in futures.items()}
    except DemoError as e:
        print(f"demo_seeds failed: {e}\nRerun the same command to continue where it stopped.", file=sys.stderr)
        return 1
    text = summary(runs)
    head = (f"# Demo over {len(seeds)} seeds (`python benchmarks/demo_seeds.py "
            f"{' '.join(argv if argv is not None else sys.argv[1:])}`)\n\n"
            f"{time.perf_counter() - t0:.0f} s for the seeds not finished earlier; {a.jobs} job(s) x "
            f"{a.threads} thread(s).\n\n")
    atomic_write_text(base.out / "summary.md", head + text + "\n")
    print(text)
    print(f"\nwrote {base.out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
