"""Reward-scoring throughput: process pool (RewardScorer) vs a single-process loop.

    python benchmarks/reward_throughput.py [--n 2000] [--workers 2] [--timeout 5]

Both sides score the same N synthetic but realistic responses (GRPO-style:
N/8 questions x 8 samples; thinking spans of a few hundred to ~2k characters;
integer, decimal, fraction, radical, polynomial, set/interval, equation and
multiple-choice answers; some plain-text answers, some wrong, a few
malformed) with the same grading code (`fastgrpo.reward.grade`: extraction,
math-verify, multiple choice, format).

* single process: a plain loop calling `grade(...)` with math-verify's own
  signal-based timeouts (parsing_timeout / timeout_seconds = --timeout), the
  way a trainer without a pool would do it;
* pool: `RewardScorer(num_workers=--workers, timeout_s=--timeout)`, started
  and warm before timing (it is reused across training steps, so start-up is
  a one-off; it is printed separately).

Both sides are warmed up on a handful of unrelated samples first (first-use
imports), and each side sees the 2,000 responses exactly once per round in a
fresh process (the baseline runs in a child process, the pool's workers are
new), so per-process parse caches help both equally. Rounds alternate which
side goes first; medians are reported, with CPU seconds, because on a shared
machine the wall clock depends on what else is running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from fastgrpo.reward import RewardScorer, grade
from fastgrpo.reward._preload import warmup

_TEXT = (
    "first we note that the triangle is isosceles so the base angles are equal . "
    "let the unknown be x and substitute into the equation . expanding gives a quadratic . "
    "by the pythagorean theorem the hypotenuse is determined . checking the boundary case . "
    "the area of the shaded region equals the difference of the two areas . "
    "wait , let me re-check the arithmetic . hmm , that does not match , try again . "
    "so the sum telescopes and only the first and last terms remain . "
)
_WORDS = _TEXT.split()


def _reasoning(rng: random.Random, n_words: int) -> str:
    parts = []
    for i in range(n_words):
        parts.append(rng.choice(_WORDS))
        if i % 23 == 7:
            a, b = rng.randint(2, 30), rng.randint(2, 30)
            parts.append(
                rng.choice(
                    [
                        f"$\\frac{{{a}}}{{{b}}}$",
                        f"${a} + {b} = {a + b}$",
                        f"$x^{{2}} = {a * a}$",
                        f"$\\sqrt{{{a}}}$",
                    ]
                )
            )
    return " ".join(parts)


def _question(rng: random.Random) -> tuple[str, list[str], list[str] | None]:
    """(gold, list of answer variants [first ones correct, last wrong], choices)."""
    kind = rng.randrange(9)
    a, b = rng.randint(1, 40), rng.randint(2, 40)
    if kind == 0:
        return str(a * b), [str(a * b), f"{a * b}.0", str(a * b + 1)], None
    if kind == 1:
        return (
            f"\\frac{{{a}}}{{{b}}}",
            [f"\\frac{{{a}}}{{{b}}}", f"{a}/{b}", f"\\frac{{{a + 1}}}{{{b}}}"],
            None,
        )
    if kind == 2:
        return f"{a / 4:g}", [f"{a / 4:g}", f"\\frac{{{a}}}{{4}}", f"{a / 4 + 0.5:g}"], None
    if kind == 3:
        return (
            f"{a}\\sqrt{{{b}}}",
            [f"{a}\\sqrt{{{b}}}", f"\\sqrt{{{a * a * b}}}", f"{a + 1}\\sqrt{{{b}}}"],
            None,
        )
    if kind == 4:
        return f"x^2+{a}x+{b}", [f"x^{{2}}+{a}x+{b}", f"{b}+{a}x+x^2", f"x^2+{a}x+{b + 1}"], None
    if kind == 5:
        return f"\\{{{a},{b}\\}}", [f"\\{{{b},{a}\\}}", f"\\{{{a}, {b}\\}}", f"\\{{{a},{b + 1}\\}}"], None
    if kind == 6:
        return f"[{a},{a + b})", [f"[{a},{a + b})", f"[{a}, {a + b})", f"({a},{a + b})"], None
    if kind == 7:
        return f"x={a}", [f"{a}", f"x={a}", f"x={a + 2}"], None
    choices = [f"{a + i} cm" for i in range(4)]
    letter = "ABCD"[a % 4]
    return letter, [letter, f"({letter})", choices[a % 4], "ABCD"[(a + 1) % 4]], choices


def make_responses(n: int, seed: int = 0) -> tuple[list[str], list[str], list[dict]]:
    rng = random.Random(seed)
    responses, golds, extras = [], [], []
    group = 8
    while len(responses) < n:
        gold, variants, choices = _question(rng)
        for _ in range(group):
            if len(responses) >= n:
                break
            think = _reasoning(rng, rng.randint(40, 350))
            ans = variants[0] if rng.random() < 0.45 else rng.choice(variants)
            style = rng.random()
            if style < 0.80:
                resp = f"<think>\n{think}\n</think>\nTherefore the answer is $\\boxed{{{ans}}}$."
            elif style < 0.90:
                resp = f"<think>\n{think}\n</think>\nThe final answer is {ans}."
            elif style < 0.96:
                resp = f"{think}\nSo the answer is \\boxed{{{ans}}}"
            else:
                resp = f"<think>\n{think}"  # truncated at the length limit
            responses.append(resp)
            golds.append(gold)
            extras.append({"choices": choices} if choices else {})
    return responses, golds, extras


def run_single(responses: list[str], golds: list[str], extras: list[dict], timeout: float) -> dict:
    """The baseline: a plain in-process loop with math-verify's own timeouts."""
    warmup()
    t, c = time.perf_counter(), time.process_time()
    out = [
        grade(r, g, choices=e.get("choices"), timeout=max(1, round(timeout)))
        for r, g, e in zip(responses, golds, extras, strict=True)
    ]
    return {
        "wall": time.perf_counter() - t,
        "cpu": time.process_time() - c,
        "overall": [o["overall"] for o in out],
    }


