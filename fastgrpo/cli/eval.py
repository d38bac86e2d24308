"""`fastgrpo eval`: accuracy and mean generated tokens on the registered benchmarks (or a local file).

Thin wiring over `fastgrpo.eval.command.run_eval` (which resolves the options and calls
`fastgrpo.eval.evaluate`); every user mistake (unknown benchmark, missing data, unreadable
model, images without a vision processor, vLLM absent) exits 2 with a message saying what to do.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

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


# One alias per option (type and help), so the command below reads as a list of options.
BenchOpt = Annotated[
    list[str],
    typer.Option(
        "--bench",
        "-b",
        help="Benchmarks: names (comma list or repeated), all, vision, text, or custom. See --list.",
    ),
]
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Local HF model folder or hub id.")]
OutOpt = Annotated[
    Path, typer.Option("--out", "-o", help="Output folder (default runs/eval/<model>). Rerun to resume.")
]
ListOpt = Annotated[bool, typer.Option("--list", help="List the registered benchmarks and exit.")]
ConfigOpt = Annotated[
    Path, typer.Option("--config", "-c", help="YAML config: its eval: section (and model.path).")
]
NOpt = Annotated[
    int, typer.Option("--n", "-n", min=1, help="Samples per question (avg@n). Default: per benchmark.")
]
TemperatureOpt = Annotated[float, typer.Option("--temperature", min=0.0)]
TopPOpt = Annotated[float, typer.Option("--top-p")]
TopKOpt = Annotated[int, typer.Option("--top-k", help="-1 disables top-k.")]
MaxNewTokensOpt = Annotated[int, typer.Option("--max-new-tokens", min=1)]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Sampling seed (default trainer.seed of --config, else 1).")
]
LimitOpt = Annotated[
    int, typer.Option("--limit", min=1, help="Only the first N questions of each benchmark.")
]
ScorerOpt = Annotated[
    str,
    typer.Option("--scorer", help="mathverify (default) or reference (PAPO-Eval's own rule, via mathruler)."),
]
TruncatedThinkingOpt = Annotated[
    str,
    typer.Option(
        "--truncated-thinking",
        help="A response that opened <think> and never closed it: wrong (default for mathverify) or "
        "search (grade it anyway; default for reference, as PAPO does).",
    ),
]
ThinkInPromptOpt = Annotated[
    bool,
    typer.Option(
        "--think-in-prompt/--no-think-in-prompt",
        help="The chat template opens <think> in the prompt (R1-distill style), so every response thinks. "
        "Default: found by rendering the model's chat template once.",
    ),
]
NprocOpt = Annotated[
    int,
    typer.Option(
        "--nproc", min=1, help="Data-parallel processes, each with its own engine (or launch with torchrun)."
    ),
]
EngineOpt = Annotated[
    str, typer.Option("--engine", help="auto (vllm if installed with CUDA, else hf), hf or vllm.")
]
DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", help="Folder with local benchmark copies (<name>.parquet, ...).")
]
DataOpt = Annotated[
    list[str],
    typer.Option(
        "--data",
        help="PATH for the (single or custom) benchmark, or NAME=PATH "
        "/ NAME=org/dataset[:subset][@split]; repeatable.",
    ),
]
SplitOpt = Annotated[list[str], typer.Option("--split", help="Split override: SPLIT or NAME=SPLIT.")]
PromptKeyOpt = Annotated[str, typer.Option("--prompt-key", help="custom: question column (default problem).")]
AnswerKeyOpt = Annotated[str, typer.Option("--answer-key", help="custom: answer column (default answer).")]
GroupKeyOpt = Annotated[
    str,
    typer.Option(
        "--group-key",
        help="Column to break results down by (e.g. k): the "
        "custom benchmark's if there is one, else every one's; or NAME=KEY.",
    ),
]
ImageKeyOpt = Annotated[
    str, typer.Option("--image-key", help="custom: image column (makes it a vision benchmark).")
]
OptionsKeyOpt = Annotated[str, typer.Option("--options-key", help="custom: column with the list of options.")]
IdKeyOpt = Annotated[str, typer.Option("--id-key", help="custom: column with a unique question id.")]
PromptOpt = Annotated[
    str, typer.Option("--prompt", help="custom: user template with {question} (or a .jinja file).")
]
BatchSizeOpt = Annotated[
    int, typer.Option("--batch-size", min=1, help="Questions per generation batch (and flush).")
]
WorkersOpt = Annotated[int, typer.Option("--workers", min=0, help="Grading processes (0 = in-process).")]
TimeoutOpt = Annotated[float, typer.Option("--timeout", help="Per-response grading timeout in seconds.")]
NameOpt = Annotated[str, typer.Option("--name", help="Model label in results and plots (default: --model).")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="auto, float32, bfloat16 or float16.")]
MinPixelsOpt = Annotated[
    int,
    typer.Option(
        "--min-pixels",
        help="Vision: smallest image size in pixels "
        "(default data.min_pixels of --config, else the reference 1024).",
    ),
]
MaxPixelsOpt = Annotated[
    int,
    typer.Option(
        "--max-pixels",
        help="Vision: largest image size in pixels "
        "(default data.max_pixels of --config, else the reference 589824).",
    ),
]
TrustRemoteCodeOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code", help="Run the model's own code (default model.trust_remote_code of --config)."
    ),
]
NoProgressOpt = Annotated[bool, typer.Option("--no-progress", help="Hide progress bars.")]


@eval_app.callback(invoke_without_command=True)
def eval_command(
    ctx: typer.Context,
    bench: BenchOpt = None,
    model: ModelOpt = None,
    out: OutOpt = None,
    list_: ListOpt = False,
    config: ConfigOpt = None,
    n: NOpt = None,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    top_k: TopKOpt = None,
    max_new_tokens: MaxNewTokensOpt = None,
    seed: SeedOpt = None,
    limit: LimitOpt = None,
    scorer: ScorerOpt = None,
    truncated_thinking: TruncatedThinkingOpt = None,
    think_in_prompt: ThinkInPromptOpt = None,
    nproc: NprocOpt = 1,
    engine: EngineOpt = None,
    data_dir: DataDirOpt = None,
    data: DataOpt = None,
    split: SplitOpt = None,
    prompt_key: PromptKeyOpt = None,
    answer_key: AnswerKeyOpt = None,
    group_key: GroupKeyOpt = None,
    image_key: ImageKeyOpt = None,
    options_key: OptionsKeyOpt = None,
    id_key: IdKeyOpt = None,
    prompt: PromptOpt = None,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = 2,
    timeout: TimeoutOpt = 5.0,
    name: NameOpt = None,
    dtype: DtypeOpt = "auto",
    min_pixels: MinPixelsOpt = None,
    max_pixels: MaxPixelsOpt = None,
    trust_remote_code: TrustRemoteCodeOpt = False,
    no_progress: NoProgressOpt = False,
) -> None:
    """Evaluate a model; writes generations.jsonl, results.json, results.md and accuracy_vs_length.png to --out."""
    if ctx.invoked_subcommand is not None:
        return
    from fastgrpo.eval.command import USER_ERRORS, EvalRequest, print_benchmark_table, run_eval

    if list_:
        print_benchmark_table()
        raise typer.Exit(0)
    if nproc > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        from fastgrpo.eval.parallel import command_line, launch

        raise typer.Exit(launch(command_line(ctx, drop=("nproc",)), nproc))
    options = locals()  # every option, by the name EvalRequest gives it
    request = EvalRequest(**{f.name: options[f.name] for f in dataclasses.fields(EvalRequest)})
    cfg = load_or_exit(config, None) if config is not None else None
    try:
        results, out_dir, dp = run_eval(request, cfg)
    except USER_ERRORS as e:
        raise fail(str(e)) from None
    except RuntimeError as e:
        if "data-parallel" not in str(e):
            raise
        raise fail(str(e)) from None
    except KeyboardInterrupt as e:
        where = getattr(e, "out", None) or "the output folder"  # EvalInterrupted names it
        console.print(
            f"[yellow]interrupted[/]: finished samples are in {where}/generations.jsonl; "
            "rerun the same command to resume",
            highlight=False,
        )
        raise typer.Exit(130) from None
    if dp is not None and dp.rank != 0:
        return
    from fastgrpo.eval.report import print_results

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
