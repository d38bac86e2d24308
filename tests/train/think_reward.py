"""A custom reward (loaded as `path.py:function`) that reports the `think_in_prompt` flag it was given."""

from __future__ import annotations


def report_think_flag(inputs: list[dict], **kwargs: object) -> list[dict]:
    """accuracy = 1 when the trainer said the chat template opens `<think>`; -1 would mean no flag at all."""
    out = []
    for item in inputs:
        flag = item.get("think_in_prompt")
        value = -1.0 if flag is None else float(bool(flag))
        out.append({"overall": value, "accuracy": value, "format": 0.0})
    return out
