"""Warm-start step time: bf16 autocast against fp32 (the baseline), same steps, same run.

Why: `make demo` spends about half its time in the warm-start, which is compute-bound
(matmuls and attention). On CPUs with native bf16 (`cpu_has_native_bf16`) the demo trains
it under bf16 autocast; this measures what that buys on the machine at hand, against fp32
measured in the same process, rounds alternating so that a change of machine load hits both.
It runs the demo's own training loop (`train_warmstart`) for `--steps` steps per round (the
lr schedule is shortened to match; the time per step does not depend on it).

    python benchmarks/warmstart_dtype.py                  # 2 rounds of 150 steps, 2 threads
    python benchmarks/warmstart_dtype.py --steps 300 --rounds 3 --threads 1

Prints each round's seconds per step, then `bf16_speedup_vs_fp32: X` (median fp32 step time
over median bf16 step time). Without native bf16 the ratio is expected below 1: that is why
the demo keeps fp32 there.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from fastgrpo.demo.__main__ import DemoOptions, warmstart_settings
from fastgrpo.demo.warmstart import COMPUTE_DTYPES, cpu_has_native_bf16, train_warmstart


def time_per_step(dtype: str, steps: int, root: Path) -> float:
    s = warmstart_settings(DemoOptions(warmstart_steps=steps, warmstart_dtype=dtype))  # the demo's, shortened
    info = train_warmstart(s, root / f"{dtype}-{len(list(root.iterdir()))}")
    return info["seconds"] / steps


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=150, help="Warm-start steps per round (default 150).")
    ap.add_argument("--rounds", type=int, default=2, help="Rounds; each times fp32 then bf16 (default 2).")
    ap.add_argument("--threads", type=int, default=2, help="Torch threads (default 2, as make demo's warm-start).")
    a = ap.parse_args(argv)
    if a.steps < 1 or a.rounds < 1 or a.threads < 1:
        ap.error("--steps, --rounds and --threads must be >= 1")
    torch.set_num_threads(a.threads)
    print(f"native bf16: {cpu_has_native_bf16()}; {a.threads} thread(s); {a.rounds} round(s) of {a.steps} steps")
    times: dict[str, list[float]] = {d: [] for d in COMPUTE_DTYPES}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for dtype in COMPUTE_DTYPES:
                times[dtype].append(time_per_step(dtype, a.steps, Path(tmp)))
                print(f"round {r + 1} {dtype}: {times[dtype][-1]:.4f} s/step", flush=True)
    fp32, bf16 = statistics.median(times["float32"]), statistics.median(times["bfloat16"])
    print(f"median s/step: float32 {fp32:.4f}, bfloat16 {bf16:.4f}")
    print(f"bf16_speedup_vs_fp32: {fp32 / bf16:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
