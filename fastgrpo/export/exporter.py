"""Plan, write, verify and publish an export: the whole of `fastgrpo export` minus argument parsing.

Why plan first: the dry run and the real export share one plan (files, sizes,
target), so what `--dry-run` shows is exactly what gets written. The folder is
built in a hidden temp dir next to the destination, verified there, and only
then renamed into place; on any failure the temp dir is removed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from huggingface_hub import constants as hf_hub_constants

from fastgrpo import __version__
from fastgrpo.export import hf_folder as hf
from fastgrpo.export.card import read_eval_results, render_model_card
from fastgrpo.export.checkpoint import (
    EXPORT_MARKER,
    CheckpointInfo,
    checkpoint_dtype,
    load_tensors,
    read_tensor_metadata,
    resolve_checkpoint,
)
from fastgrpo.export.errors import ExportError
from fastgrpo.export.lora import lora_spec, merged_metadata, merged_tensors, write_adapter_folder
from fastgrpo.export.upload import RetryPolicy, Token, assert_token_absent, upload_hf, upload_modelscope
from fastgrpo.export.verify import VerifyReport, verify_export
from fastgrpo.log import get_logger
from fastgrpo.models.lora import LoraSpec

log = get_logger("export")

Target = Literal["local", "hf", "modelscope"]
DEFAULT_MAX_SHARD = "5GB"


@dataclass
class ExportOptions:
    source: Path
    """Run directory, checkpoint folder, or an existing export folder (then only uploaded)."""
    target: Target = "local"
    out: Path | None = None
    """Destination folder; default <run_dir>/export."""
    step: int | None = None
    dtype: str | None = None
    """float32 | bfloat16 | float16; default: the dtype training computed in (trainer_state `compute_dtype`)."""
    max_shard_size: str | int = DEFAULT_MAX_SHARD
    repo_id: str | None = None
    private: bool = False
    revision: str | None = None
    commit_message: str | None = None
    endpoint: str | None = None
    verify: bool = True
    eval_results: Path | None = None
    adapter_only: bool = False
    """LoRA runs: write a peft adapter folder instead of the merged model."""
    """results.json (or its folder) for the card's eval table; default <run_dir>/eval/results.json."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class PlannedFile:
    path: str
    size: int
    origin: str
    """'weights', 'index', 'base:<file>' (copied from hf_base), or 'generated'."""
    exact: bool = True
    """False for safetensors shards: their header size is only estimated."""


@dataclass
class ExportPlan:
    out: Path
    files: list[PlannedFile]
    checkpoint: CheckpointInfo | None = None
    """None when the source is an existing export folder (upload only)."""
    dtype: str = ""
    num_tensors: int = 0
    replaces: bool = False
    """True when `out` holds a previous export that will be replaced."""
    target: Target = "local"
    repo_id: str | None = None
    # Internal, for writing: shard file -> [(output name, checkpoint name)], and generated texts.
    shards: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    copies: dict[str, Path] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)
    config: Any = None
    lora: LoraSpec | None = None
    adapter_only: bool = False
    """The run's LoRA settings when the checkpoint holds adapters (merged into the base on export)."""

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


@dataclass
class ExportResult:
    folder: Path
    plan: ExportPlan
    verify: VerifyReport | None = None
    url: str | None = None


def is_export_folder(path: Path) -> bool:
    return (path / EXPORT_MARKER).is_file() and (path / "config.json").is_file()


def _trust_remote_code(ckpt: CheckpointInfo) -> bool:
    return bool((ckpt.run_config.get("model") or {}).get("trust_remote_code", False))


def _default_out(opts: ExportOptions, ckpt: CheckpointInfo) -> Path:
    if opts.out is not None:
        return opts.out.expanduser()
    if ckpt.run_dir is None:
        raise ExportError(f"{ckpt.path} is not inside a run directory: pass --out DIR for the export folder")
    return ckpt.run_dir / "export"


