"""A custom reward (loaded as `path.py:function`) that a random tiny model can learn in a few steps."""

from __future__ import annotations


def digit_fraction(inputs: list[dict], **kwargs: object) -> list[dict]:
    """Fraction of response characters that are digits: dense, so GRPO moves it within a few dozen steps."""
    out = []
    for item in inputs:
        text = item["response"]
        frac = sum(ch.isdigit() for ch in text) / max(1, len(text))
        out.append({"overall": frac, "accuracy": float(frac >= 0.5), "format": 0.0})
    return out


def flaky_digit_fraction(inputs: list[dict], **kwargs: object) -> list[dict]:
    """`digit_fraction`, but raises on prompts whose row sets `explode` (a user's function with a bug)."""
    for item in inputs:
        if item.get("explode"):
            raise ValueError(f"cannot score {item['ground_truth']!r}")
    return digit_fraction(inputs)
