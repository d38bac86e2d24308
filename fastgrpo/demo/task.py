"""The bundled synthetic task: sums of k single-digit numbers, k = 2 (easy) ... 6 (hard).

Why this task: it has a real fast/slow trade-off at a size a CPU can train. A
tiny model can add two digits "at a glance" but not six, while writing the
running sums inside `<think>...</think>` turns every k into a chain of easy
two-number additions, at the price of many more tokens (5-6 tokens fast
against 60-72 slow at k=6, the slow answer ending with a check of its last
step). FAST-GRPO should learn to answer easy sums fast and keep slow thinking
for hard ones.

Everything is a pure function of a seed, so the demo's data (and its warm-start
cache key) are reproducible anywhere.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fastgrpo.utils.io import atomic_path, atomic_write_text

K_MIN = 2
K_MAX = 6
THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
BOX_OPEN = "\\boxed{"
HOLDOUT_MIN_K = 3
"""Test problems are kept out of training only from this k up. k=2 has just 81 problems:
holding half of them out made the k=2 score measure whether a fast answer generalizes
an addition fact never seen as a k=2 question (fast k=2 accuracy fell to 0.56 after
FAST-GRPO, measured), not fast vs slow thinking on an easy question."""
N_TEST_PER_K = 150
"""Held-out questions per k (fewer for k=2, which has only 81 sums): one standard error is ~1.5 points."""
FORMAT_PROMPT = "{{ content }}="
"""Jinja `data.format_prompt` for the demo: the user turn is just "3+5+2=" (every char is a token)."""
WARMSTART_SLOW_PROB = (0.5, 0.3, 0.6, 0.99, 0.995)
"""The warm-start mix: probability of a slow solution for k = K_MIN..K_MAX (see fastgrpo.demo.warmstart)."""

_BOXED_RE = re.compile(r"\\boxed\{([^{}]*)\}")
_FORMAT_RE = re.compile(r"^<think>.*</think>\s*\\boxed\{[^{}]*\}\s*$", re.DOTALL)


@dataclass(frozen=True)
class Problem:
    digits: tuple[int, ...]

    @property
    def k(self) -> int:
        return len(self.digits)

    @property
    def text(self) -> str:
        """The question as the `problem` column holds it, e.g. "3+5+2"."""
        return "+".join(str(d) for d in self.digits)

    @property
    def answer(self) -> str:
        return str(sum(self.digits))


SLOW_STYLES = ("carry", "check", "chain", "rewrite")
DEFAULT_SLOW_STYLE = "check"
"""The demo's slow thinking (see slow_solution for why)."""


def slow_solution(p: Problem, style: str = DEFAULT_SLOW_STYLE) -> str:
    """Running sums inside the thinking span, one addition per line, then the boxed answer.

    * carry: "a+b=s" then the numbers still to add, "3+5=8,2+7+9+4",
      "8+2=10,7+9+4", ... "26+4=30". Every operand the next line needs sits right
      after a marker in the line above ("=" for the sum, "," for the next digit) and
      the rest is a straight copy, so the tiny model never has to count its way to
      the i-th digit of the question; the addition itself reads two adjacent operands.
    * check (default): carry, then the last addition undone by a subtraction, "26+4=30"
      then "30-4=26". Slow thinking that verifies its result, as R1-style models do. Why:
      with carry alone a slow k=2 answer is 10 tokens against 5 fast, so even GRPO's
      overthinking (70% slow k=2 answers) cost too little for FAST-GRPO's saving to
      show (0.73x over 5 seeds, target 0.7x); with the check it is 16 tokens, as
      overthinking an easy question is costly in real reasoning models, and at the same
      slow shares the ratio fell to 0.51x (bf16 warm-start, 5 seeds, 2026-12-04). The
      price: 6-8 more tokens on every slow answer.
    * chain: "3+5=8", "8+2=10", ... Shorter, but each line must fetch the next digit
      from the question by position: after the same warm-start, slow chain answers
      were less accurate than fast ones at k=6 (0.10 vs 0.45), the wrong way round.
    * rewrite: "8+2+7+9+4", "10+7+9+4", ... Shortest, but the sum is produced with
      no adjacent operands: about as inaccurate as answering at once.
    """
    if style not in SLOW_STYLES:
        raise ValueError(f"slow style must be one of {SLOW_STYLES}, got {style!r}")
    lines = []
    total = p.digits[0]
    for i, d in enumerate(p.digits[1:], start=2):
        rest = "+".join(str(x) for x in p.digits[i:])
        if style in ("carry", "check"):
            lines.append(f"{total}+{d}={total + d}" + (f",{rest}" if rest else ""))
        elif style == "chain":
            lines.append(f"{total}+{d}={total + d}")
        else:
            lines.append(f"{total + d}" + (f"+{rest}" if rest else ""))
        total += d
    if style == "check":
        last = p.digits[-1]
        lines.append(f"{total}-{last}={total - last}")
    steps = "\n".join(lines)
    return f"{THINK_OPEN}{steps}{THINK_CLOSE}{BOX_OPEN}{total}}}"


def fast_solution(p: Problem) -> str:
    """An empty thinking span and the answer at once (the format reward accepts an empty span)."""
    return f"{THINK_OPEN}{THINK_CLOSE}{BOX_OPEN}{p.answer}}}"


