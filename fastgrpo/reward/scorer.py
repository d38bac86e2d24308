"""Parallel reward scoring with per-response timeouts (`RewardScorer`).

Why a hand-rolled pool instead of multiprocessing.Pool / ProcessPoolExecutor:
a response that sends sympy into a C-level loop cannot be interrupted from
inside, and those pools cannot kill one stuck task (the executor breaks, the
pool hangs). Here each worker owns a pipe; the parent tracks what every
worker is doing and since when, and kills + replaces a worker that overruns
`timeout_s + grace_s`. Inside workers a wall-clock timer handles the common
case (pure-Python sympy loops) without losing the process.

The pool is created once (lazily, or by `__enter__`) and reused across
training steps; `close()` (or leaving the `with` block) shuts it down.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as mp_wait
from typing import Any

from fastgrpo.reward._worker import SoftTimeout, _disarm, _on_alarm, _run_one, worker_main
from fastgrpo.reward.custom import load_reward_function

__all__ = ["RewardScorer", "ScoreResult"]


@dataclass
class ScoreResult:
    """Per-sample scores of one `score()` call, in input order.

    A timed-out or failed sample scores 0 for overall/accuracy/format and is
    counted in `timeouts` / `errors` (its message is in `error_messages`).
    """

    overall: list[float]
    accuracy: list[float]
    format: list[float]
    timed_out: list[bool]
    error_messages: list[str | None]
    extra: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: float = 0.0
    workers_replaced: int = 0
    worker_cpu_s: float = 0.0
    """CPU seconds the scoring itself used (summed over workers; inline: this process)."""

    @property
    def timeouts(self) -> int:
        return sum(self.timed_out)

    @property
    def errors(self) -> int:
        return sum(
            1 for e, t in zip(self.error_messages, self.timed_out, strict=True) if e is not None and not t
        )

    def __len__(self) -> int:
        return len(self.overall)

    def metrics(self, prefix: str = "reward/") -> dict[str, float]:
        """Flat float metrics for the step log."""
        n = len(self.overall)

        def mean(v: Sequence[float]) -> float:
            return float(sum(v) / len(v)) if v else 0.0

        out = {
            f"{prefix}overall": mean(self.overall),
            f"{prefix}accuracy": mean(self.accuracy),
            f"{prefix}format": mean(self.format),
            f"{prefix}timeouts": float(self.timeouts),
            f"{prefix}errors": float(self.errors),
            f"{prefix}workers_replaced": float(self.workers_replaced),
            f"{prefix}score_seconds": float(self.elapsed_s),
            f"{prefix}score_cpu_seconds": float(self.worker_cpu_s),
            f"{prefix}responses_per_s": float(n / self.elapsed_s) if self.elapsed_s > 0 else 0.0,
        }
        keys = sorted({k for d in self.extra for k in d})
        for k in keys:
            vals = [d[k] for d in self.extra if k in d]
            out[f"{prefix}{k}"] = mean(vals)
        return out


class _Worker:
    __slots__ = ("chunk", "conn", "deadline", "done_in_chunk", "proc", "ready", "started", "tasks_done")

    def __init__(self, proc: Any, conn: Any) -> None:
        self.proc = proc
        self.conn = conn
        self.ready = False
        self.started = time.monotonic()
        self.chunk: list[int] = []
        self.done_in_chunk = 0
        self.deadline = math.inf
        self.tasks_done = 0

    @property
    def busy(self) -> bool:
        return self.done_in_chunk < len(self.chunk)

    def current(self) -> int | None:
        return self.chunk[self.done_in_chunk] if self.busy else None


def _shutdown(workers: list[_Worker]) -> None:
    """Stop worker processes (used by close() and by the GC/atexit finalizer)."""
    for w in workers:
        with contextlib.suppress(Exception):
            w.conn.send(None)
    deadline = time.monotonic() + 2.0
    for w in workers:
        w.proc.join(timeout=max(0.0, deadline - time.monotonic()))
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(timeout=2.0)
        with contextlib.suppress(Exception):
            w.conn.close()
    workers.clear()


class RewardScorer:
    """Score responses in a process pool; every response has its own timeout.

    Args mirror the `reward.*` config: `reward_function` (spec string, see
    `load_reward_function`), `template`, `format_weight`, `timeout_s` (per
    response), `num_workers` (0 = score in this process, with the same
    timer when called from the main thread). Extra knobs: `grace_s` (how
    long past `timeout_s` before a worker is killed; default
    max(0.5, timeout_s/2)), `batch_timeout_s` (optional deadline for a whole
    `score()` call; what is left then scores 0 and counts as timed out),
    `max_tasks_per_worker` (recycle workers to bound sympy cache growth),
    `mp_context` (default "forkserver" on POSIX: forking a training process
    that holds threads/CUDA is unsafe), `reward_kwargs` (extra kwargs bound to
    the reward function).

    `score(responses, ground_truths, extras=None)` -> ScoreResult; `extras`
    is an optional per-sample list of dicts merged into each function input
    (e.g. {"choices": [...]}).
    """

    def __init__(
        self,
        reward_function: str = "builtin:math",
        template: str = "think_boxed",
        format_weight: float = 0.1,
        timeout_s: float = 5.0,
        num_workers: int = 2,
        grace_s: float | None = None,
        batch_timeout_s: float | None = None,
        max_tasks_per_worker: int | None = 20000,
        mp_context: str | None = None,
        reward_kwargs: Mapping[str, Any] | None = None,
        chunk_size: int | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.reward_function = reward_function
        self.template = template
        self.format_weight = float(format_weight)
        self.timeout_s = float(timeout_s) if timeout_s and timeout_s > 0 else None
        self.num_workers = max(0, int(num_workers))
        self.grace_s = float(grace_s) if grace_s is not None else max(0.5, 0.5 * (self.timeout_s or 0.0))
        self.batch_timeout_s = batch_timeout_s
        self.max_tasks_per_worker = max_tasks_per_worker
        self.chunk_size = chunk_size
        self.startup_timeout_s = startup_timeout_s
        kw = dict(reward_kwargs or {})
        if reward_function.startswith("builtin:"):
            kw.setdefault("template", template)
            kw.setdefault("format_weight", self.format_weight)
            # The pool enforces timeouts; math-verify's own signal alarms would
            # fight with the worker's timer.
            kw.setdefault("timeout", None)
        self._fn_kwargs = kw
        # Fail fast in the parent on a bad spec (typo, missing file) instead of
        # in every worker.
        self._inline_fn = load_reward_function(reward_function, **kw)
        if mp_context is None:
            mp_context = "forkserver" if os.name == "posix" else "spawn"
        self._ctx = mp.get_context(mp_context)
        if mp_context == "forkserver":
            # Workers forked from a server that already imported math-verify and
            # sympy start in milliseconds, which makes replacing a killed worker
            # cheap. Only takes effect if the fork server is not running yet.
            self._ctx.set_forkserver_preload(["fastgrpo.reward._worker", "fastgrpo.reward._preload"])
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()  # one score() at a time: workers hold per-call state
        self._finalizer = weakref.finalize(self, _shutdown, self._workers)
        self.total_workers_replaced = 0

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> RewardScorer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Spawn the workers now (otherwise the first `score()` does)."""
        if self.num_workers == 0:
            return
        while len(self._workers) < self.num_workers:
            self._workers.append(self._spawn())

    def close(self) -> None:
        """Stop all workers; the scorer can be started again later."""
        _shutdown(self._workers)

    @property
    def worker_pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers if w.proc.pid is not None]

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=worker_main,
            args=(child_conn, self.reward_function, self._fn_kwargs, self.timeout_s),
            daemon=True,
            name="fastgrpo-reward",
        )
        proc.start()
        child_conn.close()
        return _Worker(proc, parent_conn)

    def _kill(self, w: _Worker) -> None:
        with contextlib.suppress(Exception):
            w.proc.kill()
        w.proc.join(timeout=5.0)
        with contextlib.suppress(Exception):
            w.conn.close()

    # ------------------------------------------------------------------ scoring

    def _items(
        self,
        responses: Sequence[str],
        ground_truths: Sequence[Any],
        extras: Sequence[Mapping[str, Any]] | None,
    ) -> list[dict[str, Any]]:
        if len(responses) != len(ground_truths):
            raise ValueError(f"{len(responses)} responses but {len(ground_truths)} ground truths")
        if extras is not None and len(extras) != len(responses):
            raise ValueError(f"{len(responses)} responses but {len(extras)} extras")
        items = []
        for i, (r, g) in enumerate(zip(responses, ground_truths, strict=True)):
            item: dict[str, Any] = {}
            if extras is not None and extras[i]:
                item.update(extras[i])
            item["response"] = r
            item["ground_truth"] = g
            items.append(item)
        return items

    def score(
        self,
        responses: Sequence[str],
        ground_truths: Sequence[Any],
        extras: Sequence[Mapping[str, Any]] | None = None,
    ) -> ScoreResult:
        """Score a batch; never raises for a bad response, never hangs past its budgets.

        Thread-safe in the sense that concurrent calls are serialised.
        """
        with self._lock:
            return self._score_locked(responses, ground_truths, extras)

    def _score_locked(
        self,
        responses: Sequence[str],
        ground_truths: Sequence[Any],
        extras: Sequence[Mapping[str, Any]] | None,
    ) -> ScoreResult:
        t0 = time.monotonic()
        items = self._items(responses, ground_truths, extras)
        n = len(items)
        res = ScoreResult(
            overall=[0.0] * n,
            accuracy=[0.0] * n,
            format=[0.0] * n,
            timed_out=[False] * n,
            error_messages=[None] * n,
            extra=[{} for _ in range(n)],
        )
        if n:
            if self.num_workers == 0:
                self._score_inline(items, res)
            else:
                try:
                    self._score_pool(items, res, t0)
                except BaseException:
                    # A start-up failure or Ctrl-C leaves workers mid-chunk; their
                    # late results must not leak into the next call: start afresh.
                    self.close()
                    raise
        res.elapsed_s = time.monotonic() - t0
        return res

    def _record(
        self, res: ScoreResult, i: int, status: str, core: dict, extras: dict, err: str | None
    ) -> None:
        if status == "ok":
            res.overall[i] = core["overall"]
            res.accuracy[i] = core["accuracy"]
            res.format[i] = core["format"]
            res.extra[i] = extras
        elif status == "timeout":
            res.timed_out[i] = True
            res.error_messages[i] = err or "timeout"
        else:
            res.error_messages[i] = err or "error"

    def _score_inline(self, items: list[dict[str, Any]], res: ScoreResult) -> None:
        import signal

        if self.reward_function.startswith("builtin:"):
            from fastgrpo.reward._preload import warmup

            # First-use imports must not run under the timer: an import cut short
            # by the alarm can leave math-verify half-initialised in this process.
            warmup()
        use_timer = self.timeout_s is not None and threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGALRM, _on_alarm) if use_timer else None
        # Someone else's interval timer (e.g. pytest-timeout) is put back afterwards.
        old_timer = signal.getitimer(signal.ITIMER_REAL) if use_timer else (0.0, 0.0)
        t_start = time.monotonic()
        try:
            for i, item in enumerate(items):
                cpu0 = time.process_time()
                try:
                    status, core, extras, err = _run_one(
                        self._inline_fn, item, self.timeout_s if use_timer else None
                    )
                except SoftTimeout:  # timer fired between items
                    status, core, extras, err = "timeout", {}, {}, "timeout"
                res.worker_cpu_s += time.process_time() - cpu0
                self._record(res, i, status, core, extras, err)
        finally:
            if use_timer:
                _disarm()
                signal.signal(signal.SIGALRM, old)
                if old_timer[0] > 0:
                    left = max(0.001, old_timer[0] - (time.monotonic() - t_start))
                    signal.setitimer(signal.ITIMER_REAL, left, old_timer[1])

    def _chunk(self, n: int) -> int:
        if self.chunk_size:
            return max(1, int(self.chunk_size))
        return max(1, min(16, n // (self.num_workers * 4)))

    def _score_pool(self, items: list[dict[str, Any]], res: ScoreResult, t0: float) -> None:
        self.start()
        n = len(items)
        size = self._chunk(n)
        queue: deque[list[int]] = deque(list(range(s, min(n, s + size))) for s in range(0, n, size))
        remaining = n
        budget = self.timeout_s + self.grace_s if self.timeout_s is not None else math.inf
        batch_deadline = t0 + self.batch_timeout_s if self.batch_timeout_s else math.inf

        def replace(w: _Worker) -> None:
            self._kill(w)
            idx = self._workers.index(w)
            self._workers[idx] = self._spawn()
            res.workers_replaced += 1
            self.total_workers_replaced += 1

        def requeue_rest(w: _Worker, skip_current: bool) -> None:
            start = w.done_in_chunk + (1 if skip_current else 0)
            rest = w.chunk[start:]
            if rest:
                queue.appendleft(rest)
            w.chunk, w.done_in_chunk = [], 0

        while remaining > 0:
            now = time.monotonic()
            # 1. dispatch: keep up to two chunks in flight per worker so a worker
            #    never waits for the parent between chunks (the next one is
            #    already in its pipe)
            for w in list(self._workers):
                while w.ready and queue and len(w.chunk) - w.done_in_chunk < 2 * size:
                    chunk = queue.popleft()
                    was_idle = not w.busy
                    try:
                        w.conn.send(("task", [(i, items[i]) for i in chunk]))
                    except (BrokenPipeError, OSError):
                        queue.appendleft(chunk)
                        requeue_rest(w, skip_current=False)
                        replace(w)
                        break
                    if was_idle:
                        w.chunk, w.done_in_chunk = list(chunk), 0
                        w.deadline = now + budget
                    else:
                        w.chunk.extend(chunk)
            # 2. wait for messages until the nearest deadline
            waits = [w.deadline for w in self._workers if w.busy]
            waits += [w.started + self.startup_timeout_s for w in self._workers if not w.ready]
            waits.append(batch_deadline)
            wait_s = max(0.0, min(waits) - time.monotonic()) if waits else 1.0
            conns = [w.conn for w in self._workers if w.busy or not w.ready]
            ready = mp_wait(conns, timeout=min(wait_s, 5.0)) if conns else []
            by_conn = {id(w.conn): w for w in self._workers}
            for conn in ready:
                w = by_conn.get(id(conn))
                if w is None:
                    continue
                try:
                    while True:
                        msg = w.conn.recv()
                        remaining -= self._handle(w, msg, res, budget)
                        if not w.conn.poll():
                            break
                except (EOFError, OSError):
                    # the worker died (crash, OOM kill): its current item is an error
                    cur = w.current()
                    if cur is not None:
                        self._record(res, cur, "error", {}, {}, "reward worker died")
                        remaining -= 1
                        requeue_rest(w, skip_current=True)
                    elif not w.ready:
                        raise RuntimeError("reward worker exited during start-up") from None
                    replace(w)
            # 3. enforce per-response deadlines: kill and replace stuck workers
            now = time.monotonic()
            for w in list(self._workers):
                if w.busy and now > w.deadline:
                    cur = w.current()
                    assert cur is not None
                    self._record(res, cur, "timeout", {}, {}, f"timeout (worker killed after {budget:.1f}s)")
                    remaining -= 1
                    requeue_rest(w, skip_current=True)
                    replace(w)
                elif not w.ready and now > w.started + self.startup_timeout_s:
                    raise RuntimeError(f"reward worker did not start within {self.startup_timeout_s:.0f}s")
            # 4. whole-batch deadline: everything unfinished scores 0 as a timeout
            if now > batch_deadline and remaining > 0:
                for w in list(self._workers):
                    if w.busy:
                        for i in w.chunk[w.done_in_chunk :]:
                            self._record(res, i, "timeout", {}, {}, "batch timeout")
                            remaining -= 1
                        w.chunk, w.done_in_chunk = [], 0
                        replace(w)
                while queue:
                    for i in queue.popleft():
                        self._record(res, i, "timeout", {}, {}, "batch timeout")
                        remaining -= 1
            # 5. recycle workers that have scored many items (bounded memory)
            if self.max_tasks_per_worker:
                for w in list(self._workers):
                    if w.ready and not w.busy and w.tasks_done >= self.max_tasks_per_worker:
                        with contextlib.suppress(Exception):
                            w.conn.send(None)
                        w.proc.join(timeout=2.0)
                        replace(w)
                        res.workers_replaced -= 1  # a planned recycle is not a failure
                        self.total_workers_replaced -= 1

    def _handle(self, w: _Worker, msg: Any, res: ScoreResult, budget: float) -> int:
        """Apply one worker message; returns how many items it completed."""
        kind = msg[0]
        if kind == "ready":
            w.ready = True
            return 0
        if kind == "fatal":
            raise RuntimeError(f"reward worker failed to start:\n{msg[1]}")
        if kind == "result":
            _, index, status, core, extras, err, cpu = msg
            if w.current() != index:  # stale message from a chunk we gave up on
                return 0
            self._record(res, index, status, core, extras, err)
            res.worker_cpu_s += float(cpu)
            w.done_in_chunk += 1
            w.tasks_done += 1
            w.deadline = time.monotonic() + budget if w.busy else math.inf
            if not w.busy:
                w.chunk, w.done_in_chunk = [], 0
            return 1
        return 0
