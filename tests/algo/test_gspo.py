"""GSPO (`algorithm.policy_loss: gspo`) against the paper's formula and TRL's own loss code, on identical tensors.

TRL's GSPO is not a standalone function: it lives in `GRPOTrainer._compute_loss(self, model, inputs)`. The
test calls that real method (TRL's code, unchanged) on a bare object that carries the attributes the method
reads, with `_get_per_token_logps_and_entropies` returning the test's log-probs instead of a model forward,
so TRL's ratio, clipping, KL and averaging run on exactly the tensors ours get.
"""

from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from fastgrpo.algo.loss import gspo_loss_tokens, policy_loss, total_loss

trl_grpo = pytest.importorskip("trl.trainer.grpo_trainer", reason="trl is a dev dependency (pip install -e .[dev])")


def _tensors(seed: int = 0, n: int = 6, t: int = 9, spread: float = 0.02):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(n, t, generator=g) * 3 - 0.1
    logp = old + spread * torch.randn(n, t, generator=g)
    ref = old + 0.05 * torch.randn(n, t, generator=g)
    lengths = torch.tensor([t, t - 2, 3, t, 1, 5][:n])
    mask = torch.arange(t)[None, :] < lengths[:, None]
    adv = torch.randn(n, generator=g)
    return logp, old, ref, mask, adv


def _paper_gspo(logp, old, adv, mask, low, high):
    """GSPO eq. (5)-(7): J = mean_i min(s_i A_i, clip(s_i, 1-low, 1+high) A_i), s_i = (pi/pi_old)^(1/|y_i|),
    written directly at the sequence level (gradient through s_i), as a loss to minimize."""
    m = mask.float()
    s = torch.exp(((logp - old) * m).sum(-1) / m.sum(-1))
    return -torch.minimum(s * adv, s.clamp(1 - low, 1 + high) * adv).mean()


@pytest.mark.parametrize("spread", [0.0005, 0.02, 0.3])  # ratios inside, around and far outside the clip range
def test_gspo_matches_the_paper_formula_in_value_and_gradient(spread: float) -> None:
    logp, old, _, mask, adv = _tensors(spread=spread)
    low, high = 3e-4, 4e-4
    a = logp.clone().requires_grad_(True)
    ours, _ = policy_loss(a, old, adv, mask, clip_ratio_low=low, clip_ratio_high=high,
                          loss_agg_mode="seq-mean-token-mean", policy_loss="gspo")
    ours.backward()
    b = logp.clone().requires_grad_(True)
    ref = _paper_gspo(b, old, adv, mask, low, high)
    ref.backward()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-8)
    assert a.grad[~mask].abs().max() == 0


def test_gspo_ratio_is_one_value_per_sequence_and_clips_whole_sequences() -> None:
    logp, old, _, mask, adv = _tensors(spread=0.3)
    parts = gspo_loss_tokens(logp, old, adv, 0.01, 0.01, mask)
    ratio, clipped = parts["ratio"], parts["clipped_high"]
    for i in range(mask.shape[0]):
        row = ratio[i][mask[i]]
        torch.testing.assert_close(row, row[0].expand_as(row))
        expected = torch.exp(((logp[i] - old[i])[mask[i]]).mean())
        torch.testing.assert_close(row[0], expected)
        assert clipped[i][mask[i]].all() or not clipped[i][mask[i]].any()
    # a token-level PPO ratio differs per token on the same data
    assert not torch.allclose(ratio[0][mask[0]], torch.exp(logp[0] - old[0])[mask[0]])


class _Accelerator:
    num_processes = 1
    sync_gradients = True

    @staticmethod
    def gather(x: torch.Tensor) -> torch.Tensor:
        return x

    gather_for_metrics = gather

    @staticmethod
    def reduce(x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return x


def _trl_loss(logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, adv: torch.Tensor,
              beta: float, low: float, high: float) -> torch.Tensor:
    """TRL's GRPOTrainer._compute_loss with loss_type `grpo` (the GSPO paper's setup per TRL's docs) and
    importance_sampling_level `sequence`."""
    n, t = logp.shape
    trainer = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logp, torch.zeros_like(logp), None),
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="sequence",
        beta=beta, args=SimpleNamespace(use_bias_correction_kl=False, delta=None), loss_type="grpo",
        epsilon_low=low, epsilon_high=high, use_vllm=False, vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1, _entropy_bonus_enabled=False,
        aux_loss_enabled=False, accelerator=_Accelerator(), _metrics={"train": defaultdict(list)},
    )
    inputs = {
        "prompt_ids": torch.zeros(n, 1, dtype=torch.long), "prompt_mask": torch.ones(n, 1, dtype=torch.long),
        "completion_ids": torch.zeros(n, t, dtype=torch.long), "completion_mask": mask.long(),
        "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref,
    }
    return trl_grpo.GRPOTrainer._compute_loss(trainer, None, inputs)


