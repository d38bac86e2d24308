"""What `fastgrpo eval` does with its options: resolve benchmarks, sampling, model and engine, then `evaluate`.

Why outside `fastgrpo.cli`: the CLI only parses flags; the precedence rules (flag > --config's eval: section
> per-benchmark default), the order of the checks (data problems before loading weights) and the engine
set-up are eval's, and testable without Typer. Every user mistake raises one of `USER_ERRORS`, whose
message says what to do (the CLI prints it and exits 2).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fastgrpo.config import Config
from fastgrpo.config.loader import read_yaml
from fastgrpo.data.chat_template import configure_chat_template
from fastgrpo.data.io import DataSourceError
from fastgrpo.eval.data import load_items
from fastgrpo.eval.engine import (
    REFERENCE_MAX_PIXELS,
    REFERENCE_MIN_PIXELS,
    EngineUnavailableError,
    ModelLoadError,
    load_model,
    make_engine,
    resolve_engine_kind,
)
from fastgrpo.eval.parallel import DataParallel, assign_devices, from_env
from fastgrpo.eval.prompts import EvalSetupError, has_vision
from fastgrpo.eval.registry import BENCHMARKS, UnknownBenchmarkError, resolve_names
from fastgrpo.eval.runner import EvalParams, evaluate
from fastgrpo.eval.scoring import TRUNCATED_THINKING_MODES
from fastgrpo.eval.specs import build_specs, split_assignments
from fastgrpo.log import console


class EvalInterrupted(KeyboardInterrupt):
    """Ctrl-C during an evaluation; `out` holds the finished samples (a rerun resumes from them)."""

    def __init__(self, out: Path) -> None:
        super().__init__(str(out))
        self.out = out


USER_ERRORS = (DataSourceError, EvalSetupError, ModelLoadError, EngineUnavailableError, UnknownBenchmarkError)
"""What a bad flag, file, model or machine raises: a message for the user, not a traceback."""


@dataclass
class EvalRequest:
    """The `fastgrpo eval` options as given (None: not given; the --config value or the default applies)."""

    bench: list[str] | None = None
    model: str | None = None
    out: Path | None = None
    config: Path | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int | None = None
    seed: int | None = None
    limit: int | None = None
    scorer: str | None = None
    truncated_thinking: str | None = None
    think_in_prompt: bool | None = None
    engine: str | None = None
    data_dir: Path | None = None
    data: list[str] | None = None
    split: list[str] | None = None
    prompt_key: str | None = None
    answer_key: str | None = None
    group_key: str | None = None
    image_key: str | None = None
    options_key: str | None = None
    id_key: str | None = None
    prompt: str | None = None
    batch_size: int | None = None
    workers: int = 2
    timeout: float = 5.0
    name: str | None = None
    dtype: str = "auto"
    min_pixels: int | None = None
    max_pixels: int | None = None
    trust_remote_code: bool = False
    no_progress: bool = False


def print_benchmark_table() -> None:
    """`fastgrpo eval --list`: every registered benchmark with its source and sampling defaults."""
    table = Table(title="Registered benchmarks (fastgrpo eval --bench NAME)")
    for col in ("name", "benchmark", "source (split)", "rows", "type", "modality", "n", "T / top_p / top_k",
                "max new"):
        table.add_column(col, justify="right" if col in ("rows", "n", "max new") else "left")
    for spec in BENCHMARKS.values():
        s = spec.sampling
        table.add_row(spec.name, spec.title, spec.source_label, str(spec.expected_rows or "-"),
                      spec.question_type.replace("_", " "), spec.modality, str(s.n),
                      f"{s.temperature} / {s.top_p} / {s.top_k}", str(s.max_new_tokens))
    out = Console(width=None if sys.stdout.isatty() else 170)
    out.print(table)
    out.print("Groups: all, vision, text.  custom: --bench custom --data PATH --prompt-key ... --answer-key ...")


def _explicit_eval_keys(config: Path) -> list[str]:
    """The `eval:` keys the YAML file itself sets (those override the per-benchmark defaults)."""
    section = read_yaml(config).get("eval") or {}
    return list(section) if isinstance(section, dict) else []


def _quiet_library_progress() -> None:
    """Our own progress bar is the one to watch; hide the libraries' load/convert bars."""
    try:
        import datasets
        from transformers.utils import logging as hf_logging

        datasets.disable_progress_bars()
        hf_logging.disable_progress_bar()
    except Exception:
        pass


