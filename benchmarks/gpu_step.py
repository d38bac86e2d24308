"""One GPU: seconds and peak memory of a bf16 FAST-GRPO step of the text preset's model, chunked head vs full logits.

Why: the CPU suite trains models of a few million parameters; what a user's first GPU run meets is the
preset's own shape: DeepSeek-R1-Distill-Qwen-1.5B (28 layers, hidden 1,536, untied head over 151,936
tokens, its real tokenizer and chat template), bf16 compute over fp32 master weights, checkpointed
layers, micro-batches of 4 long sequences. This runs `fastgrpo train configs/fast_grpo_text.yaml` on
that architecture with random weights (nothing can be downloaded; a random model writes until the
length cap, so every response is `--response` tokens long and the step is the worst case for its
length), the HF engine (no vLLM on the machine), for each log-prob method in `--methods`, each in its
own process, and prints the per-step times and the per-phase peaks (`perf/max_memory_*_gib`,
torch.cuda.max_memory_allocated) with the ratios against `full` (the named baseline: full logits,
then an fp32 log-softmax).

    python benchmarks/gpu_step.py --tokenizer .gpu/r1            # config + tokenizer files of the preset model
    python benchmarks/gpu_step.py --tokenizer DIR --response 2048 --steps 3 --methods chunked

`--tokenizer` is a folder with config.json, tokenizer.json, tokenizer_config.json and
generation_config.json (tests/real_models.py writes one: `write_model_folder(R1_DISTILL, DIR)`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REPORTED = ("time/step", "time/rollout", "time/update", "perf/max_memory_rollout_gib", "perf/max_memory_update_gib",
            "all/response_length")


def build_random_model(files: Path, out: Path, seed: int = 0) -> Path:
    """The architecture in `files`/config.json with random bf16 weights, plus its tokenizer files."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if (out / "model.safetensors").exists() or (out / "model.safetensors.index.json").exists():
        return out
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(files, tmp)
    torch.manual_seed(seed)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(files), dtype=torch.bfloat16)
    model.save_pretrained(tmp)
    tmp.rename(out)
    return out


def write_prompts(path: Path, n: int = 64) -> Path:
    rows = [{"problem": f"What is {a} times {a + 7}, minus {b}?", "answer": str(a * (a + 7) - b)}
            for a, b in zip(range(11, 11 + n), range(3, 3 + n), strict=True)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def overrides(a: argparse.Namespace, model: Path, data: Path, out: Path, method: str) -> list[str]:
    values: dict[str, Any] = {
        "model.path": model, "data.train_files": data, "data.val_files": "null", "data.max_prompt_length": 256,
        "data.max_response_length": a.response, "data.rollout_batch_size": a.prompts, "rollout.n": a.samples,
        "rollout.engine": "hf", "actor.global_batch_size": a.prompts * a.samples,
        "actor.micro_batch_size": a.micro_batch, "actor.logprob_method": method,
        "algorithm.online_filtering": "false",  # a random model answers nothing right: no group would pass
        "trainer.max_steps": a.steps, "trainer.save_freq": 0, "trainer.val_freq": -1, "trainer.device": "cuda",
        "trainer.logger": "[jsonl]", "trainer.output_dir": out, "trainer.experiment_name": method,
        "reward.num_workers": 4,
    }
    return [f"{k}={v}" for k, v in values.items()]


def run_method(a: argparse.Namespace, model: Path, data: Path, method: str) -> list[dict[str, Any]]:
    out = Path(a.out)
    shutil.rmtree(out / method, ignore_errors=True)
    cmd = [sys.executable, "-m", "fastgrpo", "train", str(ROOT / "configs/fast_grpo_text.yaml"),
           *overrides(a, model, data, out, method)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT,  # its console log and progress bar show where the time goes
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])})
    print(f"{method}: exit {proc.returncode} after {time.perf_counter() - t0:.0f} s", flush=True)
    if proc.returncode != 0:
        return []
    return [json.loads(line) for line in (out / method / "metrics.jsonl").read_text().splitlines()]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokenizer", required=True, help="folder with the model's config and tokenizer files")
    ap.add_argument("--out", default="runs/gpu_step")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--response", type=int, default=256)
    ap.add_argument("--micro-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2, help="the first step is reported but left out of the means")
    ap.add_argument("--methods", default="chunked,full")
    a = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_step.py needs a CUDA GPU")
    out = Path(a.out)
    t0 = time.perf_counter()
    model = build_random_model(Path(a.tokenizer), out / "model")
    data = write_prompts(out / "train.jsonl")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}; model built in "
          f"{time.perf_counter() - t0:.0f} s; {a.prompts} x {a.samples} responses of {a.response} tokens, "
          f"micro-batch {a.micro_batch}", flush=True)
    means: dict[str, dict[str, float]] = {}
    for method in a.methods.split(","):
        rows = run_method(a, model, data, method)
        for r in rows:
            print(f"{method:8s} step {r['step']}: " + ", ".join(f"{k} {r.get(k, float('nan')):.2f}" for k in REPORTED),
                  flush=True)
        later = rows[1:] or rows
        if later:
            means[method] = {k: statistics.mean(r[k] for r in later) for k in REPORTED if k in later[0]}
    if "chunked" in means and "full" in means:
        c, f = means["chunked"], means["full"]
        print(f"chunked / full: update time {c['time/update'] / f['time/update']:.3f}x, update peak "
              f"{c['perf/max_memory_update_gib'] / f['perf/max_memory_update_gib']:.3f}x "
              f"({c['perf/max_memory_update_gib']:.1f} vs {f['perf/max_memory_update_gib']:.1f} GiB)")
    print(json.dumps({"settings": vars(a), "means": means}))
    sys.exit(0 if len(means) == len(a.methods.split(",")) else 1)


if __name__ == "__main__":
    main()
