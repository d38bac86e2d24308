"""Seconds per GRPO step: fastgrpo vs TRL's `GRPOTrainer`, same tiny model, data and batch.

Why: "faster than the reference" must be a number measured like for like. Both
sides get the demo's warm-started tiny Qwen2, the demo train split through the
same chat template and format prompt, B prompts x G samples per step, the same
completion cap, lr, KL coefficient and step count, one optimizer update per
step, CPU, HF generate. Each side runs in its own subprocess (so neither
inherits the other's threads, caches or accelerate state) and reports the mean
seconds per step after `--warmup` steps. One difference is left on purpose: TRL
scores with a plain boxed-integer match in-process, fastgrpo with its standard
math-verify grader in worker processes (slower, so the ratio is conservative).

    python benchmarks/vs_trl.py                      # both sides, 3 rounds, the median ratio
    python benchmarks/vs_trl.py --side trl --steps 5 # one side only
    python benchmarks/vs_trl.py --shape real         # real vocabulary (151,936), 256-token responses

`--shape real`: the same model class and width as the demo's (Qwen2, hidden 128,
4 layers) but with the Qwen2 vocabulary size, randomly initialized (built once
under runs/bench_real/), so responses run to the 256-token cap and every log-prob
pass meets the real vocabulary: the language-model head then dominates, as it
does at real scale. 4 prompts x 8 samples per step, micro-batches of 8 on both
sides (TRL: gradient accumulation over one generation, `steps_per_generation`
= accumulation steps), 4 steps with the first excluded, 1 round by default. The
rewards of a random model are ~0; both sides still run every pass (GRPO's loss
and backward do not skip zero advantages).
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchSettings:
    model: str = ""
    """Model folder; empty: the demo's default warm-start (trained once, then cached)."""
    data: str = "runs/demo/data/train.jsonl"
    prompts_per_step: int = 16
    samples_per_prompt: int = 8
    max_completion_length: int = 72
    steps: int = 12
    warmup: int = 2
    """Steps excluded from the mean (first-call overheads)."""
    lr: float = 1e-4
    kl_coef: float = 0.01
    threads: int = 2
    seed: int = 1
    micro_batch: int = 0
    """Completions per forward/backward on both sides (0: the whole step's batch at once)."""


REAL_SHAPE = {"prompts_per_step": 4, "samples_per_prompt": 8, "max_completion_length": 256, "steps": 4,
              "warmup": 1, "micro_batch": 8}
"""`--shape real` settings (explicit flags still win)."""
REAL_VOCAB = 151_936
REAL_MODEL_DIR = "runs/bench_real/model"


def build_real_vocab_model(out: Path, vocab_size: int = REAL_VOCAB, seed: int = 0) -> Path:
    """The demo's model class and width with the real vocabulary size, randomly initialized.

    The char tokenizer decodes the ids it knows and drops the others, so both sides can decode any sample.
    """
    import torch
    from transformers import GenerationConfig, Qwen2ForCausalLM

    from fastgrpo.demo.warmstart import WarmStartSettings
    from fastgrpo.models.tiny import build_char_tokenizer, tiny_qwen2_config

    if (out / "config.json").exists():
        return out
    w = WarmStartSettings()
    tok = build_char_tokenizer()
    cfg = tiny_qwen2_config(vocab_size, hidden_size=w.hidden_size, num_layers=w.num_layers, num_heads=w.num_heads,
                            num_kv_heads=w.num_kv_heads, intermediate_size=w.intermediate_size,
                            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                               do_sample=True)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def _prepare(s: BenchSettings) -> BenchSettings:
    """Make sure the model and data exist (the demo's own generators), so both sides read the same files."""
    from fastgrpo.demo import task
    from fastgrpo.demo.warmstart import warm_start

    if s.model == "real":
        s.model = str(build_real_vocab_model(ROOT / REAL_MODEL_DIR))
    if not s.model:
        s.model = str(warm_start())
    if not Path(s.data).exists():
        task.write_splits(Path(s.data).parent)
    s.model, s.data = str(Path(s.model).resolve()), str(Path(s.data).resolve())  # children run from ROOT
    return s


def _load_rows(path: str) -> list[dict[str, Any]]:
    from fastgrpo.data.io import load_table

    return list(load_table(path))


