"""Rollout throughput of the project's vLLM engine beside raw vLLM, and weight-sync cost.

    make test-vllm   # once: builds .venv-vllm (vLLM's CPU build from ../shared/wheels)
    .venv-vllm/bin/python benchmarks/vllm_rollout.py [--prompts 16] [--n 8] [--max-new-tokens 128] [--rounds 3] [--repeats 3]

Same prompts, same sampling (temperature 1, n samples each, max_new_tokens), same weights, two baselines:
* A, raw vLLM: `vllm.LLM(model=<folder>)` and one `LLM.generate` call with `SamplingParams(n=...)`, as a user
  would write it, no log-probs;
* B, raw vLLM doing the work training asks of the engine: the same call with `logprobs=0` and
  `logprobs_mode="processed_logprobs"` (each sampled token's log-prob after temperature, for TIS and the
  rollout/actor mismatch metric);
* the engine: `VLLMRolloutEngine` (external_launcher, dummy load) doing what a training step does: a weight
  sync from the actor, then `generate` (one seeded request per sample); with log-probs (compared to B, the
  like-for-like ratio, and to A, which prices the log-probs too) and without (`return_logprobs=False`,
  compared to A); tokens/s counts the sync too, so the ratio prices the engine's whole per-step overhead;
* HF: `HFRolloutEngine` (the embedded default, log-probs on) on the same prompts.
Each side runs in its own process (vLLM state does not leak between them): a warm-up call on the full batch,
then --repeats timed calls (median); rounds alternate the order and medians over rounds are printed. All
vLLM sides run eagerly (the engine's CPU default) with the same KV cache size.
Then weight-sync seconds per update for the tiny model and a 0.5B-shaped one (vocabulary 151,936, width 896,
24 layers, random init, bf16), median of --sync-repeats syncs after a warm-up sync.
On the GPU path the engine's sync differs (bucketed `load_weights`); these CPU figures price the CPU path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")

KV_CACHE_BYTES = 256 * 2**20
TINY = {"hidden_size": 128, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2, "intermediate_size": 256}
SIDES = ("raw", "raw_lp", "engine", "engine_nolp", "hf")
QWEN05B = {"hidden_size": 896, "num_layers": 24, "num_heads": 14, "num_kv_heads": 2, "intermediate_size": 4864}


def prompt_texts(k: int) -> list[str]:
    return [f"{3 * i + 1}+{7 * i + 2}*{i % 5 + 1}=" for i in range(k)]


def build_tiny(path: Path) -> Path:
    from fastgrpo.models.tiny import build_tiny_qwen2

    return build_tiny_qwen2(path, seed=0, **TINY)


def build_05b(path: Path) -> Path:
    """A Qwen2.5-0.5B-shaped model (tied embeddings, random init) with the char tokenizer; only its
    shapes matter for the sync."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from fastgrpo.models.tiny import build_char_tokenizer

    tok = build_char_tokenizer()
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None, rope_theta=1e6, use_sliding_window=False, dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device("cpu"):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


# ----------------------------------------------------------------------------------- one side (child)


def run_side(side: str, model_path: str, args: argparse.Namespace) -> dict:
    """One side, in its own process: a warm-up call on the full batch (compiles and allocates what the
    timed calls use, the same for every side), then `--repeats` timed calls; medians are returned."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(model_path)
    ids = [tok(t)["input_ids"] for t in prompt_texts(args.prompts)]
    calls: list[dict] = []
    if side in ("raw", "raw_lp"):
        import vllm

        lp = side == "raw_lp"  # the same log-probs the engine returns: the sampled token's, after temperature
        llm = vllm.LLM(model=model_path, dtype="float32", seed=0, max_model_len=256, enforce_eager=True,
                       kv_cache_memory_bytes=KV_CACHE_BYTES, **({"logprobs_mode": "processed_logprobs"} if lp else {}))
        sp = vllm.SamplingParams(n=args.n, temperature=1.0, max_tokens=args.max_new_tokens, seed=1, detokenize=False,
                                 **({"logprobs": 0} if lp else {}))
        reqs = [{"prompt_token_ids": p} for p in ids]
        llm.generate(reqs, sp, use_tqdm=False)  # warm-up
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = llm.generate(reqs, sp, use_tqdm=False)
            calls.append({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                          "tokens": sum(len(c.token_ids) for r in res for c in r.outputs)})
        return _medians(side, calls)
    from fastgrpo.rollout import PromptInput, SamplingParams, make_engine

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    prompts = [PromptInput(p, uid=i) for i, p in enumerate(ids)]
    params = SamplingParams(n=args.n, temperature=1.0, max_new_tokens=args.max_new_tokens, seed=1)
    if side == "hf":
        eng = make_engine("hf", model, tok, micro_batch_size=args.prompts * args.n, return_logprobs=True)
        eng.generate(prompts, params)
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = eng.generate(prompts, params)
            calls.append({"seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
                          "tokens": sum(res.lengths)})
        return _medians(side, calls)
    eng = make_engine("vllm", model, tok, max_model_len=256, seed=0, dtype="float32", model_path=model_path,
                      kv_cache_memory_bytes=KV_CACHE_BYTES, return_logprobs=side == "engine")
    eng.generate(prompts, params)  # warm-up
    for _ in range(args.repeats):
        with torch.no_grad():  # a training update: the sync sends changed weights
            for p in model.parameters():
                p.mul_(1.001)
        t0, c0 = time.perf_counter(), time.process_time()
        eng.sync_weights(model)
        t1 = time.perf_counter()
        res = eng.generate(prompts, params)
        t2 = time.perf_counter()
        calls.append({"seconds": t2 - t0, "sync_seconds": t1 - t0, "generate_seconds": t2 - t1,
                      "tokens": sum(res.lengths), "cpu_seconds": time.process_time() - c0})
    return _medians(side, calls)


def _medians(side: str, calls: list[dict]) -> dict:
    """Median tokens/s (wall, per CPU second, generate only) over one process's timed calls."""
    out: dict = {"side": side, "tokens": statistics.median(c["tokens"] for c in calls),
                 "seconds": statistics.median(c["seconds"] for c in calls),
                 "tps": statistics.median(c["tokens"] / c["seconds"] for c in calls),
                 "cpu_tps": statistics.median(c["tokens"] / c["cpu_seconds"] for c in calls),
                 "cpu_seconds": statistics.median(c["cpu_seconds"] for c in calls)}
    if "generate_seconds" in calls[0]:
        out["gen_tps"] = statistics.median(c["tokens"] / c["generate_seconds"] for c in calls)
    return out


