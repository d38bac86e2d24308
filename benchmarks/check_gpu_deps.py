"""What `pip install 'fastgrpo[gpu]'` resolves to on PyPI: pip's own dry-run resolution, no GPU needed.

    python benchmarks/check_gpu_deps.py            # PyPI, as a user gets it
    python benchmarks/check_gpu_deps.py --local    # with this machine's pip configuration instead

Runs `pip install --dry-run --ignore-installed --report - '.[gpu]'` (nothing is installed; pip downloads
only metadata) and prints the vLLM, torch and transformers versions it would install, next to the newest
vLLM on the index. The goal (issue 15): the newest vLLM, not an old one pip backtracked to because our
transformers range excluded the new ones.

Why the flags: `--ignore-installed` resolves as in a fresh environment (what is already installed here must
not satisfy a requirement). By default pip runs with `PIP_CONFIG_FILE=/dev/null` (no configuration file is
read) and without `PIP_FIND_LINKS` / `PIP_EXTRA_INDEX_URL` / `PIP_CONSTRAINT` / `PIP_INDEX_URL`, and with
`--index-url https://pypi.org/simple`: a machine's own pip settings (here a constraints file capping torch
at the wheel on disk, and local extra indexes) would otherwise change the answer. `--local` keeps them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYPI = "https://pypi.org/simple"
WATCH = ("vllm", "torch", "transformers", "tokenizers", "torchvision", "flash-attn", "liger-kernel")


def _pip_env(local: bool) -> dict[str, str]:
    env = dict(os.environ)
    if not local:
        env["PIP_CONFIG_FILE"] = os.devnull  # pip reads no configuration file at all
        for key in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_INDEX_URL", "PIP_NO_INDEX"):
            env.pop(key, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def newest_on_index(name: str, local: bool) -> str | None:
    """`pip index versions NAME`'s newest release (what the resolver should reach)."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", name]
    if not local:
        cmd += ["--index-url", PYPI]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_pip_env(local), timeout=600)
    m = re.search(rf"^{re.escape(name)} \(([^)]+)\)", out.stdout, re.M)
    return m.group(1) if m else None


def resolve(extra: str, local: bool) -> dict[str, str]:
    """{project name: version} of everything `pip install '.[extra]'` would install."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
           f"{REPO}[{extra}]"]
    if not local:
        cmd += ["--index-url", PYPI]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_pip_env(local), timeout=1800)
    if out.returncode != 0:
        sys.exit(f"pip could not resolve .[{extra}] (exit {out.returncode}):\n{out.stderr[-4000:]}")
    report = json.loads(out.stdout)
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="use this machine's pip configuration, not plain PyPI")
    parser.add_argument("--extra", default="gpu", help="extra(s) to resolve, e.g. gpu or gpu,liger")
    args = parser.parse_args()
    where = "this machine's pip configuration" if args.local else PYPI
    print(f"resolving '.[{args.extra}]' with pip {_pip_version()} (Python {sys.version.split()[0]}, "
          f"{sys.platform}) against {where}")
    t0 = time.monotonic()
    newest = newest_on_index("vllm", args.local)
    resolved = resolve(args.extra, args.local)
    print(f"resolved {len(resolved)} packages in {time.monotonic() - t0:.0f} s")
    for name in WATCH:
        if name in resolved:
            print(f"  {name:14s} {resolved[name]}")
    print(f"newest vllm on the index: {newest}")
    ok = newest is not None and resolved.get("vllm") == newest
    print(f"vllm_is_newest: {'yes' if ok else 'no'}")
    return 0 if ok else 1


def _pip_version() -> str:
    import pip

    return pip.__version__


if __name__ == "__main__":
    sys.exit(main())
