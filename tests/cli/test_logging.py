"""`--quiet` / `--verbose` set the log level; only rank 0 logs below ERROR."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastgrpo import log
from fastgrpo.cli.main import app

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "fast_grpo_text.yaml"


@pytest.fixture
def fresh_logging() -> None:
    """Start from an unconfigured `fastgrpo` logger (restored afterwards by tests/cli/conftest.py)."""
    logger = logging.getLogger("fastgrpo")
    logger.handlers.clear()
    logger.setLevel(logging.NOTSET)
    log._configured = False


@pytest.mark.parametrize(
    ("flags", "level"),
    [
        ([], logging.INFO),
        (["--verbose"], logging.DEBUG),
        (["-v"], logging.DEBUG),
        (["--quiet"], logging.WARNING),
        (["-q"], logging.WARNING),
    ],
)
def test_flags_set_the_level(fresh_logging: None, flags: list[str], level: int) -> None:
    result = CliRunner().invoke(app, [*flags, "config", "validate", str(CONFIG)])
    assert result.exit_code == 0, result.output
    logger = logging.getLogger("fastgrpo")
    assert logger.level == level
    assert len(logger.handlers) == 1 and not logger.propagate


def test_quiet_hides_info_and_verbose_shows_debug(
    fresh_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = log.get_logger("test")
    log.setup_logging(quiet=True)
    logger.info("info-hidden")
    logger.warning("warning-shown")
    log.setup_logging(verbose=True)
    logger.debug("debug-shown")
    err = capsys.readouterr().err
    assert "info-hidden" not in err
    assert "warning-shown" in err and "debug-shown" in err


def test_setup_is_idempotent(fresh_logging: None) -> None:
    log.setup_logging()
    log.setup_logging(verbose=True)
    assert len(logging.getLogger("fastgrpo").handlers) == 1


def test_get_logger_is_under_fastgrpo() -> None:
    assert log.get_logger("train").name == "fastgrpo.train"
    assert log.get_logger("fastgrpo.rollout").name == "fastgrpo.rollout"


def test_only_rank0_logs_info(
    fresh_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log.setup_logging()
    logger = log.get_logger("test")
    monkeypatch.setenv("RANK", "1")
    assert not log.is_rank0()
    logger.info("rank1-info")
    logger.warning("rank1-warning")
    logger.error("rank1-error")
    monkeypatch.setenv("RANK", "0")
    logger.info("rank0-info")
    monkeypatch.delenv("RANK")
    assert log.is_rank0()
    logger.info("norank-info")
    err = capsys.readouterr().err
    assert "rank1-info" not in err and "rank1-warning" not in err
    assert "rank1-error" in err  # errors from any rank get through
    assert "rank0-info" in err and "norank-info" in err