def default_out(model: str) -> Path:
    p = Path(model)
    label = p.name if p.exists() else model.replace("/", "__")
    return Path("runs") / "eval" / (label or "model")


@dataclass
class EvalPlan:
    """The resolved request: what to evaluate, how to sample and grade, where to write."""

    specs: list[Any]
    model_path: str
    scorer: str
    truncated_thinking: str | None
    engine: str
    params: EvalParams
    limit: int | None
    data_dir: str | None
    batch_size: int
    out: Path


def plan_request(r: EvalRequest, cfg: Config | None) -> EvalPlan:
    """Flags first, then --config's values, then the defaults; every bad value raises with its fix."""
    requested = r.bench or (cfg.eval.benchmarks if cfg else [])
    if not requested:
        raise EvalSetupError("nothing to evaluate: give --bench NAMES (see `fastgrpo eval --list`) and --model PATH")
    names = resolve_names(requested)
    model_path = r.model or (cfg.model.path if cfg and cfg.model.path else None)
    if not model_path:
        raise EvalSetupError("--model PATH is required (a local Hugging Face model folder or a hub id)")
    scorer = r.scorer or (cfg.eval.scorer if cfg else "mathverify")
    if scorer not in ("mathverify", "reference"):
        raise EvalSetupError(f"--scorer must be mathverify or reference, got {scorer!r}")
    truncated = r.truncated_thinking or (cfg.eval.truncated_thinking if cfg else None)
    if truncated is not None and truncated not in TRUNCATED_THINKING_MODES:
        raise EvalSetupError(f"--truncated-thinking must be wrong or search, got {truncated!r}")
    engine = r.engine or (cfg.rollout.engine if cfg else "auto")
    try:
        kind = resolve_engine_kind(engine)
    except EngineUnavailableError:
        raise EvalSetupError(f"--engine must be auto, hf or vllm, got {engine!r}") from None
    keys = {"prompt_key": r.prompt_key, "answer_key": r.answer_key, "group_key": r.group_key,
            "image_key": r.image_key, "options_key": r.options_key, "id_key": r.id_key, "prompt": r.prompt}
    specs = build_specs(names, split_assignments(r.data, names, "--data"),
                        split_assignments(r.split, names, "--split"), keys)
    explicit = _explicit_eval_keys(r.config) if r.config is not None else []
    params = EvalParams.from_eval_config(cfg.eval, explicit) if cfg else EvalParams()
    for key in ("n", "temperature", "top_p", "top_k", "max_new_tokens"):
        if getattr(r, key) is not None:
            setattr(params, key, getattr(r, key))
    params.seed = r.seed if r.seed is not None else (cfg.trainer.seed if cfg else 1)
    return EvalPlan(
        specs=specs, model_path=model_path, scorer=scorer, truncated_thinking=truncated, engine=kind, params=params,
        limit=r.limit if r.limit is not None else (cfg.eval.limit if cfg else None),
        data_dir=str(r.data_dir) if r.data_dir else (cfg.eval.data_dir if cfg else None),
        batch_size=r.batch_size or (cfg.eval.batch_size if cfg else 32), out=r.out or default_out(model_path),
    )


def _vllm_kwargs(cfg: Config | None) -> dict[str, Any]:
    """The config's rollout.* vLLM settings (tensor parallel, memory); vLLM's defaults without --config."""
    if cfg is None:
        return {}
    kwargs: dict[str, Any] = {"tensor_parallel_size": cfg.rollout.tensor_parallel_size,
                              "gpu_memory_utilization": cfg.rollout.gpu_memory_utilization}
    if cfg.rollout.kv_cache_memory_mb:
        kwargs["kv_cache_memory_bytes"] = cfg.rollout.kv_cache_memory_mb * 2**20
    return kwargs