@pytest.mark.parametrize(("beta", "spread", "low", "high"), [
    (0.0, 0.0005, 3e-4, 4e-4), (0.0, 0.3, 3e-4, 4e-4), (0.04, 0.02, 3e-4, 4e-4), (0.04, 0.3, 0.2, 0.28),
])
def test_gspo_matches_trl_sequence_importance_sampling(beta: float, spread: float, low: float, high: float) -> None:
    logp, old, ref, mask, adv = _tensors(seed=3, spread=spread)
    a = logp.clone().requires_grad_(True)
    ours, metrics = total_loss(a, old, adv, mask, ref_log_prob=ref, kl_coef=beta, kl_penalty="low_var_kl",
                               use_kl_loss=beta > 0, clip_ratio_low=low, clip_ratio_high=high,
                               clip_ratio_dual=3.0, loss_agg_mode="seq-mean-token-mean", policy_loss="gspo")
    ours.backward()
    b = logp.clone().requires_grad_(True)
    theirs = _trl_loss(b, old, ref, mask, adv, beta, low, high)
    theirs.backward()
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-8)
    if spread == 0.3:
        assert metrics["pg_clipfrac"] > 0  # the comparison covered clipped sequences


def test_gspo_in_bf16_at_real_vocabulary_length_scale() -> None:
    """bf16 log-probs of long answers (4,096 tokens): the sequence mean stays finite and matches fp32."""
    g = torch.Generator().manual_seed(7)
    n, t = 4, 4096
    old = (-torch.rand(n, t, generator=g) * 11.9).to(torch.bfloat16)  # log(1/151,936) ~ -11.9
    logp = (old.float() + 0.01 * torch.randn(n, t, generator=g)).to(torch.bfloat16).requires_grad_(True)
    mask = torch.ones(n, t, dtype=torch.bool)
    adv = torch.tensor([1.0, -1.0, 0.5, -0.5])
    loss, m = policy_loss(logp, old, adv, mask, 3e-4, 4e-4, loss_agg_mode="seq-mean-token-mean", policy_loss="gspo")
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logp.grad.float()).all()
    ref = _paper_gspo(logp.detach().float(), old.float(), adv, mask, 3e-4, 4e-4)
    torch.testing.assert_close(loss.float(), ref, rtol=1e-4, atol=1e-6)
    assert m["ratio_max"] < 1.01


def test_ppo_default_is_unchanged_and_unknown_kind_is_named() -> None:
    logp, old, _, mask, adv = _tensors(spread=0.3)
    default, _ = policy_loss(logp, old, adv, mask)
    explicit, _ = policy_loss(logp, old, adv, mask, policy_loss="ppo")
    assert torch.equal(default, explicit)
    with pytest.raises(ValueError, match="policy_loss must be one of"):
        policy_loss(logp, old, adv, mask, policy_loss="grpo")


def test_gspo_with_tis_weights_and_a_masked_response() -> None:
    """TIS weights scale each token's GSPO term; a response masked out (mask_truncated) adds nothing."""
    logp, old, _, mask, adv = _tensors(spread=0.02)
    w = torch.rand(mask.shape, generator=torch.Generator().manual_seed(1)) + 0.5
    kept = mask.clone()
    kept[0] = False
    a = logp.clone().requires_grad_(True)
    loss, _ = total_loss(a, old, adv, kept, is_weights=w, use_kl_loss=False, clip_ratio_low=3e-4,
                         clip_ratio_high=4e-4, loss_agg_mode="seq-mean-token-mean", policy_loss="gspo")
    loss.backward()
    assert a.grad[0].abs().max() == 0
    parts = gspo_loss_tokens(logp, old, adv, 3e-4, 4e-4, kept)
    per_seq = [(parts["loss"][i] * w[i])[kept[i]].mean() for i in range(1, mask.shape[0])]
    torch.testing.assert_close(loss, torch.stack(per_seq).mean())
