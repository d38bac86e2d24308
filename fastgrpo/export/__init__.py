"""Export a training checkpoint as a Hugging Face model folder and publish it (`fastgrpo export`).

`plan_export(ExportOptions(source=Path("runs/demo")))` says what would be written (the dry run);
`export(options, token)` writes and verifies the folder and, for a hub target, uploads it.
See docs/export.md.
"""

from fastgrpo.export.card import EvalRow, read_eval_results, render_model_card
from fastgrpo.export.checkpoint import CheckpointInfo, load_tensors, resolve_checkpoint
from fastgrpo.export.errors import ExportError, UploadError, VerifyError
from fastgrpo.export.exporter import (
    ExportOptions,
    ExportPlan,
    ExportResult,
    PlannedFile,
    export,
    plan_export,
    publish,
    write_export,
)
from fastgrpo.export.upload import (
    RetryPolicy,
    Token,
    hub_endpoint,
    resolve_token,
    upload_hf,
    upload_modelscope,
)
from fastgrpo.export.verify import VerifyReport, verify_export

__all__ = [
    "CheckpointInfo",
    "EvalRow",
    "ExportError",
    "ExportOptions",
    "ExportPlan",
    "ExportResult",
    "PlannedFile",
    "RetryPolicy",
    "Token",
    "UploadError",
    "VerifyError",
    "VerifyReport",
    "export",
    "hub_endpoint",
    "load_tensors",
    "plan_export",
    "publish",
    "read_eval_results",
    "render_model_card",
    "resolve_checkpoint",
    "resolve_token",
    "upload_hf",
    "upload_modelscope",
    "verify_export",
    "write_export",
]
