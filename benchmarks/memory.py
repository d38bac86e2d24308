"""Peak memory of the log-prob pass at the real vocabulary: fastgrpo's chunked head vs full logits vs TRL.

Why: the trainer's memory at real sizes is dominated by the language-model head
(one fp32 copy of the logits of 2 x 2,304 positions over 151,936 entries is
2.8 GB), and a tiny demo vocabulary hides that completely. This runs, on CPU,
one reference forward (no grad) and one actor forward + backward over the same
tokens with three log-prob paths, on the same randomly initialized model:

- `fastgrpo`: `response_token_stats` with the chunked head (the trainer's
  default; the actor pass also computes the token entropy, as training does);
- `plain`: full logits, then gather + fp32 log-softmax (`logprobs_from_logits`,
  the trainer's path before the chunked head);
- `trl`: the model's logits for the completion positions (`logits_to_keep`),
  then TRL's `selective_log_softmax` (imported from trl) and, for the actor pass,
  TRL's `entropy_from_logits` under no_grad (TRL logs the entropy too).

Model: Qwen2 with vocabulary 151,936, hidden 896 (Qwen2.5-0.5B's width, tied
embeddings), `--layers` decoder layers; micro-batch 2 x (256 prompt + 2,048
response) tokens; fp32 on CPU by default (`--dtype bfloat16` for the compute dtype), sdpa attention.
`--device cuda` builds and runs both models on the GPU and measures with the caching allocator's
counters (`torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`, minus what is allocated
before the passes); a variant that runs out of GPU memory is reported as such.

How memory is measured: each variant runs in its own subprocess (no allocator
state or caches shared). After the models and inputs are built, the process
resets its peak resident set size (Linux: write 5 to /proc/self/clear_refs) and
reads VmRSS; after the passes it reads VmHWM (the peak since the reset). The
pass's peak is VmHWM - that baseline: what the log-prob passes add on top of the
resident models (activations, logits, gradients). Large tensors are mmap'd by
glibc and returned on free, so RSS follows live tensor memory. Each variant runs
the passes twice and reports the faster time.

    python benchmarks/memory.py                 # all three variants, ratios, `ratio_vs_trl: X`
    python benchmarks/memory.py --layers 4 --chunk-size 512
    python benchmarks/memory.py --variants fastgrpo --hidden 1536 --dtype bfloat16 --gradient-checkpointing 1
    python benchmarks/memory.py --device cuda --dtype bfloat16 --hidden 1536 --layers 28 --heads 12 \
        --intermediate 8960 --tie-embeddings 0 --batch 4 --prompt 512 --response 8192 --gradient-checkpointing 1
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("fastgrpo", "plain", "trl")


@dataclass
class Settings:
    vocab: int = 151_936
    hidden: int = 896
    layers: int = 2
    heads: int = 14
    kv_heads: int = 2
    intermediate: int = 4_864
    batch: int = 2
    prompt: int = 256
    response: int = 2_048
    chunk_size: int = 1024
    temperature: float = 1.0
    threads: int = 2
    repeats: int = 2
    seed: int = 0
    dtype: str = "float32"
    """Parameter (and compute) dtype of both models: float32 or bfloat16."""
    gradient_checkpointing: int = 0
    """1: recompute each decoder layer in the actor's backward (as model.gradient_checkpointing)."""
    tie_embeddings: int = 1
    """1: the head shares the embedding (Qwen2.5-0.5B); 0: its own head (DeepSeek-R1-Distill-Qwen-1.5B)."""
    device: str = "cpu"
    """cpu (peak RSS) or cuda (torch.cuda.max_memory_allocated; the CPU figures are RSS)."""
    variants: str = ",".join(VARIANTS)


