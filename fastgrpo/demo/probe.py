"""Probe a demo model: per-k sampled accuracy, slow-vs-fast fraction and mean tokens.

Why: the warm-start is only useful if it leaves room for RL (imperfect,
k-dependent accuracy, both modes sampled), and the demo's story is told in
exactly these numbers. Sampling goes through the same `HFRolloutEngine` the
trainer uses, on the same prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM

from fastgrpo.demo import task
from fastgrpo.demo.warmstart import prompt_ids
from fastgrpo.rollout.base import PromptInput, SamplingParams
from fastgrpo.rollout.hf import HFRolloutEngine


@dataclass
class KStats:
    k: int
    samples: int
    accuracy: float
    format_rate: float
    slow_fraction: float
    mean_tokens: float
    """Generated tokens per response, EOS included."""
    acc_slow: float | None
    acc_fast: float | None
    tokens_slow: float | None
    tokens_fast: float | None


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def probe(
    model_dir: str | Path,
    problems: Sequence[task.Problem] | None = None,
    n: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 72,
    seed: int = 0,
    format_prompt: str | None = task.FORMAT_PROMPT,
    micro_batch_size: int = 256,
    data_seed: int = 0,
    n_per_k: int = 50,
) -> list[KStats]:
    """Sample `n` responses per problem (default: the demo's test split) and tally per k."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    problems = list(problems) if problems is not None else task.make_test_split(data_seed, n_per_k)
    engine = HFRolloutEngine(
        model,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_ids=[tokenizer.eos_token_id],
        micro_batch_size=micro_batch_size,
    )
    prompts = [PromptInput(prompt_ids=prompt_ids(tokenizer, p.text, format_prompt)) for p in problems]
    out = engine.generate(
        prompts, SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
    )
    rows: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for i, ids in enumerate(out.response_ids):
        p = problems[out.prompt_index(i)]
        text = tokenizer.decode(ids, skip_special_tokens=True)
        rows[p.k].append(
            {
                "correct": task.is_correct(text, p.answer),
                "format": task.has_format(text),
                "slow": task.is_slow(text),
                "tokens": len(ids),
            }
        )
    stats = []
    for k in sorted(rows):
        r = rows[k]
        slow = [x for x in r if x["slow"]]
        fast = [x for x in r if not x["slow"]]
        stats.append(
            KStats(
                k=k,
                samples=len(r),
                accuracy=sum(x["correct"] for x in r) / len(r),
                format_rate=sum(x["format"] for x in r) / len(r),
                slow_fraction=len(slow) / len(r),
                mean_tokens=sum(x["tokens"] for x in r) / len(r),
                acc_slow=_mean([x["correct"] for x in slow]),
                acc_fast=_mean([x["correct"] for x in fast]),
                tokens_slow=_mean([x["tokens"] for x in slow]),
                tokens_fast=_mean([x["tokens"] for x in fast]),
            )
        )
    return stats


def format_table(stats: Sequence[KStats]) -> str:
    """A plain Markdown table (it goes into report.md as well as the terminal)."""

    def f(x: float | None, nd: int = 2) -> str:
        return "-" if x is None else f"{x:.{nd}f}"

    lines = [
        "| k | samples | accuracy | format | slow frac | tokens | acc slow | acc fast | tok slow | tok fast |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in stats:
        lines.append(
            f"| {s.k} | {s.samples} | {f(s.accuracy)} | {f(s.format_rate)} | {f(s.slow_fraction)} | "
            f"{f(s.mean_tokens, 1)} | {f(s.acc_slow)} | {f(s.acc_fast)} | {f(s.tokens_slow, 1)} | "
            f"{f(s.tokens_fast, 1)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(
        description="Probe a demo model per k (sampled accuracy, slow fraction, tokens)."
    )
    ap.add_argument("model_dir")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=72)
    ap.add_argument("--per-k", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    print(
        format_table(
            probe(
                a.model_dir,
                n=a.n,
                temperature=a.temperature,
                max_new_tokens=a.max_new_tokens,
                n_per_k=a.per_k,
            )
        )
    )


if __name__ == "__main__":
    main()