def extract_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` (no nesting in this task), or None."""
    found = _BOXED_RE.findall(text)
    return found[-1].strip() if found else None


def is_correct(response: str, answer: str) -> bool:
    """The demo's own grader (exact integer match of the last box); tests and probes use it."""
    got = extract_boxed(response)
    return got is not None and got == str(answer).strip()


def has_format(response: str) -> bool:
    """`<think>...</think>` then `\\boxed{...}` and nothing else, as the standard format reward wants."""
    return _FORMAT_RE.match(response.strip()) is not None


def is_slow(response: str) -> bool:
    """Slow = the thinking span holds any non-whitespace text (running sums)."""
    m = re.search(r"<think>(.*?)</think>", response, re.DOTALL)
    return m is not None and m.group(1).strip() != ""


def sample_problem(rng: random.Random, k: int) -> Problem:
    # Digits 1..9: a 0 makes a step trivial and the sums too easy to tell apart.
    return Problem(tuple(rng.randint(1, 9) for _ in range(k)))


def ks(k_min: int = K_MIN, k_max: int = K_MAX) -> list[int]:
    return list(range(k_min, k_max + 1))


def make_test_split(seed: int, n_per_k: int, k_min: int = K_MIN, k_max: int = K_MAX) -> list[Problem]:
    """Distinct test problems, `n_per_k` for every k (fewer if k has fewer distinct problems).

    Held out of training for k >= HOLDOUT_MIN_K (see there why not k=2). Shuffled,
    so the first N rows (`fastgrpo eval --limit N`) still cover every k.
    """
    rng = random.Random(f"fastgrpo-demo-test-{seed}")
    out: list[Problem] = []
    for k in ks(k_min, k_max):
        # a held-out k always leaves at least half of its problems for training
        wanted = min(n_per_k, 9**k if k < HOLDOUT_MIN_K else 9**k // 2)
        seen: set[tuple[int, ...]] = set()
        while len(seen) < wanted:
            p = sample_problem(rng, k)
            if p.digits not in seen:
                seen.add(p.digits)
                out.append(p)
    rng.shuffle(out)
    return out


def iter_train_problems(
    seed: int, exclude: Sequence[Problem] = (), k_min: int = K_MIN, k_max: int = K_MAX
) -> Iterator[Problem]:
    """An endless stream of training problems, k uniform, never one of `exclude` (the test split)
    with k >= HOLDOUT_MIN_K."""
    rng = random.Random(f"fastgrpo-demo-train-{seed}")
    banned = {p.digits for p in exclude if p.k >= HOLDOUT_MIN_K}
    choices = ks(k_min, k_max)
    while True:
        p = sample_problem(rng, rng.choice(choices))
        if p.digits not in banned:
            yield p


def make_train_split(
    seed: int, n: int, exclude: Sequence[Problem] = (), k_min: int = K_MIN, k_max: int = K_MAX
) -> list[Problem]:
    stream = iter_train_problems(seed, exclude, k_min, k_max)
    return [next(stream) for _ in range(n)]


def slow_probability(k: int, slow_prob: float | Sequence[float]) -> float:
    """`slow_prob` is one probability for every k, or a list indexed by k - K_MIN."""
    if isinstance(slow_prob, int | float):
        return float(slow_prob)
    return float(slow_prob[min(max(k - K_MIN, 0), len(slow_prob) - 1)])


def iter_sft_examples(
    seed: int,
    slow_prob: float | Sequence[float] = 0.5,
    exclude: Sequence[Problem] = (),
    k_min: int = K_MIN,
    k_max: int = K_MAX,
    slow_style: str = DEFAULT_SLOW_STYLE,
) -> Iterator[tuple[Problem, str, bool]]:
    """(problem, response, is_slow) for the warm-start: a seeded mix of slow and fast solutions."""
    rng = random.Random(f"fastgrpo-demo-sft-{seed}")
    for p in iter_train_problems(seed + 7919, exclude, k_min, k_max):
        slow = rng.random() < slow_probability(p.k, slow_prob)
        yield p, slow_solution(p, slow_style) if slow else fast_solution(p), slow


def to_rows(problems: Sequence[Problem]) -> list[dict[str, object]]:
    """The table columns every fastgrpo component reads: problem, answer, k."""
    return [{"problem": p.text, "answer": p.answer, "k": p.k} for p in problems]


def write_rows(rows: list[dict[str, object]], path: str | Path) -> Path:
    """Write jsonl or parquet by suffix, atomically (a reader never sees half a file)."""
    path = Path(path)
    if path.suffix != ".parquet":
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        return path
    import datasets

    with atomic_path(path) as tmp:
        datasets.Dataset.from_list(rows).to_parquet(str(tmp))
    return path


def write_splits(
    out_dir: str | Path, seed: int = 0, n_train: int = 4000, n_test_per_k: int = N_TEST_PER_K, fmt: str = "jsonl"
) -> dict[str, Path]:
    """Write train.<fmt> and test.<fmt> into `out_dir` (test held out for k >= HOLDOUT_MIN_K)."""
    out = Path(out_dir)
    test = make_test_split(seed, n_test_per_k)
    train = make_train_split(seed, n_train, exclude=test)
    return {
        "train": write_rows(to_rows(train), out / f"train.{fmt}"),
        "test": write_rows(to_rows(test), out / f"test.{fmt}"),
    }
