"""`fastgrpo export`: checkpoint -> verified Hugging Face folder -> optional upload to HF or ModelScope."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from fastgrpo.cli.common import fail
from fastgrpo.log import console

if TYPE_CHECKING:  # the export package pulls in torch: import it only when the command runs
    from fastgrpo.export import ExportOptions, ExportPlan


class Target(str, Enum):
    local = "local"
    hf = "hf"
    modelscope = "modelscope"


class DType(str, Enum):
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


def _print_plan(
    plan: ExportPlan, opts: ExportOptions, token_source: str | None, endpoint: str | None
) -> None:
    from fastgrpo.export.hf_folder import format_size

    out = Console(soft_wrap=True)  # stdout: the plan is the dry run's output
    ckpt = plan.checkpoint
    if ckpt is not None:
        out.print(f"checkpoint : {ckpt.path} (step {ckpt.step})", highlight=False)
        out.print(f"base files : {ckpt.base_dir}", highlight=False)
        out.print(f"dtype      : {plan.dtype}, {plan.num_tensors} tensors", highlight=False)
        action = "replace" if plan.replaces else "create"
        out.print(f"folder     : {plan.out} ({action})", highlight=False)
    else:
        out.print(f"folder     : {plan.out} (existing export, upload only)", highlight=False)
    if plan.target != "local":
        rev = opts.revision or ("main" if plan.target == "hf" else "master")
        vis = "private" if opts.private else "default visibility"
        out.print(
            f"target     : {plan.target} {endpoint or '(default endpoint)'} repo {plan.repo_id} "
            f"revision {rev} ({vis})",
            highlight=False,
        )
        out.print(f"token      : {'from ' + token_source if token_source else 'none found'}", highlight=False)
    table = Table("file", "size", "from", box=None, pad_edge=False)
    for f in plan.files:
        table.add_row(f.path, ("~" if not f.exact else "") + format_size(f.size), f.origin)
    out.print(table)
    out.print(f"total      : {format_size(plan.total_bytes)} in {len(plan.files)} files", highlight=False)


# One alias per option (type and help), so the command below reads as a list of options.
PathArg = Annotated[
    Path,
    typer.Argument(
        help="Run directory (runs/NAME), a checkpoint folder (runs/NAME/checkpoints/global_step_N), "
        "or an existing export folder (upload it as is).",
        show_default=False,
    ),
]
ToOpt = Annotated[Target, typer.Option("--to", help="local: write the folder only; hf / modelscope: also upload.")]
RepoIdOpt = Annotated[
    str | None, typer.Option("--repo-id", help="ORG/NAME of the hub repo (needed for --to hf|modelscope).")
]
OutOpt = Annotated[
    Path | None,
    typer.Option(
        "--out", help="Export folder. Default: RUN_DIR/export (a previous export there is replaced atomically)."
    ),
]
StepOpt = Annotated[int | None, typer.Option("--step", help="Checkpoint step to export. Default: the latest.")]
DTypeOpt = Annotated[
    DType | None,
    typer.Option(
        "--dtype",
        help="Weights dtype. Default: the dtype training computed in (model.dtype; checkpoints keep fp32 master weights).",
    ),
]
MaxShardOpt = Annotated[
    str,
    typer.Option(
        "--max-shard-size",
        help="Split safetensors above this size (with model.safetensors.index.json), e.g. 2GB, 500MB.",
    ),
]
PrivateOpt = Annotated[bool, typer.Option("--private", help="Create the hub repo as private (ignored if it exists).")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show the plan (files, sizes, target) and write or upload nothing.")
]
TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="Hub token. Default: $HF_TOKEN / $MODELSCOPE_API_TOKEN, then the "
        "client's saved login. Never printed, logged or written.",
        show_default=False,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="Hub URL. Default: $HF_ENDPOINT (hf), $MODELSCOPE_ENDPOINT (modelscope), else the public hub.",
    ),
]
RevisionOpt = Annotated[
    str | None,
    typer.Option(
        "--revision",
        help="Branch to commit to (default main on HF, master on ModelScope); created on HF if missing.",
    ),
]
CommitMessageOpt = Annotated[str | None, typer.Option("--commit-message", help="Commit message of the upload.")]
EvalResultsOpt = Annotated[
    Path | None,
    typer.Option(
        "--eval-results",
        help="results.json of `fastgrpo eval` (or its folder) for the card's eval table. "
        "Default: RUN_DIR/eval/results.json when present.",
    ),
]
AdapterOnlyOpt = Annotated[
    bool,
    typer.Option("--adapter-only", help="LoRA runs: write a peft adapter folder (adapter_config.json, "
                 "adapter_model.safetensors) instead of the base with the adapters merged."),
]
RetriesOpt = Annotated[
    int, typer.Option("--retries", min=1, help="Upload attempts on network errors (exponential backoff).")
]
VerifyOpt = Annotated[
    bool,
    typer.Option(
        "--verify/--no-verify",
        help="Reload the folder with transformers and compare "
        "logits with the checkpoint before anything is kept or uploaded.",
    ),
]


def export_command(
    path: PathArg,
    to: ToOpt = Target.local,
    repo_id: RepoIdOpt = None,
    out: OutOpt = None,
    step: StepOpt = None,
    dtype: DTypeOpt = None,
    max_shard_size: MaxShardOpt = "5GB",
    private: PrivateOpt = False,
    dry_run: DryRunOpt = False,
    token: TokenOpt = None,
    endpoint: EndpointOpt = None,
    revision: RevisionOpt = None,
    commit_message: CommitMessageOpt = None,
    eval_results: EvalResultsOpt = None,
    retries: RetriesOpt = 4,
    verify: VerifyOpt = True,
    adapter_only: AdapterOnlyOpt = False,
) -> None:
    """Export a checkpoint as a Hugging Face model folder (safetensors, config, tokenizer, chat template,
    model card), verify it, and optionally upload it to the Hugging Face Hub or ModelScope.

    Examples:

      fastgrpo export runs/demo

      fastgrpo export runs/demo --step 20 --dtype bfloat16 --out exports/demo-s20

      fastgrpo export runs/demo --to hf --repo-id me/fast-demo --private --dry-run

      HF_TOKEN=... fastgrpo export runs/demo --to hf --repo-id me/fast-demo

      MODELSCOPE_API_TOKEN=... fastgrpo export runs/demo --to modelscope --repo-id me/fast-demo

      fastgrpo export runs/demo/export --to hf --repo-id me/fast-demo

      fastgrpo export runs/lora --adapter-only

    The first writes the latest checkpoint to runs/demo/export; the last re-uploads that export as is.

    Exit codes: 0 done, 1 verification or upload failed, 2 bad input.
    """
    from fastgrpo.export import (
        ExportError,
        ExportOptions,
        RetryPolicy,
        UploadError,
        VerifyError,
        hub_endpoint,
        plan_export,
        publish,
        resolve_token,
        write_export,
    )
    from fastgrpo.export.exporter import check_target, check_upload_ready

    target = to.value
    opts = ExportOptions(
        source=path, target=target, out=out, step=step, dtype=dtype.value if dtype else None,  # type: ignore[arg-type]
        max_shard_size=max_shard_size, repo_id=repo_id, private=private, revision=revision,
        commit_message=commit_message, endpoint=endpoint, verify=verify, eval_results=eval_results,
        retry=RetryPolicy(attempts=retries), adapter_only=adapter_only,
    )
    try:
        check_target(opts)
        secret = resolve_token(target, token) if target != "local" else None
        plan = plan_export(opts)
        if dry_run:
            shown_endpoint = hub_endpoint(target, endpoint) if target != "local" else None
            _print_plan(plan, opts, secret.source if secret else None, shown_endpoint)
            console.print("dry run: nothing was written or uploaded", highlight=False)
            return
        check_upload_ready(opts, secret)
        result = write_export(plan, verify=verify)
        if plan.checkpoint is not None:
            console.print(f"exported step {plan.checkpoint.step} to {result.folder}", highlight=False)
        if secret is not None:
            console.print(f"uploaded to {publish(result, opts, secret)}", highlight=False)
    except ExportError as e:
        raise fail(str(e)) from None
    except (VerifyError, UploadError) as e:
        raise fail(str(e), code=1) from None
