"""Data-parallel evaluation: N processes, each with its own engine, split the questions; rank 0 reports.

Why not `torch.distributed` collectives: each rank's engine may start its own distributed
world (vLLM tensor parallel), which must not find ours already in the default process group.
The ranks only need a barrier and one broadcast, so they talk through the torchrun agent's
TCP store (`MASTER_ADDR:MASTER_PORT`, as `init_process_group(init_method="env://")` would),
under a key prefix of their own. `fastgrpo eval --nproc N` re-runs the same command under
`torch.distributed.run`; launching with `torchrun` directly works the same.

Each rank generates `items[rank::world]` of every benchmark and appends to its own
`generations.rank<r>.jsonl`; rank 0 merges the shards into `generations.jsonl` (also any
left by a killed run, at the start) and writes the reports from the merged file. Samples
keep their seeds (a question's engine uid and seed do not depend on which rank runs it), so
N processes give the results of one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from fastgrpo.log import get_logger

log = get_logger("eval.parallel")

T = TypeVar("T")

WAIT = timedelta(days=7)
"""How long a rank waits for the others (the slowest shard's generation time)."""


@dataclass
class DataParallel:
    rank: int
    world: int
    store: Any = None
    """A `torch.distributed.Store` shared by the ranks (None only when world == 1)."""
    _step: int = 0

    def shard(self, items: Sequence[T]) -> list[T]:
        return list(items[self.rank :: self.world])

    def _key(self, name: str) -> str:
        self._step += 1
        return f"{self._step}:{name}"

    def barrier(self, name: str = "barrier") -> None:
        if self.world == 1:
            return
        key = self._key(name)
        self.store.set(f"{key}/{self.rank}", "1")
        self.store.wait([f"{key}/{r}" for r in range(self.world)], WAIT)

    def broadcast(self, obj: Any, name: str = "broadcast") -> Any:
        """Rank 0's JSON-able `obj` on every rank."""
        if self.world == 1:
            return obj
        key = self._key(name)
        if self.rank == 0:
            self.store.set(key, json.dumps(obj))
            return obj
        self.store.wait([key], WAIT)
        return json.loads(self.store.get(key).decode("utf-8"))


def from_env() -> DataParallel | None:
    """The data-parallel group of a `torchrun` launch (WORLD_SIZE > 1), else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    host, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true"
    store = dist.TCPStore(
        host, port, world, is_master=rank == 0 and not agent_store, timeout=WAIT, wait_for_workers=False
    )
    return DataParallel(rank, world, dist.PrefixStore("fastgrpo_eval", store))


def assign_devices(dp: DataParallel, per_rank: int = 1) -> None:
    """Give rank r the GPUs [r * per_rank, (r + 1) * per_rank) of the visible ones (before CUDA starts).

    Why: every rank holds its own engine (`per_rank` = the engine's tensor-parallel size); without
    this all ranks would pile onto GPU 0. No GPUs (CPU eval): nothing to do.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        devices = [d for d in visible.split(",") if d.strip()]
    else:
        import torch

        devices = [str(i) for i in range(torch.cuda.device_count())]
    if not devices:
        return
    mine = devices[dp.rank * per_rank : (dp.rank + 1) * per_rank]
    if len(mine) < per_rank:
        raise RuntimeError(
            f"data-parallel eval: {dp.world} processes x {per_rank} GPUs each need {dp.world * per_rank} GPUs, "
            f"{len(devices)} visible; lower --nproc (or the tensor-parallel size)"
        )
    os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(mine)


def command_line(ctx: Any, drop: Sequence[str] = ()) -> list[str]:
    """The options a click context was given on the command line, as argv (to re-run the command)."""
    argv: list[str] = []
    for param in ctx.command.params:
        name = param.name
        source = ctx.get_parameter_source(name)  # an enum of the click copy Typer uses: compare by name
        if name in drop or getattr(source, "name", None) not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params[name]
        flag = param.opts[0]
        if getattr(param, "is_flag", False):
            if value:
                argv.append(flag)
        elif getattr(param, "multiple", False):
            for v in value or ():
                argv += [flag, str(v)]
        elif value is not None:
            argv += [flag, str(value)]
    return argv


ARGV_ENV = "FASTGRPO_EVAL_ARGV"
"""The `fastgrpo eval` arguments of a `--nproc` launch, as JSON (torchrun's own parser would read
abbreviated options such as `--n` as its own, so they do not travel on its command line)."""


def launch(args: Sequence[str], nproc: int) -> int:
    """Run `fastgrpo eval ARGS` in `nproc` processes under torch.distributed.run; its exit status."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        "-m",
        "fastgrpo.eval",
    ]
    log.info("data-parallel eval: %d processes: fastgrpo eval %s", nproc, " ".join(args))
    return subprocess.call(cmd, env={**os.environ, ARGV_ENV: json.dumps(list(args))})
