"""Reward-function loading: `builtin:math`, `builtin:reference`, or `path/to/file.py:function`.

Signature of a reward function (EasyR1's batch form)::

    def my_reward(inputs: list[dict], **kwargs) -> list[dict]:
        # each input: {"response": str, "ground_truth": str | list[str], **extras}
        # extras are whatever the trainer passes per sample, e.g. "choices",
        # "response_length", "think_in_prompt", "data_source".
        return [{"overall": float, "accuracy": float, "format": float, ...}, ...]

"overall" and "accuracy" are required; "format" defaults to 0.0; any other
numeric keys are kept and reported (ScoreResult.extra). A bare float per
sample is also accepted and used as both overall and accuracy. The pool calls
the function with one input at a time so each response gets its own timeout.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastgrpo.reward.math_grader import grade

__all__ = ["RewardFn", "builtin_math_reward", "load_reward_function", "normalize_reward_output"]

RewardFn = Callable[[list[dict[str, Any]]], list[Any]]


def builtin_math_reward(
    inputs: Sequence[Mapping[str, Any]],
    template: str = "think_boxed",
    format_weight: float = 0.1,
    mode: str = "math_verify",
    timeout: int | None = 5,
    max_answer_chars: int = 1000,
) -> list[dict[str, float]]:
    """The built-in reward: `grade` on each input (per-sample extras override defaults).

    Why: one batch-signature entry point shared by the pool, custom-function
    users who want to wrap it, and single-process baselines.
    """
    out = []
    for inp in inputs:
        out.append(
            grade(
                str(inp["response"]),
                inp["ground_truth"],
                template=inp.get("template", template),
                format_weight=float(inp.get("format_weight", format_weight)),
                choices=inp.get("choices"),
                mode=inp.get("mode", mode),
                think_in_prompt=bool(inp.get("think_in_prompt", False)),
                timeout=timeout,
                max_answer_chars=max_answer_chars,
            )
        )
    return out


def _import_from_file(path: str, attr: str) -> Any:
    full = os.path.abspath(os.path.expanduser(path))
    if not os.path.isfile(full):
        raise FileNotFoundError(f"reward function file not found: {path}")
    name = "fastgrpo_user_reward_" + hashlib.sha1(full.encode()).hexdigest()[:12]
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, full)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import reward function file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
    if not hasattr(module, attr):
        raise AttributeError(f"{path} has no function {attr!r}")
    return getattr(module, attr)


def load_reward_function(spec: str, **kwargs: Any) -> RewardFn:
    """Resolve a `reward.reward_function` spec to a batch reward function.

    * `builtin:math` - math-verify + multiple choice + format (the default);
    * `builtin:reference` - the PAPO reference rule for accuracy;
    * `path/to/file.py:function` (EasyR1 style; `:compute_score` is assumed
      when the function part is omitted);
    * `package.module:function` - an importable module.

    `kwargs` are bound to the function (e.g. template, format_weight for the
    built-ins). Why a spec string: it can be shipped to pool workers and
    re-imported there, so user functions need not be picklable.
    """
    spec = spec.strip()
    if spec.startswith("builtin:"):
        which = spec.split(":", 1)[1]
        if which == "math":
            return functools.partial(builtin_math_reward, **kwargs)
        if which == "reference":
            return functools.partial(builtin_math_reward, **{**kwargs, "mode": "reference"})
        raise ValueError(f"unknown builtin reward function {spec!r} (builtin:math, builtin:reference)")
    if ".py" in spec:
        path, _, attr = spec.rpartition(".py")
        path = path + ".py"
        attr = attr.lstrip(":") or "compute_score"
        fn = _import_from_file(path, attr)
    elif ":" in spec:
        mod, _, attr = spec.partition(":")
        fn = getattr(importlib.import_module(mod), attr)
    else:
        raise ValueError(
            f"reward function spec must be 'builtin:NAME', 'file.py:function' or 'module:function', got {spec!r}"
        )
    if not callable(fn):
        raise TypeError(f"{spec} is not callable")
    return functools.partial(fn, **kwargs) if kwargs else fn


def normalize_reward_output(value: Any) -> tuple[dict[str, float], dict[str, float]]:
    """One function output -> ({"overall","accuracy","format"}, extras).

    Non-finite values become 0.0 so one bad sample cannot poison the batch.
    """

    def fin(x: Any) -> float:
        try:
            f = float(x)
        except (TypeError, ValueError):
            return 0.0
        return f if math.isfinite(f) else 0.0

    if isinstance(value, Mapping):
        if "overall" not in value or "accuracy" not in value:
            raise KeyError(
                f"reward function output must contain 'overall' and 'accuracy', got keys {sorted(value)}"
            )
        core = {
            "overall": fin(value["overall"]),
            "accuracy": fin(value["accuracy"]),
            "format": fin(value.get("format", 0.0)),
        }
        extras = {}
        for k, v in value.items():
            if k in core:
                continue
            if isinstance(v, int | float | bool):
                extras[str(k)] = fin(v)
        return core, extras
    f = fin(value)
    return {"overall": f, "accuracy": f, "format": 0.0}, {}
