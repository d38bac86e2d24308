"""Exception types of the exporter; the CLI maps them to exit codes."""

from __future__ import annotations


class ExportError(ValueError):
    """Bad input a user can fix (missing path, no checkpoints, bad --step): exit code 2.

    The message names the path involved and the fix.
    """


class VerifyError(RuntimeError):
    """The exported folder does not reproduce the checkpoint; nothing was written (exit code 1)."""


class UploadError(RuntimeError):
    """The upload failed (after retries where the error was transient); exit code 1.

    Messages are redacted: they never contain the token.
    """