def _check_out(out: Path) -> bool:
    """True if `out` exists and is a previous export (replaced atomically); error if it is anything else."""
    if not out.exists():
        return False
    if out.is_dir() and (is_export_folder(out) or not any(out.iterdir())):
        return True
    raise ExportError(
        f"{out} already exists and is not a fastgrpo export: choose another --out, or remove it first"
    )


def plan_export(opts: ExportOptions) -> ExportPlan:
    """Resolve the checkpoint and plan every file, reading only metadata (no tensor data)."""
    source = opts.source.expanduser()
    if source.is_dir() and is_export_folder(source):
        if opts.target == "local":
            raise ExportError(
                f"{source} is already an export folder: use --to hf or --to modelscope to upload it"
            )
        if any(v is not None for v in (opts.step, opts.dtype, opts.out, opts.eval_results)):
            raise ExportError(
                f"{source} is an export folder, uploaded as is: --step, --dtype, --out and --eval-results "
                "apply to checkpoints; "
                "pass the run directory to export again"
            )
        files = [
            PlannedFile(p.relative_to(source).as_posix(), p.stat().st_size, "existing export")
            for p in sorted(source.rglob("*"))
            if p.is_file()
        ]
        return ExportPlan(out=source, files=files, target=opts.target, repo_id=opts.repo_id)

    ckpt = resolve_checkpoint(source, opts.step)
    trust = _trust_remote_code(ckpt)
    meta = read_tensor_metadata(ckpt.model_dir)
    train_dtype = checkpoint_dtype(meta)
    if opts.dtype is not None and opts.dtype not in hf.DTYPES:
        raise ExportError(f"--dtype {opts.dtype!r}: choose one of {', '.join(hf.DTYPES)}")
    # Default: the dtype training computed in (trainer_state `compute_dtype`; the checkpoint holds the fp32
    # master weights of a mixed-precision run); older checkpoints: the stored dtype.
    compute = ckpt.trainer_state.get("compute_dtype")
    default = hf.DTYPES.get(str(compute), train_dtype)
    dtype = hf.DTYPES[opts.dtype] if opts.dtype else default
    config = hf.load_config(ckpt.base_dir, trust)
    lora = lora_spec(ckpt)
    if lora is not None:  # the checkpoint holds adapters; the export is the base with them merged
        meta = merged_metadata(config, hf.DTYPES.get(str(compute), torch.float32), trust)
    layout = hf.model_layout(config, trust)
    selection = hf.select_tensors(layout, meta)

    def nbytes(src: str) -> int:
        m = meta[src]
        size = dtype.itemsize if m.dtype.is_floating_point else m.dtype.itemsize
        return m.numel * size

    shard_names = hf.plan_shards(
        [(o, nbytes(s)) for o, s in selection.items()], hf.parse_size(opts.max_shard_size)
    )
    file_names = hf.shard_file_names(len(shard_names))
    shards = {f: [(o, selection[o]) for o in names] for f, names in zip(file_names, shard_names, strict=True)}
    files = [
        # safetensors adds a JSON header (~100 bytes per tensor) to the raw data.
        PlannedFile(f, sum(nbytes(s) for _, s in items) + 100 * len(items), "weights", exact=False)
        for f, items in shards.items()
    ]
    texts: dict[str, str] = {}
    if len(shards) > 1:
        weight_map = {o: f for f, items in shards.items() for o, _ in items}
        texts[hf.SAFE_INDEX] = hf.shard_index(weight_map, sum(nbytes(s) for s in selection.values()))

    copies = {p.relative_to(ckpt.base_dir).as_posix(): p for p in hf.base_files(ckpt.base_dir)}
    texts["config.json"] = hf.patched_config_json(ckpt.base_dir, dtype)
    copies.pop("config.json", None)
    if "generation_config.json" not in copies:
        texts["generation_config.json"] = hf.default_generation_config(config)
    run_name = ckpt.run_dir.name if ckpt.run_dir is not None else None
    texts["README.md"] = render_model_card(
        ckpt.run_config,
        step=ckpt.step,
        dtype=hf.dtype_name(dtype),
        eval_rows=read_eval_results(ckpt.run_dir, opts.eval_results),
        repo_id=opts.repo_id,
        run_name=run_name,
    )
    texts[EXPORT_MARKER] = (
        json.dumps(
            {
                "fastgrpo_version": __version__,
                "run": run_name,
                "checkpoint": ckpt.path.name,
                "step": ckpt.step,
                "dtype": hf.dtype_name(dtype),
                "training_dtype": hf.dtype_name(train_dtype),
            },
            indent=2,
        )
        + "\n"
    )
    if opts.adapter_only:  # a peft folder: the adapters, tokenizer files and card; no model weights or config
        if lora is None:
            raise ExportError(f"--adapter-only: {ckpt.path} is not from a LoRA run (its actor.lora.rank is 0); "
                              "export it without --adapter-only")
        adapter_bytes = sum(m.numel * 4 for k, m in read_tensor_metadata(ckpt.model_dir).items() if ".lora_" in k)
        shards = {}
        for name in (hf.SAFE_INDEX, "config.json", "generation_config.json"):
            texts.pop(name, None)
            copies.pop(name, None)
        files = [PlannedFile("adapter_config.json", 1000, "peft", exact=False),
                 PlannedFile("adapter_model.safetensors", adapter_bytes, "adapters (float32)", exact=False)]
    for rel, src in copies.items():
        files.append(PlannedFile(rel, src.stat().st_size, "base:" + src.name))
    for rel, text in texts.items():
        files.append(PlannedFile(rel, len(text.encode()), "index" if rel == hf.SAFE_INDEX else "generated"))
    files.sort(key=lambda f: f.path)
    out = _default_out(opts, ckpt)
    return ExportPlan(
        out=out,
        files=files,
        checkpoint=ckpt,
        dtype=hf.dtype_name(dtype),
        num_tensors=len(selection),
        replaces=_check_out(out),
        target=opts.target,
        repo_id=opts.repo_id,
        shards=shards,
        texts=texts,
        copies=copies,
        tied=layout.tied,
        config=config,
        lora=lora,
        adapter_only=opts.adapter_only,
    )