def run_pool(
    responses: list[str], golds: list[str], extras: list[dict], timeout: float, workers: int
) -> dict:
    t = time.perf_counter()
    with RewardScorer(timeout_s=timeout, num_workers=workers) as scorer:
        scorer.score(["<think>a</think> \\boxed{1}"] * (2 * workers), ["1"] * (2 * workers))  # workers up
        startup = time.perf_counter() - t
        t, c = time.perf_counter(), time.process_time()
        res = scorer.score(responses, golds, extras)
        wall, parent_cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "wall": wall,
        "parent_cpu": parent_cpu,
        "worker_cpu": res.worker_cpu_s,
        "startup": startup,
        "timeouts": res.timeouts,
        "overall": res.overall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--rounds", type=int, default=3, help="alternating pool/single rounds; medians are reported"
    )
    ap.add_argument("--single-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    responses, golds, extras = make_responses(args.n, args.seed)
    if args.single_only:  # child process of the baseline: fresh caches every round
        print(json.dumps(run_single(responses, golds, extras, args.timeout)))
        return
    print(f"{len(responses)} responses, {len(set(golds))} distinct ground truths, cpu_count={os.cpu_count()}")

    def single_round() -> dict:
        cmd = [
            sys.executable,
            os.path.abspath(__file__),
            "--single-only",
            "--n",
            str(args.n),
            "--seed",
            str(args.seed),
            "--timeout",
            str(args.timeout),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    singles, pools = [], []
    for r in range(args.rounds):
        # alternate the order so drifting background load hits both sides alike
        if r % 2 == 0:
            pools.append(run_pool(responses, golds, extras, args.timeout, args.workers))
            singles.append(single_round())
        else:
            singles.append(single_round())
            pools.append(run_pool(responses, golds, extras, args.timeout, args.workers))
        print(
            f"round {r + 1}: single {singles[-1]['wall']:.2f} s, pool {pools[-1]['wall']:.2f} s "
            f"(load average {os.getloadavg()[0]:.1f})"
        )

    n = len(responses)
    single_s = statistics.median(x["wall"] for x in singles)
    pool_s = statistics.median(x["wall"] for x in pools)
    agree = sum(abs(p - s) < 1e-9 for p, s in zip(pools[0]["overall"], singles[0]["overall"], strict=True))
    print(f"pool and single process agree on {agree}/{n} scores; pool timeouts {pools[0]['timeouts']}")
    print(f"single process : {n / single_s:8.1f} responses/s  (median {single_s:.2f} s)")
    print(
        f"pool x{args.workers}        : {n / pool_s:8.1f} responses/s  (median {pool_s:.2f} s; "
        f"one-off start-up {statistics.median(x['startup'] for x in pools):.2f} s)"
    )
    print(f"speed-up       : {single_s / pool_s:.2f}x (wall clock, median of {args.rounds} rounds)")
    # CPU accounting, to read the wall-clock figure on a shared machine: when
    # other work holds the cores, both sides only get slices of them.
    single_cpu = statistics.median(x["cpu"] for x in singles)
    worker_cpu = statistics.median(x["worker_cpu"] for x in pools)
    parent_cpu = statistics.median(x["parent_cpu"] for x in pools)
    bound = max(worker_cpu / args.workers, parent_cpu)
    print(
        f"cpu seconds    : single {single_cpu:.2f}; pool workers {worker_cpu:.2f} (sum), pool parent {parent_cpu:.2f}"
    )
    print(
        f"speed-up if {args.workers} cores were idle (single cpu / max(worker cpu / workers, parent cpu)): {single_cpu / bound:.2f}x"
    )


if __name__ == "__main__":
    main()
