"""Fixtures for reward tests: small custom reward-function files written on the fly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

CUSTOM_SOURCE = '''
import os
import time


def length_reward(inputs, bonus=0.0):
    """Scores by response length; special inputs misbehave on purpose."""
    out = []
    for item in inputs:
        r = item["response"]
        if r == "HANG_IN_C":
            sum(range(10**13))  # a C-level loop: the SIGALRM handler never runs
        if r == "SWALLOW":
            while True:  # catches every exception, including the worker's timeout
                try:
                    time.sleep(0.05)
                except BaseException:
                    pass
        if r == "CRASH":
            os._exit(3)
        if r == "RAISE":
            raise ValueError("bad sample")
        if r == "NO_KEYS":
            out.append({"score": 1.0})
            continue
        if r == "FLOAT":
            out.append(0.25)
            continue
        acc = 1.0 if r.strip() == str(item["ground_truth"]).strip() else 0.0
        out.append({"overall": acc + bonus, "accuracy": acc, "format": 1.0, "length": float(len(r)),
                    "n_choices": float(len(item.get("choices", [])))})
    return out


def compute_score(inputs):
    return [{"overall": 0.5, "accuracy": 0.5} for _ in inputs]
'''


@pytest.fixture(scope="session")
def custom_reward_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("custom_reward") / "my_reward.py"
    path.write_text(textwrap.dedent(CUSTOM_SOURCE))
    return path
