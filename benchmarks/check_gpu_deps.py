"""What `pip install 'fastgrpo[gpu]'` resolves to on PyPI: pip's own dry-run resolution, no GPU needed.

    python benchmarks/check_gpu_deps.py            # PyPI, as a user gets it
    python benchmarks/check_gpu_deps.py --local    # with this machine's pip configuration instead

Runs `pip install --dry-run --ignore-installed --report - '.[gpu]'` (nothing is installed; pip downloads
only metadata) and prints the vLLM, torch and transformers versions it would install, next to the newest
vLLM on the index. The goal (issue 15): the newest vLLM, not an old one pip backtracked to because our
transformers range excluded the new ones. Each newer release that was not picked is resolved on its own,
to tell "our requirements exclude it" (a failure) from "nobody can install it" (a broken release).

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


def releases_on_index(name: str, local: bool) -> list[str]:
    """`pip index versions NAME`: every release, newest first."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", name]
    if not local:
        cmd += ["--index-url", PYPI]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_pip_env(local), timeout=600)
    m = re.search(r"^Available versions: (.+)$", out.stdout, re.M)
    return [v.strip() for v in m.group(1).split(",")] if m else []


def resolve(requirement: str, local: bool) -> tuple[dict[str, str] | None, str]:
    """({project name: version} that `pip install REQUIREMENT` would install, or None; pip's last error line)."""
    cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
           requirement]
    if not local:
        cmd += ["--index-url", PYPI]
    out = subprocess.run(cmd, capture_output=True, text=True, env=_pip_env(local), timeout=1800)
    if out.returncode != 0:
        errors = [line for line in out.stderr.splitlines() if line.startswith("ERROR")]
        return None, (errors[-1] if errors else out.stderr[-500:])
    report = json.loads(out.stdout)
    return {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in report["install"]}, ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--local", action="store_true", help="use this machine's pip configuration, not plain PyPI")
    parser.add_argument("--extra", default="gpu", help="extra(s) to resolve, e.g. gpu or gpu,liger")
    args = parser.parse_args()
    where = "this machine's pip configuration" if args.local else PYPI
    print(f"resolving '.[{args.extra}]' with pip {_pip_version()} (Python {sys.version.split()[0]}, "
          f"{sys.platform}) against {where}")
    t0 = time.monotonic()
    releases = releases_on_index("vllm", args.local)
    resolved, error = resolve(f"{REPO}[{args.extra}]", args.local)
    if resolved is None:
        print(f"pip could not resolve .[{args.extra}]: {error}")
        return 1
    print(f"resolved {len(resolved)} packages in {time.monotonic() - t0:.0f} s")
    for name in WATCH:
        if name in resolved:
            print(f"  {name:14s} {resolved[name]}")
    got = resolved.get("vllm")
    newer = releases[: releases.index(got)] if got in releases else releases[:1]
    print(f"newest vllm on the index: {releases[0] if releases else None}")
    # A newer release we did not get: is it our requirements, or can nobody install it? Resolve it alone.
    blocked_by_us = []
    for version in newer:
        alone, why = resolve(f"vllm=={version}", args.local)
        verdict = "installable on its own: our requirements exclude it" if alone else f"not installable by anyone: {why}"
        print(f"  vllm {version}: {verdict}")
        if alone:
            blocked_by_us.append(version)
    ok = got is not None and not blocked_by_us
    print(f"vllm_is_newest_installable: {'yes' if ok else 'no'} (resolved {got})")
    return 0 if ok else 1


def _pip_version() -> str:
    import pip

    return pip.__version__


if __name__ == "__main__":
    sys.exit(main())
