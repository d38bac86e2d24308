"""Stop requests (Ctrl-C, SIGTERM, SIGUSR1) that every rank honours at the same step boundary.

Why a flag and not an exception: SLURM, Kubernetes and cloud preemption send SIGTERM
(SLURM can send SIGUSR1 ahead of the time limit) to every process, and `torchrun`
forwards what it gets to its workers, but not at the same instant. An exception
raised wherever each rank happens to be would leave the ranks in different
collectives (a hang or an abort). The handler only records the signal; at the
start of every step the ranks all-reduce the flag, so all of them finish the same
step, save one checkpoint together and exit with `EXIT_STOPPED`.

In a single process a second Ctrl-C (a second or more after the first) raises
`KeyboardInterrupt` at once: the step in progress is abandoned and the last finished one
saved. Under torchrun a terminal's Ctrl-C reaches each worker twice (directly, and
forwarded by torchrun), and an exception mid-collective would hang the other ranks, so
there every further signal is only recorded.
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastgrpo.train.dist import DistInfo

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)
EXIT_STOPPED = 75
"""Exit status of a run stopped by a signal after saving its checkpoint: EX_TEMPFAIL of sysexits.h
("temporary failure, try again"); a scheduler's requeue logic can key on it."""


class StopRequest:
    """Install with `with StopRequest() as stop:`; `stop.agreed(info)` is a collective."""

    def __init__(self, allow_immediate: bool = True) -> None:
        self.signum: int = 0
        self.allow_immediate = allow_immediate
        self._first_at = 0.0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():  # signal.signal only works there
            for sig in STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self.signum and signum == signal.SIGINT and self.allow_immediate and now - self._first_at >= 1.0:
            raise KeyboardInterrupt  # the impatient second Ctrl-C
        if not self.signum:
            self.signum, self._first_at = signum, now

    def agreed(self, info: DistInfo) -> int:
        """The signal any rank received (0: none). Every rank must call it at the same point."""
        from fastgrpo.train.dist import all_reduce_max_int  # torch: not at CLI start-up

        return all_reduce_max_int(self.signum, info)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