def run_sync(model_path: str, args: argparse.Namespace, dtype: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fastgrpo.rollout import make_engine

    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, dtype))
    eng = make_engine("vllm", model, tok, max_model_len=256, seed=0, dtype=dtype, model_path=model_path,
                      kv_cache_memory_bytes=64 * 2**20)
    times = []
    for _ in range(args.sync_repeats):
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(1.001)
        t0 = time.perf_counter()
        eng.sync_weights(model)
        times.append(time.perf_counter() - t0)
    params = sum(p.numel() for p in model.parameters())
    return {"sync_seconds": statistics.median(times), "all": times, "params": params}


# --------------------------------------------------------------------------------------- parent


def child(argv: list[str]) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), *argv]
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_LOGGING_LEVEL": "WARNING"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per side and round (median)")
    ap.add_argument("--sync-repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-05b", action="store_true", help="only the tiny model (the 0.5B sync needs ~3 GB)")
    ap.add_argument("--side", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--dtype", default="float32", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:  # a child: one measurement, JSON on the last line
        result = (run_sync(args.model, args, args.dtype) if args.side == "sync"
                  else run_side(args.side, args.model, args))
        print(json.dumps(result))
        return

    common = ["--prompts", str(args.prompts), "--n", str(args.n), "--max-new-tokens", str(args.max_new_tokens),
              "--threads", str(args.threads), "--sync-repeats", str(args.sync_repeats), "--repeats", str(args.repeats)]
    with tempfile.TemporaryDirectory() as tmp:
        tiny = str(build_tiny(Path(tmp) / "tiny"))
        runs: dict[str, list[dict]] = {s: [] for s in SIDES}
        for r in range(args.rounds):
            order = list(SIDES) if r % 2 == 0 else [*reversed(SIDES[:-1]), SIDES[-1]]
            for side in order:
                res = child([*common, "--side", side, "--model", tiny])
                runs[side].append(res)
                print(f"round {r + 1} {side}: {res['tokens']:.0f} tokens, {res['tps']:.0f} tok/s, "
                      f"{res['cpu_tps']:.0f} tok/CPU-s (medians of {args.repeats} calls)", flush=True)
        tps = {s: statistics.median(x["tps"] for x in v) for s, v in runs.items()}
        cpu = {s: statistics.median(x["cpu_tps"] for x in v) for s, v in runs.items()}
        gen_only = {s: statistics.median(x["gen_tps"] for x in runs[s]) for s in ("engine", "engine_nolp")}
        tiny_sync = child([*common, "--side", "sync", "--model", tiny, "--dtype", "float32"])
        big = None
        if not args.skip_05b:
            big_path = str(build_05b(Path(tmp) / "qwen05b"))
            big = child([*common, "--side", "sync", "--model", big_path, "--dtype", "bfloat16"])
    print()
    print(f"workload: {args.prompts} prompts x {args.n} samples, max_new_tokens {args.max_new_tokens}, "
          f"temperature 1; tiny Qwen2 {TINY} fp32; {args.threads} threads; medians of {args.rounds} rounds")
    print("                                         wall clock                   per CPU second")
    for label, side, base in (
        ("raw vLLM, no log-probs (baseline A)", "raw", "raw"),
        ("raw vLLM, sampled log-probs (baseline B)", "raw_lp", "raw_lp"),
        ("engine sync + generate, log-probs vs B", "engine", "raw_lp"),
        ("engine sync + generate, log-probs vs A", "engine", "raw"),
        ("engine sync + generate, none vs A", "engine_nolp", "raw"),
        ("HF engine generate (log-probs) vs A", "hf", "raw"),
    ):
        print(f"{label:<42} {tps[side]:7.0f} tok/s  {tps[side] / tps[base]:.2f}x   "
              f"{cpu[side]:7.0f} tok/CPU-s  {cpu[side] / cpu[base]:.2f}x")
    print(f"{'engine generate only, log-probs vs B':<42} {gen_only['engine']:7.0f} tok/s  "
          f"{gen_only['engine'] / tps['raw_lp']:.2f}x")
    print(f"{'engine generate only, none vs A':<42} {gen_only['engine_nolp']:7.0f} tok/s  "
          f"{gen_only['engine_nolp'] / tps['raw']:.2f}x")
    print(f"weight sync, tiny ({tiny_sync['params'] / 1e6:.2f}M params, fp32): {tiny_sync['sync_seconds']:.3f} s/update")
    if big is not None:
        print(f"weight sync, 0.5B-shaped ({big['params'] / 1e6:.0f}M params, bf16): {big['sync_seconds']:.2f} s/update "
              f"(each: {', '.join(f'{t:.2f}' for t in big['all'])})")


if __name__ == "__main__":
    main()
