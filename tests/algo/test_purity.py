"""`fastgrpo.algo` is pure tensor math: it imports torch, the standard library and itself, nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import fastgrpo.algo

ALGO = Path(fastgrpo.algo.__file__).parent


def _imported_roots(path: Path) -> set[str]:
    """Top-level package of every import in the file, function-level imports included."""
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_algo_imports_only_torch_the_standard_library_and_itself() -> None:
    files = sorted(ALGO.glob("*.py"))
    assert len(files) >= 10  # the package itself was found
    bad = {}
    for f in files:
        roots = _imported_roots(f)
        outside = {r for r in roots if r not in sys.stdlib_module_names and r not in ("torch", "__future__")}
        outside -= {"fastgrpo"}
        deep = [n.module for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.ImportFrom)
                and n.module and n.module.startswith("fastgrpo.") and not n.module.startswith("fastgrpo.algo")]
        if outside or deep:
            bad[f.name] = sorted(outside) + deep
    assert not bad, f"algo/ must import only torch and the standard library: {bad}"


def test_the_checker_sees_a_third_party_import(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("import math\n\ndef f():\n    import numpy as np\n    from PIL import Image\n")
    assert _imported_roots(f) == {"math", "numpy", "PIL"}


def test_from_algo_import_difficulty_is_the_module() -> None:
    from fastgrpo.algo import difficulty

    assert difficulty.__name__ == "fastgrpo.algo.difficulty"
    assert callable(difficulty.difficulty)
