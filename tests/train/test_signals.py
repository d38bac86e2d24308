"""StopRequest: a signal on any one rank stops every rank at the same step boundary."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fastgrpo.train.dist import DistInfo
from fastgrpo.train.signals import StopRequest

ONE = DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def test_a_signal_is_recorded_not_raised_and_handlers_are_restored() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    with StopRequest() as stop:
        assert stop.agreed(ONE) == 0
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs at the next bytecode of the main thread
        os.kill(os.getpid(), signal.SIGUSR1)  # later signals keep the first one
        time.sleep(0.01)
        assert stop.agreed(ONE) == signal.SIGTERM
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_second_ctrl_c_stops_at_once_but_not_an_echo_of_the_first() -> None:
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # torchrun's forwarded copy arrives within milliseconds
        time.sleep(0.01)
        assert stop.signum == signal.SIGINT
        time.sleep(1.0)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)
    with StopRequest(allow_immediate=False) as stop:  # several ranks: never an exception mid-collective
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1.1)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        assert stop.signum == signal.SIGINT


def _rank(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    info = DistInfo(rank=rank, world_size=2, local_rank=rank, device=torch.device("cpu"))
    seen = []
    with StopRequest(allow_immediate=False) as stop:
        for step in range(1, 6):
            seen.append(stop.agreed(info))
            if rank == 1 and step == 3:  # only rank 1 is told, in the middle of "step 3"
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.05)
    Path(out, f"rank{rank}").write_text(",".join(map(str, seen)))
    dist.destroy_process_group()


def test_only_one_rank_signalled_still_stops_both_after_the_same_step(tmp_path: Path) -> None:
    mp.start_processes(_rank, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=2, start_method="spawn")
    expected = ",".join(["0", "0", "0", str(int(signal.SIGUSR1)), str(int(signal.SIGUSR1))])
    assert (tmp_path / "rank0").read_text() == expected
    assert (tmp_path / "rank1").read_text() == expected
