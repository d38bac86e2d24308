"""`fastgrpo eval`: accuracy and mean generated tokens on the registered benchmarks (or a local file).

Thin wiring over `fastgrpo.eval.evaluate`; every user mistake (unknown benchmark,
missing data, unreadable model, images without a vision processor, vLLM absent)
exits 2 with a message saying what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fastgrpo.cli.common import fail, load_or_exit
from fastgrpo.log import console

eval_app = typer.Typer(
    help="Evaluate a model: accuracy and mean generated tokens.\n\n"
    "  fastgrpo eval --bench gsm8k,math500 --model runs/demo/export --out runs/eval/demo\n\n"
    "  fastgrpo eval --bench custom --data heldout.jsonl --prompt-key problem --answer-key answer --group-key k "
    "--model M\n\n"
    "  fastgrpo eval compare runs/eval/a/results.json runs/eval/b/results.json --out runs/eval/cmp",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

def _list_benchmarks() -> None:
    from fastgrpo.eval.registry import BENCHMARKS

    table = Table(title="Registered benchmarks (fastgrpo eval --bench NAME)")
    for col in (
        "name",
        "benchmark",
        "source (split)",
        "rows",
        "type",
        "modality",
        "n",
        "T / top_p / top_k",
        "max new",
    ):
        table.add_column(col, justify="right" if col in ("rows", "n", "max new") else "left")
    for spec in BENCHMARKS.values():
        s = spec.sampling
        table.add_row(
            spec.name,
            spec.title,
            spec.source_label,
            str(spec.expected_rows or "-"),
            spec.question_type.replace("_", " "),
            spec.modality,
            str(s.n),
            f"{s.temperature} / {s.top_p} / {s.top_k}",
            str(s.max_new_tokens),
        )
    import sys

    out = Console(width=None if sys.stdout.isatty() else 170)
    out.print(table)
    out.print(
        "Groups: all, vision, text.  custom: --bench custom --data PATH --prompt-key ... --answer-key ..."
    )


def _explicit_eval_keys(config: Path) -> list[str]:
    """The `eval:` keys the YAML file itself sets (those override the per-benchmark defaults)."""
    from fastgrpo.config.loader import read_yaml

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


def _default_out(model: str) -> Path:
    p = Path(model)
    label = p.name if p.exists() else model.replace("/", "__")
    return Path("runs") / "eval" / (label or "model")


@eval_app.callback(invoke_without_command=True)
def eval_command(
    ctx: typer.Context,
    bench: list[str] = typer.Option(
        None,
        "--bench",
        "-b",
        help="Benchmarks: names (comma list or repeated), all, vision, text, or custom. See --list.",
    ),
    model: str = typer.Option(None, "--model", "-m", help="Local HF model folder or hub id."),
    out: Path = typer.Option(
        None, "--out", "-o", help="Output folder (default runs/eval/<model>). Rerun to resume."
    ),
    list_: bool = typer.Option(False, "--list", help="List the registered benchmarks and exit."),
    config: Path = typer.Option(
        None, "--config", "-c", help="YAML config: its eval: section (and model.path)."
    ),
    n: int = typer.Option(None, "--n", "-n", min=1, help="Samples per question (avg@n). Default: per benchmark."),
    temperature: float = typer.Option(None, "--temperature", min=0.0),
    top_p: float = typer.Option(None, "--top-p"),
    top_k: int = typer.Option(None, "--top-k", help="-1 disables top-k."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", min=1),
    seed: int = typer.Option(
        None, "--seed", help="Sampling seed (default trainer.seed of --config, else 1)."
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="Only the first N questions of each benchmark."),
    scorer: str = typer.Option(
        None, "--scorer", help="mathverify (default) or reference (PAPO-Eval's own rule, via mathruler)."
    ),
    truncated_thinking: str = typer.Option(
        None,
        "--truncated-thinking",
        help="A response that opened <think> and never closed it: wrong (default for mathverify) or "
        "search (grade it anyway; default for reference, as PAPO does).",
    ),
    think_in_prompt: bool = typer.Option(
        None,
        "--think-in-prompt/--no-think-in-prompt",
        help="The chat template opens <think> in the prompt (R1-distill style), so every response thinks. "
        "Default: found by rendering the model's chat template once.",
    ),
    nproc: int = typer.Option(
        1, "--nproc", min=1, help="Data-parallel processes, each with its own engine (or launch with torchrun)."
    ),
    engine: str = typer.Option(
        None, "--engine", help="auto (vllm if installed with CUDA, else hf), hf or vllm."
    ),
    data_dir: Path = typer.Option(
        None, "--data-dir", help="Folder with local benchmark copies (<name>.parquet, ...)."
    ),
    data: list[str] = typer.Option(
        None,
        "--data",
        help="PATH for the (single or custom) benchmark, or NAME=PATH "
        "/ NAME=org/dataset[:subset][@split]; repeatable.",
    ),
    split: list[str] = typer.Option(None, "--split", help="Split override: SPLIT or NAME=SPLIT."),
    prompt_key: str = typer.Option(None, "--prompt-key", help="custom: question column (default problem)."),
    answer_key: str = typer.Option(None, "--answer-key", help="custom: answer column (default answer)."),
    group_key: str = typer.Option(
        None,
        "--group-key",
        help="Column to break results down by (e.g. k): the "
        "custom benchmark's if there is one, else every one's; or NAME=KEY.",
    ),
    image_key: str = typer.Option(
        None, "--image-key", help="custom: image column (makes it a vision benchmark)."
    ),
    options_key: str = typer.Option(None, "--options-key", help="custom: column with the list of options."),
    id_key: str = typer.Option(None, "--id-key", help="custom: column with a unique question id."),
    prompt: str = typer.Option(
        None, "--prompt", help="custom: user template with {question} (or a .jinja file)."
    ),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help="Questions per generation batch (and flush)."
    ),
    workers: int = typer.Option(2, "--workers", min=0, help="Grading processes (0 = in-process)."),
    timeout: float = typer.Option(5.0, "--timeout", help="Per-response grading timeout in seconds."),
    name: str = typer.Option(None, "--name", help="Model label in results and plots (default: --model)."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, float32, bfloat16 or float16."),
    min_pixels: int = typer.Option(
        None,
        "--min-pixels",
        help="Vision: smallest image size in pixels "
        "(default data.min_pixels of --config, else the reference 1024).",
    ),
    max_pixels: int = typer.Option(
        None,
        "--max-pixels",
        help="Vision: largest image size in pixels "
        "(default data.max_pixels of --config, else the reference 589824).",
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Run the model's own code (default model.trust_remote_code of --config)."
    ),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
) -> None:
    """Evaluate a model; writes generations.jsonl, results.json, results.md and accuracy_vs_length.png to --out."""
    if ctx.invoked_subcommand is not None:
        return
    if list_:
        _list_benchmarks()
        raise typer.Exit(0)
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        from fastgrpo.eval.parallel import command_line, launch

        raise typer.Exit(launch(command_line(ctx, drop=("nproc",)), nproc))

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
    from fastgrpo.eval.parallel import assign_devices, from_env
    from fastgrpo.eval.prompts import EvalSetupError, has_vision
    from fastgrpo.eval.registry import UnknownBenchmarkError, resolve_names
    from fastgrpo.eval.report import print_results
    from fastgrpo.eval.runner import EvalParams, evaluate
    from fastgrpo.eval.scoring import TRUNCATED_THINKING_MODES
    from fastgrpo.eval.specs import build_specs, split_assignments

    cfg = load_or_exit(config, None) if config is not None else None
    explicit = _explicit_eval_keys(config) if config is not None else []
    requested = bench or (cfg.eval.benchmarks if cfg else [])
    if not requested:
        raise fail("nothing to evaluate: give --bench NAMES (see `fastgrpo eval --list`) and --model PATH")
    try:
        names = resolve_names(requested)
    except UnknownBenchmarkError as e:
        raise fail(str(e)) from None
    model_path = model or (cfg.model.path if cfg and cfg.model.path else None)
    if not model_path:
        raise fail("--model PATH is required (a local Hugging Face model folder or a hub id)")
    scorer = scorer or (cfg.eval.scorer if cfg else "mathverify")
    if scorer not in ("mathverify", "reference"):
        raise fail(f"--scorer must be mathverify or reference, got {scorer!r}")
    truncated_thinking = truncated_thinking or (cfg.eval.truncated_thinking if cfg else None)
    if truncated_thinking is not None and truncated_thinking not in TRUNCATED_THINKING_MODES:
        raise fail(f"--truncated-thinking must be wrong or search, got {truncated_thinking!r}")
    engine_kind = engine or (cfg.rollout.engine if cfg else "auto")
    if engine_kind not in ("auto", "hf", "vllm"):
        raise fail(f"--engine must be auto, hf or vllm, got {engine_kind!r}")
    keys = {
        "prompt_key": prompt_key,
        "answer_key": answer_key,
        "group_key": group_key,
        "image_key": image_key,
        "options_key": options_key,
        "id_key": id_key,
        "prompt": prompt,
    }
    try:
        specs = build_specs(
            names, split_assignments(data, names, "--data"), split_assignments(split, names, "--split"), keys
        )
    except (UnknownBenchmarkError, EvalSetupError) as e:
        raise fail(str(e)) from None

    params = EvalParams.from_eval_config(cfg.eval, explicit) if cfg else EvalParams()
    for key, value in (
        ("n", n),
        ("temperature", temperature),
        ("top_p", top_p),
        ("top_k", top_k),
        ("max_new_tokens", max_new_tokens),
    ):
        if value is not None:
            setattr(params, key, value)
    params.seed = seed if seed is not None else (cfg.trainer.seed if cfg else 1)
    limit = limit if limit is not None else (cfg.eval.limit if cfg else None)
    data_dir_s = str(data_dir) if data_dir else (cfg.eval.data_dir if cfg else None)
    batch = batch_size or (cfg.eval.batch_size if cfg else 32)
    out_dir = out or _default_out(model_path)

    _quiet_library_progress()
    try:
        kind = resolve_engine_kind(engine_kind)
        tp = cfg.rollout.tensor_parallel_size if kind == "vllm" and cfg is not None else 1
        dp = from_env()  # under torchrun (or --nproc): this process is one data-parallel rank
        if dp is not None:
            assign_devices(dp, per_rank=tp)
        pixels = {
            "min_pixels": min_pixels or (cfg.data.min_pixels if cfg else REFERENCE_MIN_PIXELS),
            "max_pixels": max_pixels or (cfg.data.max_pixels if cfg else REFERENCE_MAX_PIXELS),
        }
        remote = trust_remote_code or (cfg.model.trust_remote_code if cfg else False)
        load = {"dtype": dtype, "trust_remote_code": remote, **pixels}
        head = load_model(model_path, load_weights=False, **load)
        configure_chat_template(cfg.data if cfg else None, head.tokenizer, head.processor)  # a bad one fails now
        vision = [s.name for s in specs if s.modality == "vision"]
        if vision and not has_vision(head.processor):
            raise EvalSetupError(
                f"{', '.join(vision)}: image benchmark{'s' if len(vision) > 1 else ''}, but {model_path} has no "
                "vision processor (a text-only model); evaluate a vision-language model, or choose text "
                "benchmarks (gsm8k, math500, aime2024, custom)"
            )
        questions = {s.name: load_items(s, data_dir_s, limit) for s in specs}  # data problems before weights
        vllm_kwargs: dict[str, Any] = {}
        if kind == "vllm" and cfg is not None:
            vllm_kwargs = {
                "tensor_parallel_size": cfg.rollout.tensor_parallel_size,
                "gpu_memory_utilization": cfg.rollout.gpu_memory_utilization,
            }
            if cfg.rollout.kv_cache_memory_mb:
                vllm_kwargs["kv_cache_memory_bytes"] = cfg.rollout.kv_cache_memory_mb * 2**20
        # vLLM receives the weights from the loaded model, which can then stay on the CPU
        loaded = load_model(model_path, device="cpu" if kind == "vllm" else None, **load)
        configure_chat_template(cfg.data if cfg else None, loaded.tokenizer, loaded.processor)
        micro = cfg.rollout.micro_batch_size if cfg else 64  # sequences per HF generate call
        if kind == "vllm":  # vLLM computes in the loaded weights' dtype (its own `auto` serves fp32 in 16-bit)
            vllm_kwargs.setdefault("dtype", str(loaded.model.dtype).replace("torch.", ""))
        rollout = make_engine(kind, loaded, micro_batch_size=micro, **vllm_kwargs)
        if dp is None or dp.rank == 0:
            console.print(
                f"[bold]eval[/] {model_path} on {', '.join(s.name for s in specs)} -> {out_dir} "
                f"(engine {kind}, scorer {scorer}{f', {dp.world} processes' if dp else ''})",
                highlight=False,
            )
        results = evaluate(
            loaded.model,
            loaded.tokenizer,
            specs,
            params,
            out_dir,
            engine=rollout,
            scorer=scorer,
            limit=limit,
            data_dir=data_dir_s,
            processor=loaded.processor,
            batch_size=batch,
            model_name=name or model_path,
            engine_name=kind,
            template=cfg.reward.template if cfg else "think_boxed",
            num_workers=workers,
            timeout_s=timeout,
            progress=not no_progress,
            items=questions,
            truncated_thinking=truncated_thinking,
            # --think-in-prompt not given (None): found by rendering the model's chat template once
            think_in_prompt=think_in_prompt,
            data_parallel=dp,
        )
    except (DataSourceError, EvalSetupError, ModelLoadError, EngineUnavailableError, UnknownBenchmarkError) as e:
        raise fail(str(e)) from None
    except RuntimeError as e:
        if "data-parallel" not in str(e):
            raise
        raise fail(str(e)) from None
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/]: finished samples are in {out_dir}/generations.jsonl; "
            "rerun the same command to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    if dp is not None and dp.rank != 0:
        return
    print_results(results)
    console.print(
        f"wrote {out_dir}/results.json, results.md, generations.jsonl, accuracy_vs_length.png",
        highlight=False,
    )


@eval_app.command("compare")
def compare_command(
    results: list[Path] = typer.Argument(..., help="results.json files (or folders holding one)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Folder for accuracy_vs_length.png and comparison.md/json."
    ),
) -> None:
    """Plot several eval results together (accuracy vs mean tokens, one point per model and benchmark).

    Example:

      fastgrpo eval compare runs/eval/fast/results.json runs/eval/grpo --out runs/eval/cmp
    """
    from fastgrpo.eval.report import compare, comparison_table

    try:
        data = compare(results, out)
    except (FileNotFoundError, ValueError) as e:
        raise fail(str(e)) from None
    Console().print(comparison_table(data))
    console.print(f"wrote {out}/accuracy_vs_length.png, comparison.md, comparison.json", highlight=False)