def run_eval(r: EvalRequest, cfg: Config | None) -> tuple[dict[str, Any], Path, DataParallel | None]:
    """Evaluate as `fastgrpo eval` does; returns (results, output folder, this data-parallel rank or None).

    `cfg`: the loaded --config (its eval:, model, rollout and data sections supply the defaults).
    Raises one of `USER_ERRORS` for a problem the user can fix; data problems surface before the weights load.
    """
    p = plan_request(r, cfg)
    try:
        return _run(p, r, cfg)
    except KeyboardInterrupt:
        raise EvalInterrupted(p.out) from None


def _run(p: EvalPlan, r: EvalRequest, cfg: Config | None) -> tuple[dict[str, Any], Path, DataParallel | None]:
    _quiet_library_progress()
    vllm = p.engine == "vllm"
    dp = from_env()  # under torchrun (or --nproc): this process is one data-parallel rank
    if dp is not None:
        assign_devices(dp, per_rank=cfg.rollout.tensor_parallel_size if vllm and cfg is not None else 1)
    load = {
        "dtype": r.dtype, "trust_remote_code": r.trust_remote_code or (cfg.model.trust_remote_code if cfg else False),
        "min_pixels": r.min_pixels or (cfg.data.min_pixels if cfg else REFERENCE_MIN_PIXELS),
        "max_pixels": r.max_pixels or (cfg.data.max_pixels if cfg else REFERENCE_MAX_PIXELS),
    }
    head = load_model(p.model_path, load_weights=False, **load)
    configure_chat_template(cfg.data if cfg else None, head.tokenizer, head.processor)  # a bad one fails now
    vision = [s.name for s in p.specs if s.modality == "vision"]
    if vision and not has_vision(head.processor):
        raise EvalSetupError(
            f"{', '.join(vision)}: image benchmark{'s' if len(vision) > 1 else ''}, but {p.model_path} has no "
            "vision processor (a text-only model); evaluate a vision-language model, or choose text "
            "benchmarks (gsm8k, math500, aime2024, custom)"
        )
    questions = {s.name: load_items(s, p.data_dir, p.limit) for s in p.specs}  # data problems before weights
    vllm_kwargs = _vllm_kwargs(cfg) if vllm else {}
    # vLLM receives the weights from the loaded model, which can then stay on the CPU; they compute on the GPU,
    # so model.dtype=auto is the GPU's bfloat16 (vLLM computes in the loaded weights' dtype).
    loaded = load_model(p.model_path, device="cpu" if vllm else None, compute_device="cuda" if vllm else None,
                        **load)
    configure_chat_template(cfg.data if cfg else None, loaded.tokenizer, loaded.processor)
    if vllm:
        vllm_kwargs.setdefault("dtype", str(loaded.model.dtype).replace("torch.", ""))
    micro = cfg.rollout.micro_batch_size if cfg else 64  # sequences per HF generate call
    rollout = make_engine(p.engine, loaded, micro_batch_size=micro, **vllm_kwargs)
    if dp is None or dp.rank == 0:
        console.print(
            f"[bold]eval[/] {p.model_path} on {', '.join(s.name for s in p.specs)} -> {p.out} "
            f"(engine {p.engine}, scorer {p.scorer}{f', {dp.world} processes' if dp else ''})",
            highlight=False,
        )
    results = evaluate(
        loaded.model, loaded.tokenizer, p.specs, p.params, p.out, engine=rollout, scorer=p.scorer, limit=p.limit,
        data_dir=p.data_dir, processor=loaded.processor, batch_size=p.batch_size,
        model_name=r.name or p.model_path, engine_name=p.engine,
        template=cfg.reward.template if cfg else "think_boxed", num_workers=r.workers, timeout_s=r.timeout,
        progress=not r.no_progress, items=questions, truncated_thinking=p.truncated_thinking,
        # --think-in-prompt not given (None): found by rendering the model's chat template once
        think_in_prompt=r.think_in_prompt, data_parallel=dp,
    )
    return results, p.out, dp