def _completion_text(completion: Any) -> str:
    """TRL passes strings for plain prompts, message lists for conversational ones."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def boxed_reward(completions: list[Any], answer: list[str], **_: Any) -> list[float]:
    """Accuracy (last `\\boxed{}` equals the gold integer) + 0.1 x format, like our default weights."""
    from fastgrpo.demo import task

    out = []
    for c, a in zip(completions, answer, strict=True):
        text = _completion_text(c)
        out.append(float(task.is_correct(text, a)) + 0.1 * float(task.has_format(text)))
    return out


def run_trl(s: BenchSettings) -> dict[str, Any]:
    """TRL GRPOTrainer with one generation and one optimizer update of B x G completions per step."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from fastgrpo.data.prompts import load_format_template
    from fastgrpo.demo.task import FORMAT_PROMPT

    torch.set_num_threads(s.threads)
    rows = _load_rows(s.data)
    template = load_format_template(FORMAT_PROMPT)
    assert template is not None
    ds = datasets.Dataset.from_list(
        [  # conversational prompts: TRL applies the model's chat template
            {
                "prompt": [{"role": "user", "content": template.render(content=r["problem"])}],
                "answer": str(r["answer"]),
            }
            for r in rows
        ]
    )
    tokenizer = AutoTokenizer.from_pretrained(s.model)
    model = AutoModelForCausalLM.from_pretrained(s.model, dtype=torch.float32)
    batch = s.prompts_per_step * s.samples_per_prompt
    micro = s.micro_batch or batch
    out_dir = tempfile.mkdtemp(prefix="vs_trl_")
    args = GRPOConfig(
        output_dir=out_dir,
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        use_vllm=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=s.seed,
        max_steps=s.steps,
        learning_rate=s.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.01,
        max_grad_norm=1.0,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=batch // micro,
        steps_per_generation=batch // micro,
        num_iterations=1,
        num_generations=s.samples_per_prompt,
        max_completion_length=s.max_completion_length,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        beta=s.kl_coef,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",
        dataloader_num_workers=0,
    )

    times: list[float] = []

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.t0 = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter() - self.t0)

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=boxed_reward,
        args=args,
        train_dataset=ds,
        processing_class=tokenizer,
        callbacks=[StepTimer()],
    )
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    lengths = [h.get("completions/mean_length") for h in trainer.state.log_history if "reward" in h]
    return {
        "side": "trl",
        "step_seconds": times,
        "wall_seconds": wall,
        "reward": rewards,
        "mean_length": lengths,
    }


def fastgrpo_overrides(s: BenchSettings, run_root: str) -> list[str]:
    """configs/demo_grpo.yaml with the bench's batch, lengths and steps: one update of B x G per step, no
    online filtering (it would draw extra prompts), no checkpoints or validation."""
    batch = s.prompts_per_step * s.samples_per_prompt
    return [
        f"model.path={s.model}",
        f"data.train_files={s.data}",
        f"data.rollout_batch_size={s.prompts_per_step}",
        f"data.max_response_length={s.max_completion_length}",
        f"data.seed={s.seed}",
        f"rollout.n={s.samples_per_prompt}",
        f"rollout.micro_batch_size={batch}",
        "rollout.engine=hf",
        f"actor.lr={s.lr}",
        f"actor.global_batch_size={batch}",
        f"actor.micro_batch_size={s.micro_batch or batch}",
        "actor.ppo_epochs=1",
        "algorithm.online_filtering=false",
        "algorithm.kl_type=fixed",
        f"algorithm.kl_coef={s.kl_coef}",
        f"trainer.max_steps={s.steps}",
        f"trainer.output_dir={run_root}",
        "trainer.experiment_name=bench",
        "trainer.save_freq=100000",
        "trainer.val_freq=-1",
        "trainer.resume=none",
        "trainer.logger=[jsonl]",
        "trainer.device=cpu",
        f"trainer.seed={s.seed}",
    ]


