"""Cluster faults (issue 20): preemption signals, damaged checkpoints, a full disk, multi-node launch.

Each test injects the fault into a real run of the tiny model and checks what the run does and
what it loses; benchmarks/RESULTS.md ("Reliability") reports these outcomes.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastgrpo.cli.main import app
from fastgrpo.run_dir import MANIFEST, checkpoint_problem, list_checkpoints
from fastgrpo.train.recipe import BadCheckpointError, TrainingError, TrainingStopped, train
from fastgrpo.train.signals import EXIT_STOPPED

from .conftest import REWARD_FILE, read_metrics, toy_config, toy_overrides
from .test_recipe import FILTERED, REPO, _assert_metrics_close, _cli

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def _steps(ckpts: Path) -> list[int]:
    return [s for s, _ in list_checkpoints(ckpts)]


# ----------------------------------------------------------------------------- damaged checkpoints


@pytest.fixture(scope="module")
def reference_6(tiny_model: Path, toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """An uninterrupted 6-step run: what every resumed run below must reproduce."""
    out = tmp_path_factory.mktemp("ref6")
    return read_metrics(train(toy_config(tiny_model, toy_data, out, **{"trainer.max_steps": 6})))


def _run_to_4(tiny_model: Path, toy_data: Path, out: Path) -> Path:
    """Checkpoints at steps 2 and 4 (each with its manifest); returns the checkpoints folder."""
    train(toy_config(tiny_model, toy_data, out, **{"trainer.max_steps": 4, "trainer.save_freq": 2,
                                                   "trainer.save_limit": 0}))
    ckpts = out / "run" / "checkpoints"
    assert _steps(ckpts) == [2, 4]
    assert all(checkpoint_problem(p) is None for _, p in list_checkpoints(ckpts))
    return ckpts


@pytest.mark.parametrize("damage", ["truncate", "delete"])
def test_resume_auto_skips_a_damaged_latest_checkpoint(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                       reference_6: list[dict], damage: str,
                                                       fastgrpo_log_messages: list[str]) -> None:
    ckpts = _run_to_4(tiny_model, toy_data, tmp_path)
    latest = ckpts / "global_step_000004"
    if damage == "truncate":  # a copy cut short: the model shard loses its second half
        shard = next((latest / "model").glob("*.distcp"))
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
        bad = shard
    else:  # a node lost mid-copy: the optimizer's metadata never arrived
        bad = latest / "optim" / ".metadata"
        bad.unlink()
    run_dir = train(toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6}))
    warnings = [m for m in fastgrpo_log_messages if m.startswith("skipping checkpoint")]
    assert len(warnings) == 1 and str(latest) in warnings[0] and str(bad) in warnings[0], warnings
    assert any(f"resumed from {ckpts / 'global_step_000002'} (step 2)" in m for m in fastgrpo_log_messages)
    # Steps 3 and 4 are recomputed from checkpoint 2: the run reads as the uninterrupted one.
    _assert_metrics_close(reference_6, read_metrics(run_dir), rel=1e-6)
    assert checkpoint_problem(ckpts / "global_step_000006") is None


def test_named_damaged_checkpoint_is_an_error_naming_the_file(tiny_model: Path, toy_data: Path,
                                                              tmp_path: Path) -> None:
    ckpts = _run_to_4(tiny_model, toy_data, tmp_path)
    rng = ckpts / "global_step_000004" / "rng_rank0.pt"
    rng.write_bytes(rng.read_bytes()[:10])
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6,
                                                        "trainer.resume": str(ckpts / "global_step_000004")})
    with pytest.raises(BadCheckpointError, match=f"{rng} has 10 bytes") as info:
        train(cfg)
    assert info.value.exit_code == 2 and "trainer.resume=auto" in str(info.value)
    # The same through the command line: exit 2, one message, no traceback.
    result = CliRunner().invoke(app, ["-q", "train", *toy_overrides(
        tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6, "trainer.resume": str(ckpts / "global_step_000004")})],
        env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert result.exit_code == 2, result.output
    assert "rng_rank0.pt has 10 bytes" in " ".join(result.output.split()) and "Traceback" not in result.output


def test_a_checkpoint_without_its_manifest_is_not_trusted(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                          reference_6: list[dict], fastgrpo_log_messages: list[str]) -> None:
    """A save cut short before its last write leaves no manifest: the folder is passed over, not loaded."""
    ckpts = _run_to_4(tiny_model, toy_data, tmp_path)
    (ckpts / "global_step_000004" / MANIFEST).unlink()
    run_dir = train(toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6}))
    assert any("skipping checkpoint" in m and "manifest.json is missing" in m for m in fastgrpo_log_messages)
    _assert_metrics_close(reference_6, read_metrics(run_dir), rel=1e-6)


# ------------------------------------------------------------------------------------- full disk


def test_a_failed_save_keeps_the_previous_checkpoints(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                      reference_6: list[dict],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up while step 6 is saved (every fsync into its folder fails with ENOSPC)."""
    real_fsync = os.fsync

    def full_disk(fd: int) -> None:
        if ".tmp_global_step_000006" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full_disk)
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6, "trainer.save_freq": 2,
                                                        "trainer.save_limit": 1})
    with pytest.raises(TrainingError) as info:
        train(cfg)
    ckpts = tmp_path / "run" / "checkpoints"
    msg = str(info.value)
    assert "could not save the checkpoint of step 6" in msg and "no space left on the device" in msg, msg
    assert f"newest complete: {ckpts / 'global_step_000004'}" in msg and "rerun the same command" in msg
    # save_limit=1 rotated step 2 out when 4 was complete; the failed save took nothing with it.
    assert _steps(ckpts) == [4] and checkpoint_problem(ckpts / "global_step_000004") is None
    assert not list(ckpts.glob(".*"))
    # Space is back: the same command resumes from step 4 and loses only steps 5-6.
    monkeypatch.setattr(os, "fsync", real_fsync)
    run_dir = train(toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6, "trainer.save_freq": 2,
                                                                  "trainer.save_limit": 1}))
    _assert_metrics_close(reference_6, read_metrics(run_dir), rel=1e-6)
    assert _steps(ckpts) == [6]


