"""The `fastgrpo` command: in-process through Typer's CliRunner, and as a real subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner, Result

from fastgrpo import __version__
from fastgrpo.cli.main import app
from fastgrpo.config import Config, from_dict, load_config

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))
TEXT_CONFIG = REPO / "configs" / "fast_grpo_text.yaml"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200", "NO_COLOR": "1"})


def flat(text: str) -> str:
    """Help text without colour codes, box drawing or line wrapping, for substring checks."""
    return " ".join(ANSI.sub("", text).replace("│", " ").split())


def _command_paths(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group under `cmd` (Typer vendors click, so duck-type on `.commands`)."""
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):
        for name, sub in sorted(cmd.commands.items()):
            out += _command_paths(sub, (*path, name))
    return out


COMMANDS = _command_paths(typer.main.get_command(app))


# --- in-process ----------------------------------------------------------------------------------


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"fastgrpo {__version__}\n"


def test_no_arguments_prints_help() -> None:
    result = invoke()
    text = flat(result.output)
    assert "Usage" in text and "train" in text and "config" in text


def test_every_command_is_listed() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"train", "eval", "export", "config", "config show", "config validate"} <= names


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) or "fastgrpo" for p, _ in COMMANDS])
def test_help_shows_an_example(path: tuple[str, ...], cmd: Any) -> None:
    assert "Not built yet" not in (getattr(cmd.callback, "__doc__", None) or ""), "a placeholder command"
    for flag in ("--help", "-h"):
        result = invoke(*path, flag)
        assert result.exit_code == 0, result.output
        assert "Usage:" in result.stdout
        body = flat("\n".join(ln for ln in result.stdout.splitlines() if "Usage:" not in ln))
        assert re.search(rf"fastgrpo {' '.join(path)} ?\S", body), f"no example in `{' '.join(path)} --help`"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_show_round_trips_through_load(path: Path) -> None:
    result = invoke("config", "show", path)
    assert result.exit_code == 0, result.output
    assert from_dict(Config, yaml.safe_load(result.stdout)) == load_config(path)


