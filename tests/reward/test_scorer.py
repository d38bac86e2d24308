"""RewardScorer: a reusable process pool with per-response timeouts.

These tests start real worker processes (2 at most) and are the slowest of
the reward tests; each keeps its wall time to a few seconds.
"""

from __future__ import annotations

import math
import time

import pytest

from fastgrpo.reward import RewardScorer, grade

T = "<think>r</think> "

NORMAL = [
    (T + r"\boxed{\frac{1}{2}}", "0.5", 1.0),
    (T + r"\boxed{3}", "4", 0.0),
    (T + "The answer is 12.", "12", 1.0),
    (T + r"\boxed{(C)}", "C", 1.0),
    ("no format \\boxed{5}", "5", 1.0),
]

# Slow for sympy and interruptible: the in-worker timer handles these.
SLOW_PYTHON = [
    T + r"\boxed{(x+1)^{2000}}",  # expansion takes ~15 s
    T + r"\boxed{9^{9^{9^{9}}}}",
    T + r"\boxed{2^{2^{2^{2^{2^{2}}}}}}",
    T + r"\boxed{10^{10^{10^{10}}}}",
]


@pytest.fixture(scope="module")
def scorer():
    with RewardScorer(timeout_s=1.0, num_workers=2) as sc:
        yield sc


def test_scores_match_single_process_grade_and_pool_is_reused(scorer):
    responses = [r for r, _, _ in NORMAL] * 4
    golds = [g for _, g, _ in NORMAL] * 4
    res = scorer.score(responses, golds)
    pids = scorer.worker_pids
    assert res.accuracy == [a for _, _, a in NORMAL] * 4
    for i, (r, g) in enumerate(zip(responses, golds, strict=True)):
        assert res.overall[i] == pytest.approx(grade(r, g)["overall"])
        assert res.format[i] == grade(r, g)["format"]
    assert res.timeouts == 0 and res.errors == 0
    res2 = scorer.score(responses[:3], golds[:3])
    assert res2.accuracy == [1.0, 0.0, 1.0]
    assert scorer.worker_pids == pids  # same processes: no re-spawn per call
    assert scorer.score([], []).overall == []


def test_extras_are_passed_per_sample(scorer):
    res = scorer.score(
        [T + r"\boxed{12 cm}", T + r"\boxed{12 cm}"],
        ["B", "B"],
        extras=[{"choices": ["10 cm", "12 cm"]}, None],
    )
    assert res.accuracy == [1.0, 0.0]


def test_soft_timeout_scores_zero_and_keeps_worker(scorer):
    pids = scorer.worker_pids
    responses = [*SLOW_PYTHON[:3], T + r"\boxed{7}"]
    t0 = time.monotonic()
    res = scorer.score(responses, ["1", "1", "1", "7"])
    wall = time.monotonic() - t0
    assert res.timed_out == [True, True, True, False]
    assert res.overall[:3] == [0.0, 0.0, 0.0] and res.accuracy[3] == 1.0
    assert res.timeouts == 3 and res.workers_replaced == 0
    assert scorer.worker_pids == pids
    assert wall < 2 * 1.5 + 2.0  # two rounds of (timeout + grace) at most, plus slack
    m = res.metrics()
    assert m["reward/timeouts"] == 3.0 and m["reward/accuracy"] == pytest.approx(0.25)


def test_validation_errors(scorer):
    with pytest.raises(ValueError):
        scorer.score(["a"], ["1", "2"])
    with pytest.raises(ValueError):
        scorer.score(["a"], ["1"], extras=[{}, {}])