def test_a_save_interrupted_between_renames_is_recovered(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """Re-saving a step moves the old folder aside first; a kill right then loses neither copy."""
    ckpts = _run_to_4(tiny_model, toy_data, tmp_path)
    (ckpts / "global_step_000004").rename(ckpts / ".tmp_global_step_000004")  # finished, not yet renamed
    (ckpts / "global_step_000002").rename(ckpts / ".old_global_step_000002")  # moved aside, new one never landed
    train(toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 4}))  # resumes at 4: nothing to do
    assert _steps(ckpts) == [2, 4] and not list(ckpts.glob(".*"))
    assert all(checkpoint_problem(p) is None for _, p in list_checkpoints(ckpts))


# ------------------------------------------------------------------------------ stop signals


def _wait_for_steps(run_dir: Path, n: int, proc: subprocess.Popen) -> None:
    """Block until the run has logged `n` steps (so a signal now lands in step n + 1)."""
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            return
        time.sleep(0.05)
    out = proc.communicate(timeout=60)[1] if proc.poll() is not None else "(timed out)"
    pytest.fail(f"the run did not reach step {n} while running: {str(out)[-3000:]}")


def _stopped_after(err: str, signame: str) -> int:
    m = re.search(rf"stopped by {signame} after step (\d+) \(checkpoint (\S+)\); resume with the same command",
                  " ".join(err.split()))
    assert m, err[-3000:]
    return int(m.group(1))


@pytest.mark.slow
def test_sigterm_mid_step_saves_then_resume_matches_uninterrupted(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                                  reference_6: list[dict]) -> None:
    args = _cli(*toy_overrides(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6}))
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait_for_steps(tmp_path / "run", 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == EXIT_STOPPED, err[-3000:]
    step = _stopped_after(err, "SIGTERM")
    ckpts = tmp_path / "run" / "checkpoints"
    assert 2 <= step < 6 and _steps(ckpts) == [step]  # save_freq 0: the stop made the only checkpoint
    assert checkpoint_problem(ckpts / f"global_step_{step:06d}") is None and "Traceback" not in err
    resumed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_metrics_close(reference_6, read_metrics(tmp_path / "run"), rel=1e-6)


def test_sigusr1_in_process_stops_after_the_step_and_resumes(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                             reference_6: list[dict]) -> None:
    """SLURM's `--signal=USR1@<seconds>` warning: same path as SIGTERM (sent from a thread mid-run here)."""
    metrics = tmp_path / "run" / "metrics.jsonl"
    done = threading.Event()

    def send_when_one_step_is_logged() -> None:
        while not done.is_set():
            if metrics.exists() and metrics.read_text().count("\n") >= 1:
                os.kill(os.getpid(), signal.SIGUSR1)
                return
            time.sleep(0.01)

    sender = threading.Thread(target=send_when_one_step_is_logged, daemon=True)
    sender.start()
    try:
        with pytest.raises(TrainingStopped) as info:
            train(toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6}))
    finally:
        done.set()
    step = _stopped_after(str(info.value), "SIGUSR1")
    assert info.value.exit_code == EXIT_STOPPED and 1 <= step < 6
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL  # handlers put back
    run_dir = train(toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6}))
    _assert_metrics_close(reference_6, read_metrics(run_dir), rel=1e-6)


