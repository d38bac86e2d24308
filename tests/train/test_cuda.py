"""What only a CUDA GPU can show: the log-prob kernels in bf16 at the real vocabulary on the GPU, Liger's fused
cross-entropy against them, the sampler on the GPU, and a bf16 FAST-GRPO run there (NCCL process group, FSDP2,
HF engine, checkpoint and resume).

Every test here needs CUDA, so on a CPU machine they skip with that reason; the same code's CPU behaviour is
tested in test_logprobs.py, test_mixed_precision.py and tests/rollout. `benchmarks/gpu_session.sh` runs them
on a lent GPU (benchmarks/RESULTS.md, "On a GPU").
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from fastgrpo.models.kernels import flash_attn_imports, select_attn_implementation
from fastgrpo.rollout.hf import sample_tokens
from fastgrpo.train.logprobs import chunked_logprobs, liger_logprobs
from fastgrpo.train.recipe import train

from .conftest import read_metrics, toy_config

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (these are the GPU paths)")]

VOCAB = 151_936  # Qwen2's vocabulary: what the tiny models hide


def _head_case(tokens: int = 2048, hidden: int = 1536, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """bf16 hidden states and head weights at a 1.5B model's width and the real vocabulary, on the GPU."""
    g = torch.Generator(device="cuda").manual_seed(seed)
    h = torch.randn(tokens, hidden, device="cuda", generator=g).to(torch.bfloat16)
    w = (torch.randn(VOCAB, hidden, device="cuda", generator=g) * 0.05).to(torch.bfloat16)
    targets = torch.randint(0, VOCAB, (tokens,), device="cuda", generator=g)
    return h, w, targets


