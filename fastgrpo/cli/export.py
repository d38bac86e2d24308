"""`fastgrpo export`: checkpoint -> verified Hugging Face folder -> optional upload to HF or ModelScope."""

from __future__ import annotations

import importlib.util
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

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


def _hf_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def export_command(
    path: Path = typer.Argument(
        ...,
        help="Run directory (runs/NAME), a checkpoint folder (runs/NAME/checkpoints/global_step_N), "
        "or an existing export folder (upload it as is).",
        show_default=False,
    ),
    to: Target = typer.Option(
        Target.local, "--to", help="local: write the folder only; hf / modelscope: also upload."
    ),
    repo_id: str | None = typer.Option(
        None, "--repo-id", help="ORG/NAME of the hub repo (needed for --to hf|modelscope)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Export folder. Default: RUN_DIR/export (a previous export there is replaced atomically).",
    ),
    step: int | None = typer.Option(None, "--step", help="Checkpoint step to export. Default: the latest."),
    dtype: DType | None = typer.Option(
        None, "--dtype",
        help="Weights dtype. Default: the dtype training computed in (model.dtype; checkpoints keep fp32 master weights).",
    ),
    max_shard_size: str = typer.Option(
        "5GB",
        "--max-shard-size",
        help="Split safetensors above this size (with model.safetensors.index.json), e.g. 2GB, 500MB.",
    ),
    private: bool = typer.Option(
        False, "--private", help="Create the hub repo as private (ignored if it exists)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the plan (files, sizes, target) and write or upload nothing."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Hub token. Default: $HF_TOKEN / $MODELSCOPE_API_TOKEN, then the "
        "client's saved login. Never printed, logged or written.",
        show_default=False,
    ),
    endpoint: str | None = typer.Option(
        None,
        "--endpoint",
        help="Hub URL. Default: $HF_ENDPOINT (hf), $MODELSCOPE_ENDPOINT (modelscope), else the public hub.",
    ),
    revision: str | None = typer.Option(
        None,
        "--revision",
        help="Branch to commit to (default main on HF, master on ModelScope); created on HF if missing.",
    ),
    commit_message: str | None = typer.Option(None, "--commit-message", help="Commit message of the upload."),
    eval_results: Path | None = typer.Option(
        None,
        "--eval-results",
        help="results.json of `fastgrpo eval` (or its folder) for the card's eval table. "
        "Default: RUN_DIR/eval/results.json when present.",
    ),
    retries: int = typer.Option(
        4, "--retries", min=1, help="Upload attempts on network errors (exponential backoff)."
    ),
    verify: bool = typer.Option(
        True,
        "--verify/--no-verify",
        help="Reload the folder with transformers and compare "
        "logits with the checkpoint before anything is kept or uploaded.",
    ),
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

    target = to.value
    if target != "local":
        if not repo_id:
            raise fail(f"--to {target} needs --repo-id ORG/NAME (e.g. --repo-id me/fast-demo)")
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise fail(f"--repo-id {repo_id!r}: expected ORG/NAME, e.g. me/fast-demo")
    opts = ExportOptions(
        source=path,
        target=target,  # type: ignore[arg-type]
        out=out,
        step=step,
        dtype=dtype.value if dtype else None,
        max_shard_size=max_shard_size,
        repo_id=repo_id,
        private=private,
        revision=revision,
        commit_message=commit_message,
        endpoint=endpoint,
        verify=verify,
        eval_results=eval_results,
        retry=RetryPolicy(attempts=retries),
    )
    if target == "modelscope" and importlib.util.find_spec("modelscope") is None:
        raise fail("--to modelscope needs the modelscope SDK: pip install 'fastgrpo[modelscope]'")
    secret = resolve_token(target, token) if target != "local" else None
    try:
        plan = plan_export(opts)
        shown_endpoint = hub_endpoint(target, endpoint) if target != "local" else None
        if dry_run:
            _print_plan(plan, opts, secret.source if secret else None, shown_endpoint)
            console.print("dry run: nothing was written or uploaded", highlight=False)
            return
        if target == "hf" and _hf_offline():
            raise fail(
                "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so huggingface_hub makes no requests: "
                "unset it to upload (the folder was not exported)"
            )
        if target != "local" and secret is None:
            env = "HF_TOKEN" if target == "hf" else "MODELSCOPE_API_TOKEN"
            raise fail(f"no token for --to {target}: set ${env}, pass --token, or log in with the hub's CLI")
        result = write_export(plan, verify=verify)
        if plan.checkpoint is not None:
            console.print(f"exported step {plan.checkpoint.step} to {result.folder}", highlight=False)
        if target != "local":
            assert secret is not None
            url = publish(result, opts, secret)
            console.print(f"uploaded to {url}", highlight=False)
    except ExportError as e:
        raise fail(str(e)) from None
    except (VerifyError, UploadError) as e:
        raise fail(str(e), code=1) from None
