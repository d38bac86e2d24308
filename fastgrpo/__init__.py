"""fastgrpo: FAST-GRPO training, evaluation and export for fast-slow thinking models."""

__version__ = "0.1.0"