def run_fastgrpo(s: BenchSettings) -> dict[str, Any]:
    import torch

    torch.set_num_threads(s.threads)
    from fastgrpo.config import load_config
    from fastgrpo.train.recipe import train

    run_root = tempfile.mkdtemp(prefix="vs_fastgrpo_")
    cfg = load_config(ROOT / "configs" / "demo_grpo.yaml", fastgrpo_overrides(s, run_root))
    t0 = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - t0
    times: list[float] = []
    metrics = Path(run_root) / "bench" / "metrics.jsonl"
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            rec = json.loads(line)
            if "time/step" in rec:  # the recipe's own wall time of rollout + scoring + update
                times.append(float(rec["time/step"]))
    note = "per-step times from metrics.jsonl" if times else "wall time / steps (includes model load)"
    if not times:
        times = [wall / max(1, s.steps)] * s.steps
    return {"side": "fastgrpo", "step_seconds": times, "wall_seconds": wall, "note": note}


def _summary(res: dict[str, Any], warmup: int) -> float | None:
    t = res.get("step_seconds") or []
    t = t[warmup:] if len(t) > warmup else t
    return statistics.mean(t) if t else None


def _run_side(side: str, s: BenchSettings) -> dict[str, Any]:
    """Run one side in a fresh interpreter; its last stdout line is the JSON result."""
    cmd = [sys.executable, __file__, "--side", side, "--json", json.dumps(asdict(s))]
    env = {**os.environ, "OMP_NUM_THREADS": str(s.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        return {"side": side, "error": proc.stderr.strip().splitlines()[-5:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", choices=["both", "trl", "fastgrpo"], default="both")
    ap.add_argument("--json", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--repeats", type=int, default=None,
                    help="Rounds of both sides; the median ratio is reported (default: 3, 1 with --shape real).")
    ap.add_argument("--shape", choices=["demo", "real"], default="demo",
                    help="demo: the warm-started demo model; real: its class with vocabulary 151,936, 256-token "
                         "responses (see the module docstring).")
    for f, v in asdict(BenchSettings()).items():
        ap.add_argument(f"--{f.replace('_', '-')}", type=type(v), default=None)
    a = ap.parse_args(argv)
    defaults = {**asdict(BenchSettings()), **(REAL_SHAPE | {"model": "real"} if a.shape == "real" else {})}
    for f, v in defaults.items():
        if getattr(a, f) is None:
            setattr(a, f, v)
    if a.repeats is None:
        a.repeats = 1 if a.shape == "real" else 3
    if a.json:  # child process: run one side, print JSON
        s = BenchSettings(**json.loads(a.json))
        res = run_trl(s) if a.side == "trl" else run_fastgrpo(s)
        print(json.dumps(res))
        return
    s = _prepare(BenchSettings(**{f: getattr(a, f) for f in asdict(BenchSettings())}))
    print(f"settings: {json.dumps(asdict(s))}", flush=True)
    sides = ["trl", "fastgrpo"] if a.side == "both" else [a.side]
    ratios: list[float] = []
    for r in range(a.repeats):
        if a.repeats > 1:
            print(f"round {r + 1}/{a.repeats}", flush=True)
        per_step = {side: _report_side(side, s) for side in sides}
        trl, ours = per_step.get("trl"), per_step.get("fastgrpo")
        if trl and ours:
            ratios.append(trl / ours)
            print(f"ratio trl/fastgrpo: {ratios[-1]:.2f}x", flush=True)
    if len(ratios) > 1:  # TRL's own step time varies by several percent from run to run
        print(f"median ratio over {len(ratios)} rounds: {statistics.median(ratios):.2f}x "
              f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)")


def _report_side(side: str, s: BenchSettings) -> float | None:
    res = _run_side(side, s)
    if "error" in res:
        print(f"{side}: ERROR {res['error']}", flush=True)
        return None
    per_step = _summary(res, s.warmup)
    extra = f" ({res['note']})" if "note" in res else ""
    if res.get("reward"):
        extra += f"; reward first/last {res['reward'][0]:.3f}/{res['reward'][-1]:.3f}"
    if res.get("mean_length") and res["mean_length"][-1] is not None:
        extra += f", completion length last {res['mean_length'][-1]:.1f}"
    print(f"{side}: {per_step:.3f} s/step over {len(res['step_seconds'])} steps "
          f"(first {s.warmup} excluded), wall {res['wall_seconds']:.1f} s{extra}", flush=True)
    return per_step

if __name__ == "__main__":
    main()
