"""Pool worker process: loads the reward function once, then scores items on request.

Protocol on a duplex Pipe (parent <-> worker):

* worker -> parent at start: ("ready", pid) or ("fatal", traceback_text)
* parent -> worker: ("task", [(index, item_dict), ...]) or None (exit)
* worker -> parent per item: ("result", index, status, core_dict, extras, error,
  cpu_seconds) with status in {"ok", "timeout", "error"}.

Each item runs under a wall-clock interval timer (setitimer) that raises a
BaseException subclass, so `except Exception` blocks inside math-verify or
sympy cannot swallow it. Code stuck in C that never returns to the
interpreter is the parent's job: it kills and replaces the worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from typing import Any

from fastgrpo.reward.custom import load_reward_function, normalize_reward_output


class SoftTimeout(BaseException):
    """Raised by SIGALRM inside a worker when one item overruns its budget."""


_ARMED = False


def _on_alarm(signum: int, frame: Any) -> None:
    if _ARMED:
        raise SoftTimeout()


def _arm(timeout_s: float) -> None:
    global _ARMED
    _ARMED = True
    # Re-fire every `interval` seconds after the deadline: an exception raised
    # while Python runs a gc callback, a __del__ or a weakref callback is
    # swallowed ("Exception ignored in ..."), so one alarm is not enough.
    interval = min(0.25, max(0.01, timeout_s / 4))
    signal.setitimer(signal.ITIMER_REAL, timeout_s, interval)


def _disarm() -> None:
    """Stop the timer; safe even if an alarm lands while it runs."""
    global _ARMED
    while True:
        try:
            _ARMED = False  # from here on the handler never raises
            signal.setitimer(signal.ITIMER_REAL, 0)
            return
        except SoftTimeout:
            continue


def _run_one(fn: Any, item: dict[str, Any], timeout_s: float | None) -> tuple[str, dict, dict, str | None]:
    try:
        try:
            if timeout_s is not None and timeout_s > 0:
                _arm(timeout_s)
            out = fn([item])
        finally:
            _disarm()
        if not isinstance(out, list | tuple) or len(out) != 1:
            return (
                "error",
                {},
                {},
                f"reward function returned {type(out).__name__} of wrong length for 1 input",
            )
        core, extras = normalize_reward_output(out[0])
        return "ok", core, extras, None
    except SoftTimeout:
        _disarm()
        return "timeout", {}, {}, "timeout"
    except Exception as e:  # a bad sample (incl. RecursionError) must not take the worker down
        return "error", {}, {}, f"{type(e).__name__}: {e}"[:500]


def worker_main(conn: Any, spec: str, fn_kwargs: dict[str, Any], timeout_s: float | None) -> None:
    """Entry point of a pool worker (module-level so every start method can pickle it)."""
    # Ctrl-C and stop signals are the parent's business: a scheduler that signals the whole process
    # group must not kill the scorers of the step the trainer is finishing (the parent ends them).
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
    try:
        fn = load_reward_function(spec, **fn_kwargs)
        if spec.startswith("builtin:"):
            from fastgrpo.reward._preload import warmup

            warmup()  # no-op when the fork server already did it
        signal.signal(signal.SIGALRM, _on_alarm)
        conn.send(("ready", os.getpid()))
    except BaseException:
        with contextlib.suppress(Exception):
            conn.send(("fatal", traceback.format_exc()[-4000:]))
        return
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        _kind, batch = msg
        for index, item in batch:
            cpu0 = time.process_time()
            status, core, extras, err = _run_one(fn, item, timeout_s)
            cpu = time.process_time() - cpu0
            try:
                conn.send(("result", index, status, core, extras, err, cpu))
            except (BrokenPipeError, OSError):
                return
