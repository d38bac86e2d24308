"""Imported by the fork server (and each worker) to pay math-verify's start-up cost once.

The first math-verify call in a fresh process imports sympy submodules and
builds the LaTeX grammar (about a second); doing it before a worker reports
"ready" keeps that cost out of the first responses' timeouts. With the
forkserver start method the warm state is inherited by every forked worker,
so replacing a killed worker is cheap.
"""

from __future__ import annotations

import contextlib

_WARM = False

_SAMPLES = (
    ("<think>a</think> \\boxed{\\frac{1}{2}}", "0.5"),
    ("<think>a</think> \\boxed{x^2+1}", "1+x^{2}"),
    ("<think>a</think> \\boxed{\\{1,2\\}}", "[1,2)"),
    ("<think>a</think> \\boxed{x=\\sqrt{3}}", "\\sqrt{3}"),
    ("<think>a</think> The answer is 12.", "12"),
    ("<think>a</think> \\boxed{(B)}", "B"),
)


def warmup() -> None:
    """Run a few representative gradings (math-verify timeouts off: no signals here)."""
    global _WARM
    if _WARM:
        return
    from fastgrpo.reward.math_grader import grade

    for response, gold in _SAMPLES:
        with contextlib.suppress(Exception):
            grade(response, gold, timeout=None)
            grade(response, gold, mode="reference")
    _WARM = True


warmup()
