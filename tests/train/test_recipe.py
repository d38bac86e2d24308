"""Real FAST-GRPO training on a tiny Qwen2 (CPU): learning, FSDP2 parity, kill-and-resume, failures."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp
from transformers import AutoModelForCausalLM

from fastgrpo.run_dir import list_checkpoints
from fastgrpo.train.recipe import TrainingError, train
from fastgrpo.train.signals import EXIT_STOPPED

from ..data.hub_cache import write_hub_cache
from .conftest import read_metrics, toy_config, toy_overrides

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, **popen: object) -> list[str]:
    return [sys.executable, "-m", "fastgrpo", "-q", "train", *args]


def _comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith(("time/", "perf/")) and k != "reward/score_seconds"} for r in rows]


def _assert_metrics_close(a: list[dict], b: list[dict], rel: float = 1e-4) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(_comparable(a), _comparable(b), strict=True):
        assert ra.keys() == rb.keys()
        for k in ra:
            va, vb = ra[k], rb[k]
            if va is None or vb is None:
                assert va == vb, k
            else:
                assert va == pytest.approx(vb, rel=rel, abs=1e-6), f"step {ra['step']} {k}: {va} vs {vb}"


@pytest.mark.slow
def test_training_learns_toy_reward_and_changes_parameters(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 24, "actor.lr": 1e-2, "rollout.n": 8,
                                                        "actor.global_batch_size": 32})
    run_dir = train(cfg)
    rows = read_metrics(run_dir)
    assert len(rows) == 24
    for r in rows:
        for k in ("actor/total_loss", "actor/grad_norm", "all/reward", "all/response_length"):
            assert r[k] is not None and math.isfinite(r[k]), (r["step"], k)
    first = sum(r["all/reward"] for r in rows[:6]) / 6
    last = sum(r["all/reward"] for r in rows[-6:]) / 6
    assert last > first + 0.05, f"reward did not rise: first {first:.3f}, last {last:.3f}"

    # The saved weights differ from the starting model.
    (step, ckpt), = list_checkpoints(run_dir / "checkpoints")
    assert step == 24
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    state = {"model": {k: torch.empty_like(v) for k, v in base.state_dict().items() if k != "lm_head.weight"}}
    dcp.load(state, checkpoint_id=str(ckpt / "model"))
    diff = max((state["model"][k] - v).abs().max().item() for k, v in base.state_dict().items() if k in state["model"])
    assert diff > 1e-3
    assert (run_dir / "samples.jsonl").exists() and (run_dir / "config.yaml").exists()
    assert (run_dir / "hf_base" / "config.json").exists() and (run_dir / "hf_base" / "tokenizer.json").exists()


# Online filtering that drops most groups of the toy task (its `overall` means mostly lie above 0.3), with rounds
# sized by the pass rate: refill rounds of uneven sizes (7, 11, 16 prompts), which the ranks must split and
# agree on, and a pass rate that a resumed run must restore from its checkpoint.
FILTERED = {"algorithm.online_filtering": True, "algorithm.filter_key": "overall",
            "algorithm.dynamic_filter_schedule": "[{epoch_ratio: 1.0, filter_low: 0.04, filter_high: 0.3}]",
            "algorithm.max_prompts_per_round": 12, "data.max_response_length": 10}


@pytest.mark.slow
def test_two_processes_match_one_process(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """torchrun --nproc_per_node 2 (FSDP2, gloo) computes the same steps as one process with the same global batch."""
    assert_two_processes_match_one(tiny_model, toy_data, tmp_path, {**FILTERED, "trainer.max_steps": 3})


def test_resume_restores_the_pass_rate_that_sizes_refill_rounds(tiny_model: Path, toy_data: Path,
                                                                  tmp_path: Path) -> None:
    reference = read_metrics(train(toy_config(tiny_model, toy_data, tmp_path / "ref",
                                              **{**FILTERED, "trainer.max_steps": 5})))
    seen = [r["filter/groups_seen"] for r in reference]
    # The rounds really are sized by the last round's pass rate: not all steps draw one batch of 4 prompts.
    assert any(s % 4 for s in seen) and max(seen) > 4, seen
    assert all(r["filter/groups_kept"] == 4 for r in reference)
    # Stop after step 2 (its checkpoint holds the pass rate), then resume to step 5.
    out = tmp_path / "resumed"
    train(toy_config(tiny_model, toy_data, out, **{**FILTERED, "trainer.max_steps": 2, "trainer.save_freq": 2}))
    resumed = read_metrics(train(toy_config(tiny_model, toy_data, out, **{**FILTERED, "trainer.max_steps": 5})))
    _assert_metrics_close(reference, resumed, rel=1e-6)


def assert_two_processes_match_one(model: Path, data: Path, tmp_path: Path, extra: dict) -> None:
    """Train `extra` in this process and under torchrun with 2 ranks (FSDP2, gloo); the metrics must agree."""
    one = train(toy_config(model, data, tmp_path / "one", **extra))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "fastgrpo", "-q", "train", *toy_overrides(model, data, tmp_path / "two", **extra)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    _assert_metrics_close(read_metrics(one), read_metrics(tmp_path / "two" / "run"), rel=1e-4)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_matches_uninterrupted(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    extra = {"trainer.max_steps": 8, "trainer.save_freq": 2, "trainer.save_limit": 2}
    reference = train(toy_config(tiny_model, toy_data, tmp_path / "ref", **extra))

    args = _cli(*toy_overrides(tiny_model, toy_data, tmp_path / "killed", **extra))
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpts = tmp_path / "killed" / "run" / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if any(s >= 4 for s, _ in list_checkpoints(ckpts)):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed; " + proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = max(s for s, _ in list_checkpoints(ckpts))
    assert 4 <= killed_at < 8
    resumed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_metrics_close(read_metrics(reference), read_metrics(tmp_path / "killed" / "run"), rel=1e-6)
    # Rotation kept only the newest two checkpoints; no temp folders remain.
    assert [s for s, _ in list_checkpoints(ckpts)] == [6, 8]
    assert not list(ckpts.glob(".tmp_*"))


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    args = _cli(*toy_overrides(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 200}))
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_STOPPED, err[-3000:]
    assert "stopped by SIGINT" in err and "resume with the same command" in err
    saved = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert saved and saved[-1][0] >= 2


def test_missing_dataset_field_fails_before_any_work(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"data.answer_key": "solution"})
    with pytest.raises(TrainingError, match=r"missing column\(s\) \['solution'\].*data.answer_key"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_unreadable_model_path_is_a_clear_cli_error(toy_data: Path, tmp_path: Path) -> None:
    proc = subprocess.run(_cli(*toy_overrides(tmp_path / "nope", toy_data, tmp_path)), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error:" in proc.stderr and str(tmp_path / "nope") in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    # A first run leaves a good checkpoint; continuing it with an absurd learning rate blows the weights up.
    good = toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 2, "trainer.save_freq": 2})
    train(good)
    bad = toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6, "trainer.save_freq": 1,
                                                         "actor.lr": 1e30, "actor.max_grad_norm": 1e30})
    with pytest.raises(TrainingError, match="non-finite") as info:
        train(bad)
    assert "Last good checkpoint" in str(info.value)
    for _, ckpt in list_checkpoints(tmp_path / "run" / "checkpoints"):
        state = {"model": {}}
        meta = dcp.FileSystemReader(str(ckpt / "model")).read_metadata()
        assert meta is not None and state is not None


def test_validation_during_training_uses_the_eval_harness(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{
        "trainer.max_steps": 2, "trainer.val_freq": 2, "trainer.val_before_train": True,
        "data.val_files": str(toy_data), "eval.limit": 4, "eval.n": 2, "eval.max_new_tokens": 6,
    })
    run_dir = train(cfg)
    rows = read_metrics(run_dir)
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in (rows[0], rows[2]):
        assert 0.0 <= r["val/val/accuracy"] <= 100.0 and 0 < r["val/val/mean_tokens"] <= 6
    assert "val/val/accuracy" not in rows[1]
    assert (run_dir / "eval" / "step_000002" / "results.json").exists()


def test_validation_reads_hub_val_files_and_benchmark_groups(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """data.val_files as a hub id `name@split` (here from the offline cache), eval.benchmarks as a group."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets")
    write_hub_cache(tmp_path / "hf_datasets", "someorg/toy-val", "test", [{"problem": "1+1", "answer": "2"}] * 3)
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{
        "trainer.max_steps": 1, "trainer.val_before_train": True, "data.val_files": "someorg/toy-val@test",
        "eval.benchmarks": "[text]", "eval.data_dir": str(REPO / "tests" / "fixtures" / "eval"), "eval.limit": 1,
        "eval.max_new_tokens": 4,
    })
    rows = read_metrics(train(cfg))
    for bench in ("val", "gsm8k", "math500", "aime2024"):
        assert 0 < rows[0][f"val/{bench}/mean_tokens"] <= 4, bench
    results = json.loads((tmp_path / "run" / "eval" / "step_000000" / "results.json").read_text())
    assert results["benchmarks"]["val"]["source"] == "someorg/toy-val@test"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"eval.benchmarks": "[vision]"}, r"eval.benchmarks: mathverse, .* need images, but .* is a text model"),
        ({"data.val_files": "nope/val.jsonl"}, r"val: data file or folder not found: nope/val.jsonl"),
        ({"data.val_files": "someorg/not-cached@test"}, r"could not load 'someorg/not-cached' .* from the hub"),
    ],
)
def test_validation_problems_fail_before_any_work(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                  overrides: dict[str, str], message: str) -> None:
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"trainer.val_freq": 2, "eval.max_new_tokens": 12, **overrides})
    with pytest.raises(TrainingError, match=message):
        train(cfg)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("reward_function", ["builtin:math", "toy"])
