"""Package layering: lower packages never import upper ones (checked in a fresh interpreter)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    """Every module loaded after running `code` in a fresh interpreter."""
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("code", "forbidden"),
    [
        # loading a config that names benchmarks used to import fastgrpo.eval (the one upward arrow)
        ("from fastgrpo.config import load_config; load_config(None, ['eval.benchmarks=[gsm8k, text]'])",
         ("fastgrpo.eval", "fastgrpo.train", "fastgrpo.export", "fastgrpo.cli")),
        ("import fastgrpo.run_dir", ("fastgrpo.eval", "fastgrpo.train", "fastgrpo.export", "torch")),
        ("import fastgrpo.models.loader", ("fastgrpo.eval", "fastgrpo.train", "fastgrpo.export")),
    ],
)
def test_lower_layers_do_not_import_upper_ones(code: str, forbidden: tuple[str, ...]) -> None:
    loaded = _modules_after(code)
    bad = sorted(m for m in loaded if m.split(".")[0] in forbidden or m.startswith(forbidden))
    assert not bad, f"{code} loads {bad}"
