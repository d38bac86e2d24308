"""`evaluate()`: generate, grade and report a model on benchmarks; resumable through generations.jsonl.

The one code path behind `fastgrpo eval` and the trainer's validation
(`trainer.val_freq`): the CLI loads a model and engine from a path, the trainer
passes its live model and HF engine.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fastgrpo import __version__
from fastgrpo.data.chat_template import detect_think_in_prompt
from fastgrpo.eval.data import EvalItem, load_items
from fastgrpo.eval.parallel import DataParallel
from fastgrpo.eval.prompts import (
    EvalSetupError,
    VisionPromptBuilder,
    build_prompt,
    default_vision_builder,
)
from fastgrpo.eval.registry import POOLS, BenchmarkSpec, get_benchmark
from fastgrpo.eval.report import (
    LENGTH_DEFINITION,
    RESULTS_JSON,
    average_row,
    summarize_records,
    write_reports,
)
from fastgrpo.eval.scoring import EvalScorer
from fastgrpo.eval.store import GENERATIONS, GenerationStore, merge_shards, shard_path
from fastgrpo.log import console, get_logger, is_rank0
from fastgrpo.models.loader import eos_token_ids
from fastgrpo.rollout.base import RolloutEngine, SamplingParams
from fastgrpo.rollout.hf import HFRolloutEngine

log = get_logger("eval")


@dataclass
class EvalParams:
    """Generation settings; a field left None takes the benchmark's default (the reference evaluation's)."""

    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None
    seed: int | None = 1

    @classmethod
    def from_eval_config(
        cls, cfg: Any, explicit: Sequence[str] | None = None, seed: int | None = 1
    ) -> EvalParams:
        """From an `EvalConfig`: every sampling field (trainer), or only the `explicit` keys a YAML file set (CLI)."""
        keys = ("n", "temperature", "top_p", "top_k", "max_new_tokens")
        use = set(keys) if explicit is None else set(explicit) & set(keys)
        return cls(**{k: getattr(cfg, k) for k in keys if k in use}, seed=seed)

    @classmethod
    def from_sampling(cls, sp: SamplingParams) -> EvalParams:
        return cls(
            n=sp.n,
            temperature=sp.temperature,
            top_p=sp.top_p,
            top_k=sp.top_k,
            max_new_tokens=sp.max_new_tokens,
            seed=sp.seed,
        )

    def resolve(self, spec: BenchmarkSpec) -> SamplingParams:
        d = spec.sampling
        pick = lambda mine, default: default if mine is None else mine  # noqa: E731
        return SamplingParams(
            n=pick(self.n, d.n),
            temperature=pick(self.temperature, d.temperature),
            top_p=pick(self.top_p, d.top_p),
            top_k=pick(self.top_k, d.top_k),
            max_new_tokens=pick(self.max_new_tokens, d.max_new_tokens),
            seed=self.seed,
        )


def as_spec(benchmark: str | BenchmarkSpec) -> BenchmarkSpec:
    if isinstance(benchmark, BenchmarkSpec):
        return benchmark
    if benchmark.strip().lower() == "custom":
        raise ValueError(
            "a custom benchmark needs a data file: use custom_benchmark(path, ...) (CLI: --data PATH)"
        )
    return get_benchmark(benchmark)


def prompt_uid(bench: str, prompt_id: str) -> int:
    """Stable engine uid of a question: the engines key sampling noise on (seed, uid, sample)."""
    return zlib.crc32(f"{bench}|{prompt_id}".encode())


def _call_seed(seed: int | None, first_idx: int) -> int | None:
    """The run seed for a fresh question's samples 0..n-1 (independent of batching); a resumed call that
    starts at sample `first_idx` > 0 gets a derived seed, so it does not repeat samples 0.. of that question."""
    if seed is None or first_idx == 0:
        return seed
    return (seed * 1_000_003 + first_idx) % (2**31 - 1)


def _plan(
    items: list[EvalItem], n: int, store: GenerationStore, batch_size: int
) -> list[list[tuple[EvalItem, list[int]]]]:
    """Batches of (item, missing sample indices); items with the same missing set share a batch (one n per call)."""
    by_missing: dict[tuple[int, ...], list[EvalItem]] = {}
    for it in items:
        missing = tuple(i for i in range(n) if (it.benchmark, it.prompt_id, i) not in store)
        if missing:
            by_missing.setdefault(missing, []).append(it)
    batches = []
    for missing, group in by_missing.items():
        for s in range(0, len(group), max(1, batch_size)):
            batches.append([(it, list(missing)) for it in group[s : s + batch_size]])
    return batches


def _group_sort_key(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def summarize_benchmark(
    spec: BenchmarkSpec, items: list[EvalItem], n: int, store: GenerationStore
) -> dict[str, Any]:
    """avg@n over `items` from the stored records (sample idx < n), plus per-group stats when grouped."""

    per_question = [_records(store, spec.name, it, n) for it in items]
    out = summarize_records(per_question)
    if spec.fields.group:
        groups: dict[str, list[list[dict[str, Any]]]] = {}
        for it, rs in zip(items, per_question, strict=True):
            groups.setdefault("None" if it.group is None else it.group, []).append(rs)
        out["group_key"] = spec.fields.group
        out["groups"] = {g: summarize_records(groups[g]) for g in sorted(groups, key=_group_sort_key)}
    return out


def _warn_if_settings_changed(out_dir: Path | None, name: str, sampling: dict[str, Any]) -> None:
    if out_dir is None or not (out_dir / RESULTS_JSON).exists():
        return
    try:
        old = json.loads((out_dir / RESULTS_JSON).read_text())["benchmarks"][name]["sampling"]
    except (ValueError, KeyError, TypeError):
        return
    diff = [k for k in ("temperature", "top_p", "top_k", "max_new_tokens") if old.get(k) != sampling.get(k)]
    if diff:
        log.warning(
            "%s: %s reuses samples generated with different %s; use a new --out to start fresh",
            name,
            out_dir / GENERATIONS,
            ", ".join(diff),
        )


def _progress(enabled: bool) -> Any:
    if not enabled:
        return nullcontext(None)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def evaluate(
    model: Any,
    tokenizer: Any,
    benchmarks: Sequence[str | BenchmarkSpec],
    params: EvalParams | SamplingParams | None = None,
    out_dir: str | Path | None = None,
    *,
    engine: RolloutEngine | None = None,
    scorer: str = "mathverify",
    limit: int | None = None,
    data_dir: str | Path | None = None,
    processor: Any = None,
    vision_builder: VisionPromptBuilder | None = None,
    batch_size: int = 32,
    model_name: str | None = None,
    engine_name: str | None = None,
    template: str = "think_boxed",
    num_workers: int = 2,
    timeout_s: float = 5.0,
    reward_scorer: Any = None,
    progress: bool = True,
    plot: bool = True,
    items: Mapping[str, list[EvalItem]] | None = None,
    truncated_thinking: str | None = None,
    think_in_prompt: bool | None = None,
    data_parallel: DataParallel | None = None,
    split_across_ranks: bool = False,
) -> dict[str, Any]:
    """Evaluate `model` on `benchmarks` and return the results dict (also written to `out_dir` when given).

    `params`: `EvalParams` (None fields -> each benchmark's defaults) or a full `SamplingParams`.
    `engine`: any `RolloutEngine`; default HF generate on `model`. `out_dir`: generations.jsonl
    (appended per batch; finished samples are never regenerated), results.json, results.md,
    accuracy_vs_length.png. `out_dir=None` keeps everything in memory (no resume). Under
    torch.distributed (FSDP) call it on every rank: all ranks step the HF engine together, rank 0 writes.
    `items`: questions already loaded per benchmark name (the CLI loads data before the weights).
    `truncated_thinking` (`wrong` | `search`, default per scorer): see `fastgrpo.eval.scoring`.
    `think_in_prompt`: whether the chat template opens `<think>` (None: found by rendering it once), for
    the format metric and the truncated-thinking rule; recorded in results.json. `data_parallel`: this
    process is one of N, each with its own engine, splitting the questions (`fastgrpo.eval.parallel`);
    needs `out_dir`.
    `split_across_ranks`: under torch.distributed, rank r generates questions r, r+W, ... (every rank still
    calls the engine equally often, so FSDP / tensor-parallel collectives stay matched) and the records are
    gathered after each batch, so every rank ends with the whole result and rank 0 writes it.
    """
    specs = [as_spec(b) for b in benchmarks]
    eval_params = (
        EvalParams.from_sampling(params) if isinstance(params, SamplingParams) else (params or EvalParams())
    )
    builder = vision_builder or default_vision_builder(processor)
    for spec in specs:
        if spec.modality == "vision" and builder is None:
            raise EvalSetupError(
                f"benchmark {spec.name!r} is a vision benchmark, but the model has no vision processor "
                "(no image processor found with its tokenizer); evaluate a vision-language model, or pick "
                "text benchmarks (gsm8k, math500, aime2024)"
            )
    if think_in_prompt is None:
        think_in_prompt = detect_think_in_prompt(tokenizer, chat_template=getattr(processor, "chat_template", None))
    eos = set(eos_token_ids(model, tokenizer))
    if engine is None:
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (min(eos) if eos else 0)
        engine = HFRolloutEngine(model, pad_token_id=pad, eos_token_ids=sorted(eos))
    out = Path(out_dir) if out_dir is not None else None
    dp = data_parallel if data_parallel is not None and data_parallel.world > 1 else None
    if dp is not None and out is None:
        raise ValueError(
            "data-parallel evaluation needs an out_dir (the ranks meet in its generations files)"
        )
    # under torch.distributed (FSDP) every rank generates in lockstep and rank 0 writes; data-parallel ranks
    # each write their own shard file, rank 0 merges and reports
    writer = dp.rank == 0 if dp is not None else is_rank0()
    if out is not None and writer:
        merge_shards(out / GENERATIONS)  # shards a killed data-parallel run left behind
    if dp is not None:
        dp.barrier("merged")
    store = GenerationStore(
        out / GENERATIONS if out is not None else None,
        read_only=dp is not None or not writer,
        append_path=shard_path(out / GENERATIONS, dp.rank) if dp is not None and out is not None else None,
    )
    name = model_name or str(getattr(getattr(model, "config", None), "_name_or_path", "") or "model")
    grader_ctx = EvalScorer(
        scorer,
        template=template,
        num_workers=num_workers,
        timeout_s=timeout_s,
        reward_scorer=reward_scorer,
        truncated_thinking=truncated_thinking,
        think_in_prompt=think_in_prompt,
    )
    results: dict[str, Any] = {
        "model": name,
        "scorer": scorer,
        "truncated_thinking": grader_ctx.truncated_thinking,
        "think_in_prompt": think_in_prompt,
        "template": template,
        "engine": engine_name or type(engine).__name__,
        "length_definition": LENGTH_DEFINITION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fastgrpo_version": __version__,
        "limit": limit,
        "processes": dp.world if dp is not None else 1,
        "benchmarks": {},
    }
    plan: list[tuple[BenchmarkSpec, SamplingParams, list[EvalItem]]] = []
    with grader_ctx as grader, _progress(progress and writer) as bar:
        for spec in specs:
            sp = eval_params.resolve(spec)
            _warn_if_settings_changed(out if writer else None, spec.name, dataclasses.asdict(sp))
            questions = (
                items[spec.name] if items and spec.name in items else load_items(spec, data_dir, limit)
            )
            plan.append((spec, sp, questions))
            mine = dp.shard(questions) if dp is not None else questions
            _rescore(spec, mine, sp.n, store, grader)
            rank, world = _rank_world() if split_across_ranks else (0, 1)
            batches = _plan(mine[rank::world], sp.n, store, batch_size)
            total = sum(len(m) for b in batches for _, m in b)
            if world > 1:
                total = _reduce_over_ranks(total, "SUM")
            done_before = len(mine) * sp.n - total
            if done_before:
                log.info(
                    "%s: %d samples already in %s, %d to generate", spec.name, done_before, store.path, total
                )
            task = bar.add_task(spec.title, total=total) if bar is not None else None
            for b in range(_reduce_over_ranks(len(batches), "MAX") if world > 1 else len(batches)):
                if b < len(batches):
                    records = _run_batch(spec, batches[b], sp, engine, tokenizer, builder, grader, eos)
                else:  # this rank is done: an empty call keeps the engine's collectives in step
                    engine.generate([], dataclasses.replace(sp, n=1))
                    records = []
                if world > 1:
                    records = [r for part in _all_gather(records) for r in part]
                store.append(records)
                if bar is not None:
                    bar.advance(task, len(records))
    if dp is not None:
        dp.barrier("generated")
        if writer:
            merge_shards(out / GENERATIONS)  # type: ignore[operator]
            store = GenerationStore(out / GENERATIONS, read_only=True)  # type: ignore[operator]
    if dp is None or writer:  # lockstep ranks hold every record in memory: they summarize too
        _summarize_all(results, plan, store)
    if writer and out is not None:
        write_reports(results, out, plot=plot)
    if dp is not None:
        results = dp.broadcast(results if writer else None, "results")
    return results


def _summarize_all(
    results: dict[str, Any],
    plan: list[tuple[BenchmarkSpec, SamplingParams, list[EvalItem]]],
    store: GenerationStore,
) -> None:
    """Per-benchmark summaries, the average row and the pooled accuracies (e.g. PAPO's vision-dependent)."""
    per_question: dict[str, list[list[dict[str, Any]]]] = {}
    for spec, sp, questions in plan:
        summary = summarize_benchmark(spec, questions, sp.n, store)
        per_question[spec.name] = [_records(store, spec.name, it, sp.n) for it in questions]
        results["benchmarks"][spec.name] = {
            "title": spec.title,
            "source": spec.source_label,
            "modality": spec.modality,
            "question_type": spec.question_type,
            "sampling": dataclasses.asdict(sp),
            **summary,
        }
    results["average"] = average_row(results["benchmarks"])
    pooled = {}
    for pool, members in POOLS.items():
        if all(m in per_question for m in members):
            pooled[pool] = {
                "benchmarks": list(members),
                **summarize_records([q for m in members for q in per_question[m]]),
            }
    if pooled:
        results["pooled"] = pooled


def _records(store: GenerationStore, bench: str, it: EvalItem, n: int) -> list[dict[str, Any]]:
    out = [store.get((bench, it.prompt_id, i)) for i in range(n)]
    return [r for r in out if r is not None]


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _reduce_over_ranks(n: int, op: str) -> int:
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    t = torch.tensor([n], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    return int(t.item())


def _all_gather(obj: Any) -> list[Any]:
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def _run_batch(
    spec: BenchmarkSpec,
    batch: list[tuple[EvalItem, list[int]]],
    sp: SamplingParams,
    engine: RolloutEngine,
    tokenizer: Any,
    builder: VisionPromptBuilder | None,
    grader: EvalScorer,
    eos: set[int],
) -> list[dict[str, Any]]:
    missing = batch[0][1]
    k = len(missing)
    prompts = [
        dataclasses.replace(
            build_prompt(spec, it, tokenizer, builder), uid=prompt_uid(spec.name, it.prompt_id)
        )
        for it, _ in batch
    ]
    params = dataclasses.replace(sp, n=k, seed=_call_seed(sp.seed, missing[0]))
    output = engine.generate(prompts, params)
    if len(output.response_ids) != len(batch) * k:
        raise RuntimeError(
            f"engine returned {len(output.response_ids)} responses for {len(batch)} prompts x {k}"
        )
    texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in output.response_ids]
    owners = [batch[i // k][0] for i in range(len(texts))]
    scores = grader.score(texts, owners)
    records = []
    for i, (ids, text, sc) in enumerate(zip(output.response_ids, texts, scores, strict=True)):
        item = owners[i]
        records.append(
            {
                "benchmark": spec.name,
                "prompt_id": item.prompt_id,
                "sample_idx": missing[i % k],
                "response": text,
                "extracted": sc.extracted,
                "answer": item.answer,
                "correct": sc.correct,
                "tokens": len(ids),
                "finish": "stop" if ids and ids[-1] in eos else "length",
                "format": sc.format,
                "timeout": sc.timeout,
                "truncated_thinking": sc.truncated_thinking,
                "scorer": grader.mode,
                "grader": grader.key,
                "group": item.group,
            }
        )
    return records


def _rescore(
    spec: BenchmarkSpec, items: list[EvalItem], n: int, store: GenerationStore, grader: EvalScorer
) -> None:
    """Re-grade stored samples made under another scorer mode (no regeneration needed)."""
    stale: list[tuple[dict[str, Any], EvalItem]] = []
    for it in items:
        for i in range(n):
            rec = store.get((spec.name, it.prompt_id, i))
            if rec is not None and rec.get("grader") != grader.key:
                stale.append((rec, it))
    if not stale:
        return
    scores = grader.score([r["response"] for r, _ in stale], [it for _, it in stale])
    updated = []
    for (rec, it), sc in zip(stale, scores, strict=True):
        updated.append(
            {
                **rec,
                "extracted": sc.extracted,
                "correct": sc.correct,
                "format": sc.format,
                "timeout": sc.timeout,
                "truncated_thinking": sc.truncated_thinking,
                "scorer": grader.mode,
                "grader": grader.key,
                "answer": it.answer,
            }
        )
    store.replace(updated)
    log.info("%s: re-scored %d stored samples with the %s scorer", spec.name, len(updated), grader.mode)


def flat_metrics(results: dict[str, Any], prefix: str = "val") -> dict[str, float]:
    """Results -> flat floats for a step log: `val/<bench>/accuracy`, `.../mean_tokens`, `val/average/...`,
    and `val/<bench>/<group_key>=<value>/accuracy` for grouped benchmarks."""
    out: dict[str, float] = {}
    for name, b in results["benchmarks"].items():
        for k in ("accuracy", "mean_tokens"):
            if b.get(k) is not None:
                out[f"{prefix}/{name}/{k}"] = float(b[k])
        for g, s in (b.get("groups") or {}).items():
            for k in ("accuracy", "mean_tokens"):
                if s.get(k) is not None:
                    out[f"{prefix}/{name}/{b.get('group_key', 'group')}={g}/{k}"] = float(s[k])
    for k in ("accuracy", "mean_tokens"):
        v = results.get("average", {}).get(k)
        if v is not None:
            out[f"{prefix}/average/{k}"] = float(v)
    return out