def test_adversarial_batch_of_200_finishes_within_budget(scorer):
    """200 hostile responses, 1 s per-response timeout, 2 workers: bounded, no crash."""
    huge = "+".join(f"\\frac{{{i}}}{{{i + 1}}}x^{{{i}}}" for i in range(3000))
    hostile = [
        T + r"\boxed{" + huge + "}",  # 60 KB of LaTeX
        T + r"\boxed{" + r"\frac{" * 400 + "1" + "}{2}" * 400 + "}",  # deep nesting
        T + r"\boxed{" + "(" * 3000 + "1" + ")" * 3000 + "}",
        T + r"\boxed{" + r"\sqrt{" * 300 + "2" + "}" * 300 + "}",
        T + r"\boxed{" * 5000,  # unbalanced
        T + "{" * 100_000,
        T + r"\boxed{\boxed{\boxed{" * 500 + "}}}" * 500,
        T + "x" * 200_000,  # long answer-less response
        T + "\x00\x01\ufffd" * 1000 + r"\boxed{\x00}",
        T + r"\boxed{\begin{pmatrix}" + "1&" * 5000 + r"\end{pmatrix}}",
        T + r"\boxed{" + "9" * 20_000 + "}",
    ]
    responses: list[str] = []
    golds: list[str] = []
    slow_idx: list[int] = []
    for i in range(200):
        if i % 40 == 0:  # 5 genuinely slow sympy cases (each costs a full timeout)
            slow_idx.append(i)
            responses.append(SLOW_PYTHON[i // 40 % len(SLOW_PYTHON)])
        elif i % 10 == 5:
            responses.append(T + r"\boxed{42}")  # some honest answers in between
        else:
            responses.append(hostile[i % len(hostile)])
        golds.append("42" if i % 10 == 5 else "1")
    timeout_s, workers = 1.0, 2
    t0 = time.monotonic()
    res = scorer.score(responses, golds)
    wall = time.monotonic() - t0
    grace = scorer.grace_s
    worst_case = math.ceil(len(responses) / workers) * (timeout_s + grace)
    assert len(res) == 200
    assert wall < worst_case
    assert wall < 30.0, f"adversarial batch took {wall:.1f}s"
    assert all(res.timed_out[i] for i in slow_idx)
    assert res.timeouts >= len(slow_idx)
    for i in range(200):
        assert math.isfinite(res.overall[i])
        if res.timed_out[i] or res.error_messages[i]:
            assert res.overall[i] == 0.0
    honest = [i for i in range(200) if i % 10 == 5]
    assert sum(res.accuracy[i] for i in honest) >= len(honest) - 2  # allow a straggler on a loaded box
    # the pool is still healthy afterwards
    assert scorer.score([T + r"\boxed{1}"], ["1"]).accuracy == [1.0]


def test_batch_timeout_caps_the_whole_call():
    with RewardScorer(timeout_s=30.0, num_workers=2, batch_timeout_s=2.0) as sc:
        sc.score([T + r"\boxed{1}"], ["1"])  # workers up
        t0 = time.monotonic()
        res = sc.score([SLOW_PYTHON[0]] * 6 + [T + r"\boxed{1}"], ["1"] * 7)
        wall = time.monotonic() - t0
    assert wall < 2.0 + 3.0
    assert res.timeouts >= 6 and all(res.timed_out[:6])
    assert all(v == 0.0 for v in res.overall[:6])


def test_stuck_in_c_worker_is_killed_and_replaced(custom_reward_file):
    spec = f"{custom_reward_file}:length_reward"
    with RewardScorer(reward_function=spec, timeout_s=0.5, grace_s=0.5, num_workers=2) as sc:
        sc.score(["1"], ["1"])
        before = set(sc.worker_pids)
        t0 = time.monotonic()
        res = sc.score(["HANG_IN_C", "1", "SWALLOW", "2", "x", "3"], ["1", "1", "1", "2", "y", "3"])
        wall = time.monotonic() - t0
        assert res.timed_out == [True, False, True, False, False, False]
        assert res.accuracy == [0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
        assert res.workers_replaced == 2
        assert wall < 10.0
        assert len(sc.worker_pids) == 2 and before.isdisjoint(sc.worker_pids)
        # replacements work
        again = sc.score(["5", "6"], ["5", "0"])
        assert again.accuracy == [1.0, 0.0] and again.timeouts == 0


def test_worker_crash_and_bad_outputs_are_errors_not_failures(custom_reward_file):
    spec = f"{custom_reward_file}:length_reward"
    with RewardScorer(reward_function=spec, timeout_s=5.0, num_workers=2, chunk_size=2) as sc:
        res = sc.score(
            ["CRASH", "1", "RAISE", "NO_KEYS", "FLOAT", "2"],
            ["1", "1", "1", "1", "1", "2"],
            extras=[{}, {"choices": ["a", "b"]}, {}, {}, {}, {}],
        )
    assert res.error_messages[0] == "reward worker died"
    assert "ValueError" in (res.error_messages[2] or "")
    assert "overall" in (res.error_messages[3] or "")
    assert res.errors == 3 and res.timeouts == 0
    assert res.overall == [0.0, 1.0, 0.0, 0.0, 0.25, 1.0]
    assert res.extra[1] == {"length": 1.0, "n_choices": 2.0}
    assert res.workers_replaced >= 1
    assert res.metrics()["reward/length"] == pytest.approx(1.0)


def test_inline_mode_matches_pool(scorer):
    responses = [r for r, _, _ in NORMAL] + [SLOW_PYTHON[0]]
    golds = [g for _, g, _ in NORMAL] + ["1"]
    inline = RewardScorer(timeout_s=1.0, num_workers=0)
    a = inline.score(responses, golds)
    b = scorer.score(responses, golds)
    assert a.overall == b.overall and a.timed_out == b.timed_out == [False] * 5 + [True]
    inline.close()


def test_bad_spec_fails_fast():
    with pytest.raises(FileNotFoundError):
        RewardScorer(reward_function="/nonexistent/reward.py:f")


def test_concurrent_calls_are_serialised(scorer):
    import threading

    out: dict[int, list[float]] = {}

    def run(k: int) -> None:
        out[k] = scorer.score([T + rf"\boxed{{{k}}}"] * 5, [str(k)] * 5).accuracy

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert out == {0: [1.0] * 5, 1: [1.0] * 5, 2: [1.0] * 5}


def test_workers_are_recycled_after_max_tasks():
    with RewardScorer(timeout_s=5.0, num_workers=1, max_tasks_per_worker=3, chunk_size=1) as sc:
        first = sc.worker_pids
        res = sc.score([T + rf"\boxed{{{i}}}" for i in range(7)], [str(i) for i in range(7)])
        assert res.accuracy == [1.0] * 7
        assert res.workers_replaced == 0  # a planned recycle is not a failure
        assert sc.worker_pids != first


def test_worker_start_failure_raises_and_pool_recovers(tmp_path):
    flaky = tmp_path / "flaky.py"
    # imports fine in the parent, fails in a worker process
    flaky.write_text(
        "import multiprocessing\n"
        "if multiprocessing.parent_process() is not None:\n"
        "    raise ImportError('not in workers')\n"
        "def f(inputs):\n"
        "    return [1.0 for _ in inputs]\n"
    )
    sc = RewardScorer(reward_function=f"{flaky}:f", num_workers=1, timeout_s=5.0)
    with pytest.raises(RuntimeError, match="failed to start"):
        sc.score(["a"], ["b"])
    assert sc.worker_pids == []  # closed, not left half-busy
    sc.close()
