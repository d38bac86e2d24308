"""Per-question sample metrics beyond avg@n: unbiased pass@k and majority-vote maj@k.

Why both: avg@n (the reference aggregation) measures one sample; pass@k says what a
verifier-in-the-loop would get from k tries, maj@k what self-consistency gets. Pure
functions over a question's sample records (`correct`, `extracted`, `sample_idx`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["maj_at_k", "pass_at_k", "vote_key"]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one question with `c` correct among `n` samples: 1 - C(n-c, k) / C(n, k).

    (Chen et al. 2021.) Exact integer binomials, so no rounding for any n.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


_CORRECT = "\x00correct"


def vote_key(record: dict[str, Any]) -> str | None:
    """What one sample votes for: the correct answer (all correct samples agree, being equal to the gold),
    else its extracted answer with whitespace removed; None (no vote) without an answer, or when the
    sample stopped inside its thinking span and was graded wrong for it."""
    if record.get("correct"):
        return _CORRECT
    if record.get("truncated_thinking"):
        return None
    ext = record.get("extracted")
    if ext is None:
        return None
    key = "".join(str(ext).split())
    return key or None


def maj_at_k(records: Sequence[dict[str, Any]], k: int) -> float:
    """1.0 when the majority answer of the first `k` samples (by sample index) is correct, else 0.0.

    Votes are `vote_key`s; a tie goes to the answer first given (lowest sample index), the
    usual `Counter.most_common` order; no votes at all is wrong.
    """
    if not 1 <= k <= len(records):
        raise ValueError(f"need 1 <= k <= {len(records)}, got {k}")
    first = sorted(records, key=lambda r: int(r.get("sample_idx", 0)))[:k]
    counts: dict[str, int] = {}
    for r in first:
        key = vote_key(r)
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return 0.0
    best = max(counts.values())
    winner = next(key for key, v in counts.items() if v == best)
    return 1.0 if winner == _CORRECT else 0.0