def test_config_show_applies_overrides() -> None:
    result = invoke("config", "show", TEXT_CONFIG, "algorithm.kl_coef=0.02", "trainer.logger=[jsonl]")
    assert result.exit_code == 0, result.output
    shown = yaml.safe_load(result.stdout)
    assert shown["algorithm"]["kl_coef"] == 0.02 and shown["trainer"]["logger"] == ["jsonl"]
    assert shown["model"]["path"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # the file still applies


def test_config_show_without_file_prints_defaults() -> None:
    result = invoke("config", "show")
    assert result.exit_code == 0, result.output
    assert from_dict(Config, yaml.safe_load(result.stdout)) == Config()


def test_config_show_with_only_overrides() -> None:
    result = invoke("config", "show", "trainer.max_steps=3", "actor.lr=2e-6")
    assert result.exit_code == 0, result.output
    shown = from_dict(Config, yaml.safe_load(result.stdout))
    assert shown.trainer.max_steps == 3 and shown.actor.lr == 2e-6


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_config_validate_ok(path: Path) -> None:
    result = invoke("config", "validate", path)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{path}: ok"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["algorithm.kl_cof=0.1"], "unknown key 'algorithm.kl_cof'. Did you mean 'algorithm.kl_coef'?"),
        (["trainer.max_steps"], "override 'trainer.max_steps' must look like key.path=value"),
        (
            ["actor.micro_batch_size=5"],
            "actor.global_batch_size (128) must be a multiple of actor.micro_batch_size (5)",
        ),
        (["model.dtype=bf16"], "model.dtype: 'bf16' is not allowed"),
        (["actor.ppo_epochs=0"], "actor.ppo_epochs must be >= 1, got 0"),
        (["actor.betas=[0.9]"], "actor.betas must be two numbers [beta1, beta2], each in [0, 1), got [0.9]"),
        (["eval.benchmarks=[all, gsm9k]"], "eval.benchmarks[1]: unknown benchmark 'gsm9k'"),
    ],
)
def test_config_validate_bad_override_exits_2(args: list[str], message: str) -> None:
    result = invoke("config", "validate", TEXT_CONFIG, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "error:" in result.stderr and message in flat(result.stderr)
    assert "Traceback" not in result.output


def test_config_validate_bad_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainer:\n  max_steps: [1\n")
    result = invoke("config", "validate", bad)
    assert result.exit_code == 2
    assert "invalid YAML at line" in flat(result.stderr)
    result = invoke("config", "validate", tmp_path / "missing.yaml")
    assert result.exit_code == 2 and "config file not found" in flat(result.stderr)


def test_error_message_is_printed_verbatim_not_as_markup() -> None:
    """User text in a message ("[/]", "[b]") must not be read as rich markup (it crashed, or vanished)."""
    result = invoke("config", "validate", "runs/x[/]y.yaml")
    assert result.exit_code == 2
    assert "runs/x[/]y.yaml" in result.stderr
    result = invoke("config", "validate", TEXT_CONFIG, "model.dtype=[b]x")
    assert result.exit_code == 2
    assert "'[b]x' is not allowed" in result.stderr


def _train_dir_contents(tmp_path: Path, *args: str) -> tuple[int, list[str], str]:
    out = tmp_path / "out"
    cwd = os.getcwd()
    os.chdir(tmp_path)  # a default `runs/` would land here
    try:
        result = invoke("train", *args, f"trainer.output_dir={out}", "trainer.experiment_name=e")
    finally:
        os.chdir(cwd)
    return result.exit_code, sorted(p.name for p in tmp_path.iterdir()), flat(result.stderr)


@pytest.mark.parametrize(
    ("yaml_text", "overrides", "message"),
    [
        ("algorithm:\n  kl_min_coef: 0.5\n", [], "algorithm.kl_min_coef (0.5)"),
        ("trainer:\n  max_stepz: 3\n", [], "Did you mean 'trainer.max_steps'?"),
        ("trainer: [\n", [], "invalid YAML at line"),
        ("", ["actor.lr=fast"], "actor.lr: expected a number"),
    ],
)
def test_train_with_bad_config_exits_2_and_creates_nothing(
    tmp_path: Path, yaml_text: str, overrides: list[str], message: str
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    code, contents, err = _train_dir_contents(tmp_path, str(cfg), *overrides)
    assert code == 2
    assert message in err
    assert contents == ["c.yaml"]  # no run dir, no runs/, nothing


def test_train_missing_config_exits_2(tmp_path: Path) -> None:
    code, contents, err = _train_dir_contents(tmp_path, str(tmp_path / "nope.yaml"))
    assert code == 2 and "config file not found" in err and contents == []


def test_train_demo_config_before_make_demo_says_to_run_it(tmp_path: Path) -> None:
    # A fresh clone: configs/demo.yaml trains from runs/demo/base, which only `make demo` builds.
    code, contents, err = _train_dir_contents(tmp_path, str(REPO / "configs" / "demo.yaml"))
    assert code != 0
    assert "model.path 'runs/demo/base' does not exist" in err and "run `make demo` first" in err
    assert "Repo id must be in the form" not in err
    assert contents == []  # nothing half-written


def test_train_rejects_nproc_below_one() -> None:
    result = invoke("train", TEXT_CONFIG, "--nproc", "0")
    assert result.exit_code == 2


# --- real subprocesses ---------------------------------------------------------------------------


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
    )


def _console_script() -> str | None:
    here = Path(sys.executable).parent
    return shutil.which("fastgrpo", path=str(here)) or shutil.which("fastgrpo")


ENTRY_POINTS = [pytest.param([sys.executable, "-m", "fastgrpo"], id="python-m")]
ENTRY_POINTS.append(
    pytest.param(
        [_console_script() or "fastgrpo"],
        id="console-script",
        marks=pytest.mark.skipif(_console_script() is None, reason="fastgrpo script not installed"),
    )
)


@pytest.mark.parametrize("cmd", ENTRY_POINTS)
def test_subprocess_version_and_validate(cmd: list[str]) -> None:
    result = run(cmd, "--version")
    assert result.returncode == 0 and result.stdout == f"fastgrpo {__version__}\n"
    result = run(cmd, "config", "validate", "configs/fast_grpo_text.yaml", "trainer.max_steps=3")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "configs/fast_grpo_text.yaml: ok\n"


@pytest.mark.parametrize("cmd", ENTRY_POINTS)
def test_subprocess_bad_override_exits_2(cmd: list[str]) -> None:
    result = run(cmd, "config", "validate", "configs/fast_grpo_text.yaml", "algorithm.kl_cof=0.1")
    assert result.returncode == 2
    assert result.stdout == ""
    assert "error: unknown key 'algorithm.kl_cof'. Did you mean 'algorithm.kl_coef'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_subprocess_config_show_round_trips() -> None:
    result = run([sys.executable, "-m", "fastgrpo"], "config", "show", "configs/fast_grpo_vision.yaml")
    assert result.returncode == 0, result.stderr
    assert from_dict(Config, yaml.safe_load(result.stdout)) == load_config(
        REPO / "configs/fast_grpo_vision.yaml"
    )
