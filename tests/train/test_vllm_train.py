"""`fastgrpo train ... rollout.engine=vllm` with the real vLLM engine (CPU build): 1 process, 2 processes
(external_launcher over gloo) and tensor_parallel_size=2; weight sync proven by log-probs after every
update, one sync per policy change, fresh weights for validation, `fastgrpo eval --engine vllm`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.conftest import read_metrics, toy_overrides
from tests.vllm_support import build_vllm_tiny, needs_vllm

pytestmark = [*needs_vllm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VLLM = {"rollout.engine": "vllm", "rollout.kv_cache_memory_mb": 64, "data.max_prompt_length": 128}
"""vLLM's context (max_model_len) is the prompt budget plus the answer budget: validation's prompts are longer."""


@pytest.fixture(scope="module")
def vllm_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_vllm_tiny(tmp_path_factory.mktemp("vllm_train") / "model")


LAUNCH_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
"""Set in this process by an in-process engine (external_launcher reads them); a child must not inherit
them, or it would join this process's rendezvous port."""


def run(cmd: list[str], timeout: int = 600) -> None:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_ENV}
    env.update({"OMP_NUM_THREADS": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]


def train_cli(overrides: list[str], nproc: int = 1) -> None:
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
                if nproc > 1 else [sys.executable])
    run([*launcher, "-m", "fastgrpo", "-q", "train", *overrides])


def assert_synced_every_update(rows: list[dict]) -> None:
    """The log-probs vLLM reported for its samples equal the actor's (before its update), every step."""
    for r in rows:
        if "rollout/logprob_max_abs_diff" in r:
            assert r["rollout/logprob_max_abs_diff"] < 1e-4, (r["step"], r["rollout/logprob_max_abs_diff"])
    assert sum("rollout/logprob_max_abs_diff" in r for r in rows) == sum("actor/grad_norm" in r for r in rows)


def test_one_process_learns_with_vllm_and_syncs_once_per_update(vllm_model: Path, toy_data: Path,
                                                                 tmp_path: Path) -> None:
    train_cli(toy_overrides(vllm_model, toy_data, tmp_path, **VLLM, **{
        "trainer.max_steps": 20, "actor.lr": 1e-2, "rollout.n": 8, "actor.global_batch_size": 32}))
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 20
    assert_synced_every_update(rows)
    assert all(r["perf/weight_syncs"] == 1.0 for r in rows)  # each step's policy, sent once
    assert all(r["actor/grad_norm"] > 0 for r in rows)  # the policy did change every step
    first = sum(r["all/reward"] for r in rows[:5]) / 5
    last = sum(r["all/reward"] for r in rows[-5:]) / 5
    assert last > first + 0.1, f"reward did not rise: first {first:.3f}, last {last:.3f}"


