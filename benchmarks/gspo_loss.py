"""Cost of `algorithm.policy_loss: gspo` against the default token-level PPO clip, measured in the same run.

    python benchmarks/gspo_loss.py                      # 64 responses x 4,096 tokens, bf16 log-probs, CPU
    python benchmarks/gspo_loss.py --device cuda --responses 256

Times `total_loss` (policy term + per-sample KL, loss_agg_mode seq-mean-token-mean) forward + backward on the
same random log-probs for both policy losses and prints GSPO / PPO. Only the loss is timed: the log-prob pass
before it (the vocabulary-sized part, 151,936 for Qwen) is the same for both, so the ratio shows what GSPO
adds to a step. Log-probs are drawn in [-11.9, 0] (log 1/151,936 .. 0) as bf16, the dtype the actor computes
them in under mixed precision. Median of --repeats runs; the machine's load is part of the noise.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from fastgrpo.algo.loss import total_loss


def _time(kind: str, logp: torch.Tensor, old: torch.Tensor, ref: torch.Tensor, adv: torch.Tensor,
          mask: torch.Tensor, beta: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats + 1):  # the first run warms up
        x = logp.detach().clone().requires_grad_(True)
        if x.is_cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss, _ = total_loss(x, old, adv, mask, ref_log_prob=ref, kl_coef=beta, clip_ratio_low=3e-4,
                             clip_ratio_high=4e-4, loss_agg_mode="seq-mean-token-mean", policy_loss=kind)
        loss.backward()
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--responses", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=4096, help="Longest response; lengths are uniform in [1, it].")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    n, t = a.responses, a.tokens
    old = -torch.rand(n, t, generator=g) * 11.9
    logp = (old + 0.01 * torch.randn(n, t, generator=g)).to(torch.bfloat16).to(a.device)
    ref = (old + 0.01 * torch.randn(n, t, generator=g)).to(torch.bfloat16).to(a.device)
    old = old.to(torch.bfloat16).to(a.device)
    lengths = torch.randint(1, t + 1, (n,), generator=g)
    mask = (torch.arange(t)[None, :] < lengths[:, None]).to(a.device)
    adv = torch.randn(n, generator=g).to(a.device)
    beta = torch.full((n,), 0.01, device=a.device)
    ppo = _time("ppo", logp, old, ref, adv, mask, beta, a.repeats)
    gspo = _time("gspo", logp, old, ref, adv, mask, beta, a.repeats)
    print(f"total_loss fwd+bwd, {n} x {t} bf16 log-probs on {a.device} (median of {a.repeats}):")
    print(f"  ppo  {ppo * 1e3:8.2f} ms   (baseline)")
    print(f"  gspo {gspo * 1e3:8.2f} ms   {gspo / ppo:.2f}x ppo")


if __name__ == "__main__":
    main()