def _load_checked(plan: ExportPlan) -> dict[str, torch.Tensor]:
    """Load the checkpoint tensors; tied aliases present in the checkpoint must equal their canonical tensor."""
    assert plan.checkpoint is not None
    if plan.lora is not None:
        log.info("merging the LoRA adapters (rank %d) into the run's base model", plan.lora.rank)
        tensors = merged_tensors(plan.checkpoint, plan.lora)
    else:
        tensors = load_tensors(plan.checkpoint.model_dir)
    for alias, canon in plan.tied.items():
        if alias in tensors and canon in tensors and not torch.equal(tensors[alias], tensors[canon]):
            raise ExportError(
                f"{alias} differs from {canon}, but the model config ties them (tie_word_embeddings): "
                "the checkpoint and hf_base/config.json disagree"
            )
    return tensors


def _write_folder(plan: ExportPlan, tmp: Path, tensors: dict[str, torch.Tensor]) -> None:
    dtype = hf.DTYPES[plan.dtype]
    for file, items in plan.shards.items():
        hf.write_shard(tmp / file, {o: hf.cast_tensor(o, tensors[s], dtype) for o, s in items})
    for rel, src in plan.copies.items():
        hf.copy_file(src, tmp / rel)
    for rel, text in plan.texts.items():
        (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp / rel).write_text(text, encoding="utf-8")