def test_refill_rounds_and_validation_reuse_one_sync(vllm_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """Slow2Fast refill rounds sample from the same policy: one sync per step's rollout. Validation after an
    update syncs (fresh weights) and the next step's rollout reuses them (vLLM on CPU never sleeps)."""
    train_cli(toy_overrides(vllm_model, toy_data, tmp_path, **VLLM, **{
        "trainer.max_steps": 3, "algorithm.online_filtering": True, "algorithm.filter_key": "overall",
        "algorithm.max_try_make_batch": 5, "algorithm.dynamic_filter_schedule": "[]",
        "algorithm.filter_low": 0.09, "algorithm.filter_high": 1.0,
        "trainer.val_freq": 1, "data.val_files": str(toy_data), "eval.limit": 4, "eval.max_new_tokens": 6}))
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert any(r["filter/tries"] > 1 for r in rows), "no step needed a refill round; tighten the filter"
    # one sync for step 1's rollout (all its rounds); validation syncs each updated policy; the next step's
    # rollout reuses those weights
    assert [r["perf/weight_syncs"] for r in rows] == [1.0, 0.0, 0.0]
    assert [r["perf/val_weight_syncs"] for r in rows] == [1.0, 1.0, 1.0]
    assert_synced_every_update(rows)
    for r in rows:
        assert 0 < r["val/val/mean_tokens"] <= 6


@pytest.mark.parametrize("extra", [{}, {"rollout.tensor_parallel_size": 2}], ids=["dp2", "tp2"])
def test_two_processes_with_vllm(vllm_model: Path, toy_data: Path, tmp_path: Path, extra: dict) -> None:
    """torchrun --nproc_per_node 2: every rank's vLLM joins the gloo world (external_launcher); with
    tensor_parallel_size=2 both ranks form one vLLM instance. Both train and stay synced; validation is
    split across the ranks and gathered."""
    train_cli(toy_overrides(vllm_model, toy_data, tmp_path, **VLLM, **extra, **{
        "trainer.max_steps": 3, "trainer.val_freq": 3, "data.val_files": str(toy_data), "eval.limit": 5,
        "eval.max_new_tokens": 6}), nproc=2)
    rows = read_metrics(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert_synced_every_update(rows)
    for r in rows:
        assert math.isfinite(r["actor/total_loss"]) and r["all/response_length"] > 0
    records = [json.loads(x) for x in (tmp_path / "run" / "eval" / "step_000003" / "generations.jsonl")
               .read_text().splitlines()]
    assert len(records) == 5 and len({r["prompt_id"] for r in records}) == 5  # both ranks' shares, once each


def test_eval_cli_with_vllm(vllm_model: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("rollout:\n  kv_cache_memory_mb: 64\n")
    out = tmp_path / "eval"
    run([sys.executable, "-m", "fastgrpo", "-q", "eval", "--model", str(vllm_model), "--bench", "custom",
         "--data", str(toy_data), "--engine", "vllm", "--config", str(cfg), "--limit", "6", "--n", "2",
         "--max-new-tokens", "8", "--out", str(out), "--workers", "0"])
    results = json.loads((out / "results.json").read_text())
    assert results["engine"] == "vllm"
    bench = results["benchmarks"]["custom"]
    assert bench["questions"] == 6
    records = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(records) == 12 and all(0 < r["tokens"] <= 8 for r in records)


def test_validation_generates_with_the_updated_policy(vllm_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """In-process: after a training step, validation's greedy answers (vLLM) are the updated actor's, not the
    pre-update policy's (which the engine held after the rollout), and vLLM's log-probs are the actor's."""
    import copy

    import torch

    from fastgrpo.eval import evaluate
    from fastgrpo.rollout import PromptInput, SamplingParams
    from fastgrpo.train.batch import pack, response_logprobs
    from fastgrpo.train.dist import init_distributed
    from fastgrpo.train.recipe import FastGRPORecipe
    from tests.train.conftest import toy_config

    cfg = toy_config(vllm_model, toy_data, tmp_path, **VLLM, **{
        "trainer.max_steps": 1, "trainer.val_freq": 1, "data.val_files": str(toy_data), "eval.limit": 8,
        "eval.n": 1, "eval.temperature": 0.0, "eval.max_new_tokens": 8, "actor.lr": 0.1})
    rec = FastGRPORecipe(cfg, init_distributed(cfg.trainer.device))
    rec.setup()
    rec._write_run_files()
    with rec.scorer:
        before = copy.deepcopy(rec.model)
        rec.train_step(1)
        rec.validate(1)

    def answers(path: Path) -> dict[str, str]:
        return {json.loads(x)["prompt_id"]: json.loads(x)["response"] for x in path.read_text().splitlines()}

    served = answers(tmp_path / "run" / "eval" / "step_000001" / "generations.jsonl")
    tok = rec.modality.tokenizer
    greedy = {}
    for name, model in (("updated", rec.model), ("before", before)):
        evaluate(model, tok, rec.val_benchmarks, rec._eval_params(), out_dir=tmp_path / name,
                 limit=8, progress=False, plot=False, num_workers=0)
        greedy[name] = answers(tmp_path / name / "generations.jsonl")
    assert served == greedy["updated"]
    assert served != greedy["before"], "the update did not change any greedy answer: the check cannot tell"

    prompts = [PromptInput(tok("1+2=")["input_ids"], uid=0)]
    out = rec.engine.generate(prompts, SamplingParams(n=4, max_new_tokens=8, seed=0))
    packed = pack([prompts[0].prompt_ids] * 4, out.response_ids, tok.pad_token_id, torch.device("cpu"))
    with torch.no_grad():
        actor = response_logprobs(rec.model, packed)
    for i, lps in enumerate(out.logprobs or []):
        assert (actor[i, : len(lps)] - torch.tensor(lps)).abs().max() < 1e-4


def test_bf16_vllm_under_fp32_actor_mismatch_is_logged_and_tis_trains(vllm_model: Path, toy_data: Path,
                                                                     tmp_path: Path) -> None:
    """rollout.dtype=bfloat16 with an fp32 actor: a measurable mismatch, logged every step; with
    algorithm.rollout_is=tis the truncated weights keep the update finite and training proceeds."""
    train_cli(toy_overrides(vllm_model, toy_data, tmp_path, **VLLM, **{
        "trainer.max_steps": 3, "rollout.dtype": "bfloat16", "algorithm.rollout_is": "tis",
        "algorithm.rollout_is_cap": 2.0}))
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 3
    for r in rows:
        assert 1e-4 < r["rollout/logprob_abs_diff"] < 1.0, r["rollout/logprob_abs_diff"]
        assert 0.0 <= r["rollout/is_capped_fraction"] < 0.5
        assert math.isfinite(r["actor/total_loss"]) and r["actor/grad_norm"] > 0


@pytest.mark.parametrize("nproc", [1, 2], ids=["1proc", "2proc"])
def test_lora_actor_syncs_merged_weights_to_vllm(vllm_model: Path, toy_data: Path, tmp_path: Path,
                                                 nproc: int) -> None:
    """With actor.lora, vLLM receives W + scale * B @ A: its log-probs equal the adapter actor's every step."""
    train_cli(toy_overrides(vllm_model, toy_data, tmp_path, **VLLM, **{
        "trainer.max_steps": 3, "actor.lr": 5e-2, "actor.lora.rank": 4, "actor.lora.alpha": 16}), nproc=nproc)
    rows = read_metrics(tmp_path / "run")
    assert len(rows) == 3 and all(r["actor/grad_norm"] > 0 for r in rows)
    assert rows[-1]["actor/kl_loss"] > 1e-6  # the adapters moved the policy away from the base
    assert_synced_every_update(rows)
