"""KL to the frozen reference and the per-group KL coefficient (SPEC step 8).

Per-token estimators of KL(pi || pi_ref), with d = logp - ref_logp:

* k1:              d
* abs:             |d|
* mse / k2:        0.5 * d^2
* low_var_kl / k3: exp(-d) - (-d) - 1, i.e. exp(ref - logp) - (ref - logp) - 1,
                   computed with the log-ratio clamped to [-20, 20] and the
                   result clamped to [0, 10] (k3 is non-negative in exact
                   arithmetic; the clamp removes float rounding below 0 and
                   bounds the gradient of rare outlier tokens, as verl does).

Coefficient per group g (broadcast to its samples):

* fixed:                 kl_coef
* group_accuracy_based:  kl_min_coef + (kl_max_coef - kl_min_coef) * acc_g
  (SPEC default: solved groups stay close to the reference, hard groups may
  explore). `direction="inverse"` gives kl_min + (kl_max - kl_min) * (1 - acc_g).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fastgrpo.algo._utils import as_bool_tensor, as_float_tensor, check_group_shape, masked_mean

__all__ = ["group_kl_coef", "kl_penalty"]

KL_PENALTIES = ("low_var_kl", "k3", "k1", "kl", "abs", "mse", "k2")
KL_TYPES = ("group_accuracy_based", "fixed")


def kl_penalty(
    log_prob: torch.Tensor, ref_log_prob: torch.Tensor, kl_penalty: str = "low_var_kl"
) -> torch.Tensor:
    """Per-token KL estimate, same shape as the inputs, in float32.

    Why: the loss needs a per-token penalty that is cheap (only sampled-token
    log-probs) and, for k3, unbiased and low-variance. Names follow the config
    (`low_var_kl`, `k1`, `abs`, `mse`) with the aliases `k3`, `kl`, `k2`.
    """
    logp = log_prob.float()
    ref = ref_log_prob.float()
    if kl_penalty in ("k1", "kl"):
        return logp - ref
    if kl_penalty == "abs":
        return (logp - ref).abs()
    if kl_penalty in ("mse", "k2"):
        return 0.5 * (logp - ref).square()
    if kl_penalty in ("low_var_kl", "k3"):
        log_ratio = (ref - logp).clamp(-20.0, 20.0)
        return (torch.exp(log_ratio) - log_ratio - 1.0).clamp(0.0, 10.0)
    raise ValueError(f"kl_penalty must be one of {KL_PENALTIES}, got {kl_penalty!r}")


def group_kl_coef(
    accuracy: torch.Tensor | Sequence,
    kl_type: str = "group_accuracy_based",
    kl_coef: float = 1e-2,
    kl_min_coef: float = 1e-3,
    kl_max_coef: float = 1e-2,
    mask: torch.Tensor | None = None,
    direction: str = "accuracy",
) -> torch.Tensor:
    """Per-sample KL coefficient [B, G] from per-sample accuracy [B, G].

    Why: FAST's difficulty-aware KL lets the policy drift further from the
    reference on some groups than on others; the coefficient of a group is
    linear in its accuracy between kl_min_coef and kl_max_coef. `direction`
    picks which end gets the strong constraint ("accuracy": solved groups get
    kl_max_coef - the SPEC default; "inverse": failed groups get kl_max_coef).
    """
    acc = as_float_tensor(accuracy)
    check_group_shape("accuracy", acc)
    if kl_type == "fixed":
        return torch.full_like(acc, float(kl_coef))
    if kl_type != "group_accuracy_based":
        raise ValueError(f"kl_type must be one of {KL_TYPES}, got {kl_type!r}")
    if direction not in ("accuracy", "inverse"):
        raise ValueError(f"direction must be 'accuracy' or 'inverse', got {direction!r}")
    m = None if mask is None else as_bool_tensor(mask)
    acc_g = masked_mean(acc, m, dim=1).clamp(0.0, 1.0)
    if direction == "inverse":
        acc_g = 1.0 - acc_g
    coef = kl_min_coef + (kl_max_coef - kl_min_coef) * acc_g
    return coef[:, None].expand_as(acc).clone()
