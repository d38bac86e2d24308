"""The README model card: HF front matter, training summary, FAST-GRPO settings and the eval table.

Why: a pushed model must say what it was trained from, with which FAST-GRPO
settings and data, and how it scores (accuracy and response length, the two
axes of the paper). Local paths are reduced to their last component so a card
pushed to a public hub reveals nothing about the training machine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fastgrpo import __version__
from fastgrpo.export.errors import ExportError
from fastgrpo.log import get_logger

log = get_logger("export")

PAPER = "https://arxiv.org/abs/2504.18458"
TAGS = ["fast-grpo", "grpo", "reasoning", "reinforcement-learning", "fastgrpo"]
_FILE_SUFFIXES = (".jsonl", ".json", ".parquet", ".arrow", ".csv", ".tsv", ".txt", ".yaml", ".yml")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# The settings shown first, in this order; any other algorithm key follows alphabetically.
_ALGO_ORDER = [
    "adv_estimator",
    "thinking_reward",
    "thinking_reward_weight",
    "easy_percentile",
    "difficulty_population",
    "use_kl_loss",
    "kl_penalty",
    "kl_type",
    "kl_coef",
    "kl_min_coef",
    "kl_max_coef",
    "online_filtering",
    "filter_key",
    "filter_low",
    "filter_high",
    "dynamic_filter_schedule",
    "clip_ratio_low",
    "clip_ratio_high",
    "clip_ratio_dual",
    "loss_agg_mode",
]


@dataclass
class EvalRow:
    benchmark: str
    accuracy: float | None
    mean_tokens: float | None
    samples: int | None


def hub_id(value: str) -> str | None:
    """`org/name` (dropping `:subset` and `@split` suffixes) when the value names a hub repo, else None."""
    core = re.split(r"[:@]", value.strip(), maxsplit=1)[0]
    if core.lower().endswith(_FILE_SUFFIXES):  # data/train.jsonl is a file, even when it is not here
        return None
    if (
        _HUB_ID.match(core)
        and not Path(value).expanduser().exists()
        and not value.startswith((".", "/", "~"))
    ):
        return core
    return None


def public_name(value: str) -> str:
    """A hub id as is; a local path as `name (local)`, without the directories above it."""
    if not value:
        return "unknown"
    if hub_id(value):
        return value
    return f"{Path(value.rstrip('/')).name or value} (local)"


def _num(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def read_eval_results(run_dir: Path | None, path: Path | None = None) -> list[EvalRow]:
    """Rows of an eval results.json: `path` (the file or its folder) if given, else `<run_dir>/eval/results.json`.

    [] when the default file is absent or unreadable (the card then has no eval table); an
    explicit `path` that does not exist is an `ExportError`. Read defensively: the shape
    `fastgrpo eval` writes is `{"benchmarks": {name: {"accuracy", "mean_tokens", "samples",
    "title", ...}}}`; a list of entries with a `benchmark`/`name` key is accepted too.
    """
    if path is not None:
        path = path.expanduser()
        path = path / "results.json" if path.is_dir() else path
        if not path.is_file():
            raise ExportError(
                f"--eval-results {path} does not exist: pass a results.json written by fastgrpo eval"
            )
    elif run_dir is not None:
        path = run_dir / "eval" / "results.json"
    if path is None or not path.is_file():
        return []
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        log.warning("ignoring %s: %s", path, e)
        return []
    benchmarks = data.get("benchmarks", data.get("results")) if isinstance(data, dict) else data
    items: list[tuple[str, Any]] = []
    if isinstance(benchmarks, dict):
        items = [(str(k), v) for k, v in benchmarks.items()]
    elif isinstance(benchmarks, list):
        items = [
            (str(e.get("benchmark") or e.get("name") or "?"), e) for e in benchmarks if isinstance(e, dict)
        ]
    rows = []
    for name, entry in items:
        if not isinstance(entry, dict):
            continue
        acc = _num(entry.get("accuracy", entry.get("acc")))
        tokens = _num(entry.get("mean_tokens", entry.get("mean_length", entry.get("avg_tokens"))))
        samples = _num(entry.get("samples", entry.get("n_samples", entry.get("num_samples"))))
        if acc is None and tokens is None:
            continue
        title = entry.get("title") if isinstance(entry.get("title"), str) else None
        rows.append(EvalRow(title or name, acc, tokens, int(samples) if samples is not None else None))
    if not rows:
        log.warning("%s has no benchmark entries with accuracy/mean_tokens; the card has no eval table", path)
    return rows


def _average(rows: list[EvalRow]) -> EvalRow:
    """Unweighted mean over benchmarks, as `fastgrpo eval` reports it."""
    accs = [r.accuracy for r in rows if r.accuracy is not None]
    toks = [r.mean_tokens for r in rows if r.mean_tokens is not None]
    samples = [r.samples for r in rows if r.samples is not None]
    return EvalRow(
        "**Average**",
        sum(accs) / len(accs) if accs else None,
        sum(toks) / len(toks) if toks else None,
        sum(samples) if samples else None,
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "; ".join(", ".join(f"{k}={_fmt(v)}" for k, v in item.items()) for item in value)
    if isinstance(value, list | dict):
        return json.dumps(value)
    return str(value)


def _algorithm_rows(algorithm: dict[str, Any]) -> list[tuple[str, str]]:
    keys = [k for k in _ALGO_ORDER if k in algorithm] + sorted(k for k in algorithm if k not in _ALGO_ORDER)
    return [(k, _fmt(algorithm[k])) for k in keys]


def render_model_card(
    run_config: dict[str, Any],
    step: int,
    dtype: str,
    eval_rows: list[EvalRow],
    repo_id: str | None = None,
    run_name: str | None = None,
    pipeline_tag: str = "text-generation",
) -> str:
    """README.md text with YAML front matter (library_name, base_model, tags, datasets)."""
    model_cfg = run_config.get("model") or {}
    data_cfg = run_config.get("data") or {}
    trainer_cfg = run_config.get("trainer") or {}
    rollout_cfg = run_config.get("rollout") or {}
    actor_cfg = run_config.get("actor") or {}
    algorithm = run_config.get("algorithm") or {}
    base = str(model_cfg.get("path") or "")
    train_files = str(data_cfg.get("train_files") or "")

    front: dict[str, Any] = {"library_name": "transformers"}
    if hub_id(base):
        front["base_model"] = hub_id(base)
    front["pipeline_tag"] = pipeline_tag
    front["tags"] = TAGS
    if hub_id(train_files):
        front["datasets"] = [hub_id(train_files)]
    title = repo_id.split("/")[-1] if repo_id else (run_name or "fastgrpo model")

    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {title}",
        "",
        f"Fine-tuned from **{public_name(base)}** with FAST-GRPO (fast-slow thinking reinforcement learning, "
        f"[arXiv:2504.18458]({PAPER})) using fastgrpo {__version__}: the model is "
        "rewarded for correct answers and for thinking briefly on easy questions and longer on hard ones.",
        "",
        "## Training",
        "",
        "| | |",
        "|---|---|",
        f"| Base model | {public_name(base)} |",
        f"| Training data | {public_name(train_files)} |",
        f"| Steps | {step}"
        + (f" of {trainer_cfg['max_steps']}" if trainer_cfg.get("max_steps") else "")
        + " |",
        f"| Weights dtype | {dtype} |",
    ]
    for label, value in (
        ("Prompts per step", data_cfg.get("rollout_batch_size")),
        ("Rollouts per prompt", rollout_cfg.get("n")),
        ("Learning rate", actor_cfg.get("lr")),
        ("Max response length", data_cfg.get("max_response_length")),
        ("Reward", (run_config.get("reward") or {}).get("reward_function")),
    ):
        if value is not None:
            lines.append(f"| {label} | {_fmt(value)} |")
    if algorithm:
        lines += ["", "## FAST-GRPO settings", "", "| Setting | Value |", "|---|---|"]
        lines += [f"| `{k}` | {v} |" for k, v in _algorithm_rows(algorithm)]
    if eval_rows:
        lines += [
            "",
            "## Evaluation",
            "",
            "Accuracy and mean response length (tokens) per benchmark, from `fastgrpo eval`.",
            "",
            "| Benchmark | Accuracy (%) | Mean tokens | Samples |",
            "|---|---:|---:|---:|",
        ]
        for r in [*eval_rows, _average(eval_rows)] if len(eval_rows) > 1 else eval_rows:
            acc = f"{r.accuracy:.1f}" if r.accuracy is not None else "-"
            tok = f"{r.mean_tokens:.0f}" if r.mean_tokens is not None else "-"
            lines.append(f"| {r.benchmark} | {acc} | {tok} | {r.samples if r.samples is not None else '-'} |")
    model_ref = repo_id or "path/to/this/folder"
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{model_ref}")',
        f'model = AutoModelForCausalLM.from_pretrained("{model_ref}", dtype="auto")',
        'messages = [{"role": "user", "content": "What is 7 * 6? Put the answer in \\\\boxed{}."}]',
        "text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)",
        'inputs = tokenizer(text, return_tensors="pt")',
        "out = model.generate(**inputs, max_new_tokens=512)",
        'print(tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True))',
        "```",
        "",
        "## Citation",
        "",
        f"FAST-GRPO: [{PAPER}]({PAPER})",
        "",
    ]
    return "\n".join(lines)