def _status_kib(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if m is None:
        raise RuntimeError(f"/proc/self/status has no {field}: this benchmark needs Linux")
    return int(m.group(1))


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _build(s: Settings) -> tuple[Any, Any, Any]:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from fastgrpo.train.batch import pack

    cfg = Qwen2Config(vocab_size=s.vocab, hidden_size=s.hidden, intermediate_size=s.intermediate,
                      num_hidden_layers=s.layers, num_attention_heads=s.heads, num_key_value_heads=s.kv_heads,
                      max_position_embeddings=s.prompt + s.response + 8, tie_word_embeddings=bool(s.tie_embeddings),
                      use_sliding_window=False, bos_token_id=None, eos_token_id=0, pad_token_id=0)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(s.seed)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[s.dtype]
    dev = torch.device(s.device)
    with dev:  # built on the device: a 1.5B model's random init on the CPU alone takes minutes
        actor = Qwen2ForCausalLM(cfg).to(dtype)
    actor.train()
    if s.gradient_checkpointing:
        actor.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    with dev:
        ref = Qwen2ForCausalLM(cfg).to(dtype)
    ref.load_state_dict(actor.state_dict())
    ref.eval().requires_grad_(False)
    g = torch.Generator().manual_seed(s.seed + 1)
    prompts = torch.randint(1, s.vocab, (s.batch, s.prompt), generator=g).tolist()
    responses = torch.randint(1, s.vocab, (s.batch, s.response), generator=g).tolist()
    return actor, ref, pack(prompts, responses, 0, dev)


def _passes(variant: str, s: Settings, actor: Any, ref: Any, packed: Any) -> None:
    """One reference forward and one actor forward + backward through `variant`'s log-prob path."""
    import torch

    from fastgrpo.train.batch import response_logprobs, response_token_stats
    from fastgrpo.train.logprobs import HeadOptions

    adv = torch.linspace(-1.0, 1.0, s.batch, device=s.device)[:, None]
    mask = packed.response_mask
    if variant == "trl":
        from trl.trainer.utils import entropy_from_logits, selective_log_softmax

        keep = s.response
        ids = packed.input_ids
        completion = ids[:, -keep:]

        def trl_logps(model: Any, entropy: bool) -> torch.Tensor:
            logits = model(input_ids=ids, attention_mask=packed.attention_mask, logits_to_keep=keep + 1,
                           use_cache=False).logits
            logits = logits[:, :-1, :]  # the last position predicts nothing in the completion
            logps = selective_log_softmax(logits, completion, temperature=s.temperature)
            if entropy:
                with torch.no_grad():
                    entropy_from_logits(logits / s.temperature)
            return logps

        with torch.no_grad():
            ref_lp = trl_logps(ref, False)
        logp = trl_logps(actor, True)
    elif variant == "plain":
        with torch.no_grad():
            ref_lp = response_logprobs(ref, packed, s.temperature, HeadOptions(method="full"))
        logp = response_logprobs(actor, packed, s.temperature, HeadOptions(method="full"))
    else:
        with torch.no_grad():
            ref_lp = response_logprobs(ref, packed, s.temperature, HeadOptions(chunk_size=s.chunk_size))
        logp = response_token_stats(actor, packed, s.temperature,
                                    HeadOptions(chunk_size=s.chunk_size, entropy=True)).logp
    kl = (logp - ref_lp).pow(2)  # the loss is a few [B, T] ops in every variant
    loss = ((-adv * logp + 0.01 * kl) * mask).sum() / mask.sum()
    loss.backward()
    actor.zero_grad(set_to_none=True)


def run_variant(variant: str, s: Settings) -> dict[str, Any]:
    import torch

    torch.set_num_threads(s.threads)
    cuda = s.device == "cuda"
    actor, ref, packed = _build(s)
    times = []
    gc.collect()
    if cuda:  # what the caching allocator hands out, as RSS on the CPU
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**10
    else:
        _reset_peak()
        base = _status_kib("VmRSS")
    for _ in range(s.repeats):
        t0 = time.perf_counter()
        try:
            _passes(variant, s, actor, ref, packed)
        except torch.OutOfMemoryError as e:  # the baselines can run out at these sizes: that is a result
            return {"variant": variant, "oom": str(e).splitlines()[0]}
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        gc.collect()
    peak = torch.cuda.max_memory_allocated() / 2**10 if cuda else _status_kib("VmHWM")
    return {"variant": variant, "baseline_gib": base / 2**20, "peak_gib": peak / 2**20,
            "pass_peak_gib": (peak - base) / 2**20, "seconds": min(times), "all_seconds": times}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", choices=VARIANTS, default=None, help=argparse.SUPPRESS)
    for f, v in asdict(Settings()).items():
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=v)
    a = ap.parse_args(argv)
    s = Settings(**{f: getattr(a, f) for f in asdict(Settings())})
    if a.variant:  # child: one variant, JSON on the last line
        print(json.dumps(run_variant(a.variant, s)))
        return
    logits_gib = s.batch * (s.prompt + s.response) * s.vocab * 4 / 2**30
    print(f"settings: {json.dumps(asdict(s))}")
    where = "CUDA" if s.device == "cuda" else f"CPU, {s.threads} threads"
    print(f"one fp32 copy of the logits: {logits_gib:.2f} GiB; {where}, {s.dtype}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(s.threads), "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    chosen = [v for v in VARIANTS if v in s.variants.split(",")]
    for v in chosen:
        cmd = [sys.executable, __file__, "--variant", v, *[x for f, val in asdict(s).items()
                                                           for x in (f"--{f.replace('_', '-')}", str(val))]]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            print(f"{v}: ERROR (exit {proc.returncode}) {proc.stderr.strip().splitlines()[-3:]}", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        if "oom" in r:
            print(f"{v:9s} out of memory: {r['oom']}", flush=True)
            continue
        results[v] = r
        print(f"{v:9s} pass peak {r['pass_peak_gib']:6.2f} GiB (process peak {r['peak_gib']:6.2f} GiB, models and "
              f"inputs {r['baseline_gib']:.2f} GiB)  time {r['seconds']:6.1f} s  (runs: "
              f"{', '.join(f'{t:.1f}' for t in r['all_seconds'])} s)", flush=True)
    ours = results.get("fastgrpo")
    for name, base, target in (("plain", results.get("plain"), "time target <= 1.15x"),
                               ("trl", results.get("trl"), "peak target <= 0.3x")):
        if ours is None or base is None:
            continue
        print(f"fastgrpo / {name}: peak {ours['pass_peak_gib'] / base['pass_peak_gib']:.3f}x, "
              f"time {ours['seconds'] / base['seconds']:.3f}x ({target}); "
              f"process peak {ours['peak_gib'] / base['peak_gib']:.3f}x")
    if ours is not None and "trl" in results:
        print(f"ratio_vs_trl: {ours['pass_peak_gib'] / results['trl']['pass_peak_gib']:.3f}")
    sys.exit(0 if set(results) == set(chosen) else 1)

if __name__ == "__main__":
    main()