def _torchrun(*launcher: str, run_root: Path, extra: dict, tiny_model: Path, toy_data: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "fastgrpo", "-q", "train",
            *toy_overrides(tiny_model, toy_data, run_root, **extra)]


# Online filtering on, as in the 1-vs-2-process parity test: the refill rounds (and the pass rate that sizes
# them) are part of what must resume exactly.
TWO_PROC = {**FILTERED, "trainer.max_steps": 4}


@pytest.fixture(scope="module")
def two_process_reference(tiny_model: Path, toy_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """An uninterrupted `torchrun --standalone --nproc_per_node 2` run (FSDP2, gloo)."""
    out = tmp_path_factory.mktemp("two")
    cmd = _torchrun("--standalone", "--nproc_per_node=2", run_root=out, extra=TWO_PROC, tiny_model=tiny_model,
                    toy_data=toy_data)
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_metrics(out / "run")


@pytest.mark.slow
def test_sigterm_to_torchrun_stops_both_ranks_after_the_same_step(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                                  two_process_reference: list[dict]) -> None:
    """SIGTERM to the launcher only, as a scheduler would: `fastgrpo train --nproc 2` passes it to torchrun,
    torchrun to its two workers; they agree on the step, save together and resume exactly (the reference
    is a plain `torchrun --standalone` run)."""
    cmd = _cli("--nproc", "2", *toy_overrides(tiny_model, toy_data, tmp_path, **TWO_PROC))
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    _wait_for_steps(tmp_path / "run", 1, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    step = _stopped_after(err, "SIGTERM")  # rank 0's line; torchrun itself exits non-zero after a signal
    assert proc.returncode != 0 and "Unable to shutdown process" not in err  # no worker needed SIGKILL
    ckpts = tmp_path / "run" / "checkpoints"
    assert 1 <= step < 4 and _steps(ckpts) == [step]
    ckpt = ckpts / f"global_step_{step:06d}"
    assert checkpoint_problem(ckpt) is None and {p.name for p in ckpt.glob("rng_rank*.pt")} == {
        "rng_rank0.pt", "rng_rank1.pt"}
    resumed = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_metrics_close(two_process_reference, read_metrics(tmp_path / "run"), rel=1e-6)


# ------------------------------------------------------------------------------------- multi-node


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_nodes_on_loopback_reproduce_the_two_process_run(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                                             two_process_reference: list[dict]) -> None:
    """Two torchrun launches (`--nnodes 2 --node-rank 0|1`, one process each) meeting at 127.0.0.1.

    Both write into one run directory, as on a shared filesystem: LOCAL_RANK is 0 on both "nodes",
    so anything keyed by the local rank (device, reward pool) is per node, and files by global rank 0.
    """
    port = _free_port()
    procs = [
        subprocess.Popen(_torchrun("--nnodes=2", f"--node-rank={r}", "--nproc-per-node=1", "--master-addr=127.0.0.1",
                                   f"--master-port={port}", run_root=tmp_path, extra=TWO_PROC, tiny_model=tiny_model,
                                   toy_data=toy_data),
                         cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
        for r in (0, 1)
    ]
    errs = [p.communicate(timeout=400)[1] for p in procs]
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err[-3000:]
    _assert_metrics_close(two_process_reference, read_metrics(tmp_path / "run"), rel=1e-6)
    ckpt = tmp_path / "run" / "checkpoints" / "global_step_000004"
    assert checkpoint_problem(ckpt) is None
    assert {p.name for p in ckpt.glob("rng_rank*.pt")} == {"rng_rank0.pt", "rng_rank1.pt"}


# ------------------------------------------------------------------------------ reward errors


@pytest.fixture(scope="module")
def exploding_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy prompts; the 4 rows with a == 1 (an eighth) make the flaky reward function raise."""
    path = tmp_path_factory.mktemp("explode") / "train.jsonl"
    rows = [{"problem": f"{a}+{b}", "answer": str(a + b), "explode": a == 1} for a in range(1, 9) for b in range(1, 5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reward_errors_within_budget_score_zero_and_are_logged(tiny_model: Path, exploding_data: Path,
                                                               tmp_path: Path, fastgrpo_log_messages: list[str]) -> None:
    run_dir = train(toy_config(tiny_model, exploding_data, tmp_path, **{
        "reward.reward_function": f"{REWARD_FILE}:flaky_digit_fraction", "reward.max_error_fraction": 0.9,
        "trainer.max_steps": 4, "trainer.log_samples": 16}))
    rows = read_metrics(run_dir)
    assert len(rows) == 4 and sum(r["reward/errors"] for r in rows) > 0
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    exploded = [s for s in samples if s["uid"] < 4]  # rows 0-3 are a == 1
    assert exploded and all(s["accuracy"] == 0 and s["reward_error"].startswith("ValueError: cannot score")
                            for s in exploded)
    assert all("reward_error" not in s for s in samples if s["uid"] >= 4)
    logged = [m for m in fastgrpo_log_messages if "reward function" in m and "raised" in m]
    assert len(logged) == 3  # the first occurrences only; the rest are counted in reward/errors
    assert "ValueError: cannot score" in logged[0] and "the response scores 0" in logged[0]
    assert "response '" in logged[0] or 'response "' in logged[0]  # its repr (double quotes when it holds a quote)


def test_reward_errors_above_the_budget_stop_the_run(tiny_model: Path, exploding_data: Path, tmp_path: Path) -> None:
    cfg = toy_config(tiny_model, exploding_data, tmp_path, **{
        "reward.reward_function": f"{REWARD_FILE}:flaky_digit_fraction", "trainer.max_steps": 8})
    with pytest.raises(TrainingError) as info:  # default budget 0.1: a step with one such prompt (of 4) stops
        train(cfg)
    msg = str(info.value)
    assert re.search(r"step \d+: the reward function .*flaky_digit_fraction raised on \d+ of 16 responses "
                     r"\(\d+% > reward.max_error_fraction=0.1\); first: ValueError: cannot score", msg), msg
    assert "raise reward.max_error_fraction" in msg


# ------------------------------------------------------------------------------------ bad data rows


def test_training_on_a_file_with_a_broken_line(tiny_model: Path, toy_data: Path, tmp_path: Path,
                                               fastgrpo_log_messages: list[str]) -> None:
    lines = toy_data.read_text().splitlines()
    lines[6] = lines[6][:-5]  # cut short, as by a crashed writer
    data = tmp_path / "bad.jsonl"
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrainingError, match=rf"^{data} line 7: invalid JSON: .*data\.on_bad_row=skip"):
        train(toy_config(tiny_model, data, tmp_path, **{"trainer.max_steps": 1}))
    assert not (tmp_path / "run").exists()  # nothing started
    run_dir = train(toy_config(tiny_model, data, tmp_path, **{"trainer.max_steps": 1, "data.on_bad_row": "skip"}))
    assert read_metrics(run_dir)[0]["data/skipped_rows"] == 1.0
    assert any(f"skipped 1 bad row(s) of {data} (first: {data} line 7: invalid JSON" in m for m in fastgrpo_log_messages)


def test_same_size_damage_that_dcp_cannot_load_is_the_same_error(tiny_model: Path, toy_data: Path,
                                                                 tmp_path: Path) -> None:
    ckpts = _run_to_4(tiny_model, toy_data, tmp_path)
    meta = ckpts / "global_step_000004" / "model" / ".metadata"
    meta.write_bytes(b"\0" * meta.stat().st_size)  # the sizes still match the manifest
    cfg = toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 6,
                                                        "trainer.resume": str(ckpts / "global_step_000004")})
    with pytest.raises(BadCheckpointError, match=r"global_step_000004 is incomplete or damaged: it could not be "
                                                  r"loaded \("):
        train(cfg)