def _fp32_reference(h: torch.Tensor, w: torch.Tensor, targets: torch.Tensor, t: float, upstream: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p, entropy and the gradients of sum(upstream * log p) with every operation in fp32."""
    h32, w32 = h.float().requires_grad_(), w.float().requires_grad_()
    logsm = torch.log_softmax((h32 @ w32.T) / t, dim=-1)
    logp = logsm.gather(-1, targets[:, None]).squeeze(-1)
    ent = -(logsm.exp() * logsm).sum(-1)
    (upstream * logp).sum().backward()
    return logp.detach(), ent.detach(), h32.grad, w32.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def test_chunked_head_in_bf16_at_the_real_vocabulary_matches_fp32() -> None:
    """The chunked kernel's log-probs, entropy and both gradients in bf16 on the GPU are as close to an all-fp32
    computation as the full-logits path (bf16 logits, then an fp32 log-softmax) that it replaces."""
    h, w, targets = _head_case()
    t = 0.7
    upstream = torch.linspace(-1, 1, h.shape[0], device="cuda")
    ref_logp, ref_ent, ref_gh, ref_gw = _fp32_reference(h, w, targets, t, upstream)

    hc, wc = h.clone().requires_grad_(), w.clone().requires_grad_()
    logp, ent = chunked_logprobs(hc, wc, None, targets, temperature=t, chunk_size=512, with_entropy=True)
    (upstream * logp).sum().backward()

    hf, wf = h.clone().requires_grad_(), w.clone().requires_grad_()
    full = torch.log_softmax((hf @ wf.T).float() / t, dim=-1)  # the `full` method: bf16 logits
    full_logp = full.gather(-1, targets[:, None]).squeeze(-1)
    full_ent = -(full.exp() * full).sum(-1).detach()
    (upstream * full_logp).sum().backward()

    assert logp.dtype == torch.float32 and hc.grad.dtype == torch.bfloat16 and wc.grad.dtype == torch.bfloat16
    err = {"logp": (logp - ref_logp).abs().max().item(), "entropy": (ent - ref_ent).abs().max().item(),
           "grad_h": _rel(hc.grad, ref_gh), "grad_w": _rel(wc.grad, ref_gw)}
    full_err = {"logp": (full_logp - ref_logp).abs().max().item(), "entropy": (full_ent - ref_ent).abs().max().item(),
                "grad_h": _rel(hf.grad, ref_gh), "grad_w": _rel(wf.grad, ref_gw)}
    print(f"chunked vs fp32: {err}; full bf16 logits vs fp32: {full_err}")
    for key, e in full_err.items():
        assert err[key] <= 1.1 * e + 1e-3, (key, err, full_err)
    assert err["grad_h"] < 0.02 and err["grad_w"] < 0.02, err


@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None,
                    reason="liger-kernel is not installed (pip install 'fastgrpo[liger]')")
def test_liger_reference_logprobs_match_the_chunked_kernel() -> None:
    """actor.logprob_method=liger (the no-grad passes) gives the chunked kernel's values at the real vocabulary:
    Liger's own kernel at T=1, the chunked kernel at T != 1 (Liger takes no temperature)."""
    h, w, targets = _head_case(tokens=4096, seed=1)
    with torch.no_grad():
        exact = torch.log_softmax(h.float() @ w.float().T, dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        full = torch.log_softmax((h @ w.T).float(), dim=-1).gather(-1, targets[:, None]).squeeze(-1)
        ours, _ = chunked_logprobs(h, w, None, targets, temperature=1.0, chunk_size=1024)
        theirs = liger_logprobs(h, w, None, targets, temperature=1.0)
        assert theirs.shape == ours.shape and theirs.dtype == torch.float32
        err, full_err = (theirs - exact).abs().max().item(), (full - exact).abs().max().item()
        print(f"T=1: max |liger - chunked| = {(theirs - ours).abs().max().item():.2e}; vs fp32: liger {err:.3e}, "
              f"full bf16 logits {full_err:.3e}")
        assert (theirs - ours).abs().max().item() < 1e-3 and err <= 1.1 * full_err + 1e-3
        cold, _ = chunked_logprobs(h, w, None, targets, temperature=0.6, chunk_size=1024)
        assert torch.equal(liger_logprobs(h, w, None, targets, temperature=0.6), cold)
    with pytest.raises(RuntimeError, match="values only"):
        liger_logprobs(h.clone().requires_grad_(), w, None, targets)


def test_sampler_draws_the_same_tokens_on_the_gpu_as_on_the_cpu() -> None:
    """The counter-based sampler does not depend on the device: a CPU run and a GPU run of the same seed agree
    (the float64 CDF sums can differ in the last bits, which moves a draw only at a boundary)."""
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(64, VOCAB, generator=g) * 3
    seeds = torch.arange(64, dtype=torch.int64) * 7919 + 11
    cpu = sample_tokens(scores, seeds, position=5)
    gpu = sample_tokens(scores.cuda(), seeds.cuda(), position=5).cpu()
    assert (cpu == gpu).float().mean().item() >= 63 / 64, (cpu, gpu)


def test_attention_auto_picks_flash_attn_only_where_it_imports() -> None:
    device = torch.device("cuda")
    expected = "flash_attention_2" if flash_attn_imports() else "sdpa"
    assert select_attn_implementation("auto", device, torch.bfloat16) == expected
    assert select_attn_implementation("auto", device, torch.float32) == "sdpa"


@pytest.mark.slow
def test_bf16_run_on_the_gpu_trains_saves_and_resumes(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """A bf16 FAST-GRPO run on CUDA (one-rank NCCL group, FSDP2 with fp32 master weights, HF engine): finite
    losses, the per-phase peak memory logged, and a resumed run continues from the saved step."""
    settings = {"model.dtype": "bfloat16", "trainer.device": "cuda", "trainer.max_steps": 2,
                "trainer.save_freq": 2}
    run = train(toy_config(tiny_model, toy_data, tmp_path / "out", **settings))
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("actor/pg_loss", "actor/grad_norm", "all/entropy"):
            assert math.isfinite(r[key]), (key, r)
        assert 0 < r["perf/max_memory_rollout_gib"] < 10 and 0 < r["perf/max_memory_update_gib"] < 10, r
    resumed = train(toy_config(tiny_model, toy_data, tmp_path / "out", **{**settings, "trainer.max_steps": 3}))
    assert [r["step"] for r in read_metrics(resumed)] == [1, 2, 3]