def _swap_into_place(tmp: Path, out: Path) -> None:
    """Rename tmp to out; an existing out is moved aside first and removed only after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_export(plan: ExportPlan, verify: bool = True) -> ExportResult:
    """Write the planned folder atomically; verify it first unless told not to."""
    if plan.checkpoint is None:  # existing export: nothing to write
        return ExportResult(plan.out, plan)
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{plan.out.name}.tmp-", dir=plan.out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the export should look like any other folder
        log.info("loading %s (step %d)", plan.checkpoint.path, plan.checkpoint.step)
        if plan.adapter_only:
            assert plan.lora is not None
            write_adapter_folder(plan.checkpoint, plan.lora, tmp)  # checked by reloading it with peft
            _write_folder(plan, tmp, {})
            _swap_into_place(tmp, plan.out)
            log.info("wrote the peft adapter folder %s", plan.out)
            return ExportResult(plan.out, plan)
        tensors = _load_checked(plan)
        _write_folder(plan, tmp, tensors)
        report = None
        if verify:
            report = verify_export(
                tmp,
                plan.config,
                tensors,
                hf.DTYPES[plan.dtype],
                plan.tied,
                expect_tokenizer=hf.has_tokenizer(plan.checkpoint.base_dir),
                expect_chat_template=hf.has_chat_template(plan.checkpoint.base_dir),
                trust_remote_code=_trust_remote_code(plan.checkpoint),
            )
        del tensors
        _swap_into_place(tmp, plan.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s (%d files, %s)", plan.out, len(plan.files), hf.format_size(plan.total_bytes))
    return ExportResult(plan.out, plan, report)


def publish(result: ExportResult, opts: ExportOptions, token: Token) -> str:
    """Upload the export folder to the chosen hub; returns the commit or repo URL."""
    if opts.repo_id is None:
        raise ExportError(f"--to {opts.target} needs --repo-id ORG/NAME")
    assert_token_absent(result.folder, token)
    kwargs: dict[str, Any] = {
        "endpoint": opts.endpoint,
        "private": opts.private,
        "revision": opts.revision,
        "commit_message": opts.commit_message or default_commit_message(result.plan),
        "policy": opts.retry,
    }
    if opts.target == "hf":
        url = upload_hf(result.folder, opts.repo_id, token, **kwargs)
    elif opts.target == "modelscope":
        url = upload_modelscope(result.folder, opts.repo_id, token, **kwargs)
    else:
        raise ExportError(f"unknown target {opts.target!r}")
    result.url = url
    return url


def check_target(opts: ExportOptions) -> None:
    """A hub target's own inputs, checked before any work: a repo id ORG/NAME and the hub's SDK."""
    if opts.target == "local":
        return
    repo_id = opts.repo_id
    if not repo_id:
        raise ExportError(f"--to {opts.target} needs --repo-id ORG/NAME (e.g. --repo-id me/fast-demo)")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ExportError(f"--repo-id {repo_id!r}: expected ORG/NAME, e.g. me/fast-demo")
    if opts.target == "modelscope" and importlib.util.find_spec("modelscope") is None:
        raise ExportError("--to modelscope needs the modelscope SDK: pip install 'fastgrpo[modelscope]'")


def check_upload_ready(opts: ExportOptions, token: Token | None) -> None:
    """Before a folder is written for an upload: the hub client may make requests, and a token was found."""
    if opts.target == "local":
        return
    if opts.target == "hf" and hf_hub_constants.is_offline_mode():
        raise ExportError(
            "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set, so huggingface_hub makes no requests: "
            "unset it to upload (the folder was not exported)"
        )
    if token is None:
        env = "HF_TOKEN" if opts.target == "hf" else "MODELSCOPE_API_TOKEN"
        raise ExportError(f"no token for --to {opts.target}: set ${env}, pass --token, or log in with the hub's CLI")


def default_commit_message(plan: ExportPlan) -> str:
    if plan.checkpoint is None:
        return "Upload FAST-GRPO model (fastgrpo)"
    return f"Upload FAST-GRPO model, step {plan.checkpoint.step} ({plan.dtype}, fastgrpo {__version__})"


def export(opts: ExportOptions, token: Token | None = None) -> ExportResult:
    """Plan, write and verify the folder, then upload it when the target is a hub."""
    plan = plan_export(opts)
    result = write_export(plan, verify=opts.verify)
    if opts.target != "local":
        if token is None:
            raise ExportError(f"--to {opts.target} needs a token")
        publish(result, opts, token)
    return result
