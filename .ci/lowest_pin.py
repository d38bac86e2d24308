"""Print `NAME==LOW` for each NAME given, LOW being the lower bound pyproject.toml admits for it.

`make test-compat` installs these pins, so the compatibility venv follows pyproject.toml
instead of repeating its numbers. Standard library only: it runs before any venv exists.
`--check NAME...` instead exits 1 unless the running interpreter has exactly those versions
installed (so the compatibility suite cannot silently run on a newer release).
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path


def lowest_pin(name: str, pyproject: Path) -> str:
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    for dep in deps:
        m = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(.*)", dep)
        if m and m.group(1).lower().replace("_", "-") == name.lower().replace("_", "-"):
            low = re.search(r">=\s*([0-9][0-9A-Za-z.+-]*)", m.group(2))
            if low is None:
                raise SystemExit(f"{pyproject}: {dep!r} has no '>=' lower bound")
            return f"{m.group(1)}=={low.group(1)}"
    raise SystemExit(f"{pyproject}: {name} is not in [project].dependencies")


def main(argv: list[str]) -> int:
    root = Path(__file__).resolve().parent.parent
    check = argv[:1] == ["--check"]
    pins = [lowest_pin(n, root / "pyproject.toml") for n in argv[1 if check else 0 :]]
    if not check:
        print(" ".join(pins))
        return 0
    from importlib.metadata import PackageNotFoundError, version

    bad = 0
    for pin in pins:
        name, want = pin.split("==")
        try:
            have = version(name)
        except PackageNotFoundError:
            have = "not installed"
        print(f"{name}: {have} (lowest admitted: {want})")
        bad += have != want
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