def test_validation_grades_with_the_reward_settings(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                    reward_function: str) -> None:
    """reward.timeout_s / num_workers reach validation: the trainer's pool (built-in reward) or one like it."""
    extra = {} if reward_function == "toy" else {"reward.reward_function": reward_function}
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{
        "trainer.max_steps": 1, "trainer.val_before_train": True, "data.val_files": str(toy_data),
        "eval.limit": 2, "eval.max_new_tokens": 4, "reward.timeout_s": 1e-6, "reward.num_workers": 0, **extra,
    })
    run_dir = train(cfg)
    generations = run_dir / "eval" / "step_000000" / "generations.jsonl"
    records = [json.loads(x) for x in generations.read_text().splitlines()]
    assert len(records) == 2 and all(r["timeout"] for r in records)


def test_shared_prompt_and_padded_layouts_train_identically(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    runs = {}
    for packing in ("padded", "shared_prompt"):
        # Untrained toy responses all run to the length cap, so rows get room for several of them.
        cfg = toy_config(tiny_model, toy_data, tmp_path / packing, **{"actor.packing": packing,
                                                                      "actor.pack_length": 160})
        runs[packing] = read_metrics(train(cfg))
    _assert_metrics_close(runs["padded"], runs["shared_prompt"], rel=1e-4)
    for padded, shared in zip(runs["padded"], runs["shared_prompt"], strict=True):
        assert shared["perf/forward_positions"] < padded["perf/forward_positions"]


def test_varlen_layout_trains_like_padded_with_a_non_sdpa_backend(tiny_model: Path, toy_data: Path,
                                                                  tmp_path: Path) -> None:
    """eager attention (flash-attn's stand-in on CPU): `auto` picks padded there, varlen must match it."""
    runs = {}
    for packing in ("padded", "varlen"):
        cfg = toy_config(tiny_model, toy_data, tmp_path / packing, **{"actor.packing": packing,
                                                                      "model.attn_implementation": "eager",
                                                                      "trainer.max_steps": 2})
        runs[packing] = read_metrics(train(cfg))
    _assert_metrics_close(runs["padded"], runs["varlen"], rel=1e-4)
    for padded, varlen in zip(runs["padded"], runs["varlen"], strict=True):
        # toy prompts share a length and untrained responses run to the cap: no padding to save here
        assert varlen["perf/forward_positions"] <= padded["perf/forward_positions"]


def test_shared_prompt_packing_with_eager_attention_is_a_clear_error(tiny_model: Path, toy_data: Path,
                                                                      tmp_path: Path) -> None:
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"actor.packing": "shared_prompt",
                                                        "model.attn_implementation": "eager"})
    with pytest.raises(TrainingError, match=r"actor.packing=shared_prompt needs .*sdpa.*'eager'.*actor.packing=padded"):
        train(cfg)
    assert not (tmp_path / "run").exists()
