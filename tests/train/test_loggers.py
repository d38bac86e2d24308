"""trainer.logger mlflow: a real MLflow client writing to a local file store gets the keys of metrics.jsonl."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fastgrpo.train.loggers import MLFLOW_RUN_ID_FILE, RunLogger, mlflow_key
from fastgrpo.train.recipe import train

from .conftest import read_metrics, toy_config


@pytest.fixture
def tracking(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """MLFLOW_TRACKING_URI pointing at a file store under tmp_path, and a client reading it."""
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for this opt-in to a file store
    return MlflowClient(tracking_uri=uri)


def _history(client, run_id: str) -> dict[str, dict[int, float]]:
    run = client.get_run(run_id)
    return {k: {m.step: m.value for m in client.get_metric_history(run_id, k)} for k in run.data.metrics}


def test_training_logs_the_jsonl_keys_to_mlflow(tiny_model: Path, toy_data: Path, tmp_path: Path, tracking) -> None:
    run_dir = train(toy_config(tiny_model, toy_data, tmp_path, **{
        "trainer.logger": "[jsonl, mlflow]", "trainer.max_steps": 2, "trainer.project_name": "proj",
        "trainer.experiment_name": "exp1"}))
    rows = read_metrics(run_dir)
    run_id = (run_dir / MLFLOW_RUN_ID_FILE).read_text().strip()
    run = tracking.get_run(run_id)
    assert run.info.run_name == "exp1" and tracking.get_experiment(run.info.experiment_id).name == "proj"
    assert run.data.params["algorithm.policy_loss"] == "ppo" and run.data.params["trainer.max_steps"] == "2"
    history = _history(tracking, run_id)
    expected: dict[str, dict[int, float]] = {}
    for row in rows:
        for k, v in row.items():
            if k != "step" and v is not None:
                expected.setdefault(k, {})[row["step"]] = v
    assert len(expected) > 20
    assert set(history) == set(expected)  # these keys need no renaming
    for k, by_step in expected.items():
        assert history[k] == pytest.approx(by_step, rel=1e-6), k


def test_mlflow_names_resume_and_non_finite_values(tmp_path: Path, tracking) -> None:
    run_dir = tmp_path / "run"
    metrics = {"all/reward": 0.5, "val/mv/version=vision only/accuracy": 0.25, "actor/kl_loss": float("nan")}
    logger = RunLogger(run_dir, ["jsonl", "mlflow"], True, {"a": {"b": 1}, "long": "x" * 900}, "p", "n")
    logger.log(1, metrics)
    logger.close()
    run_id = (run_dir / MLFLOW_RUN_ID_FILE).read_text().strip()
    # a resumed run (same run dir) continues the same MLflow run
    again = RunLogger(run_dir, ["jsonl", "mlflow"], True, {"a": {"b": 1}}, "p", "n")
    again.log(2, {"all/reward": 0.75})
    again.close()
    assert (run_dir / MLFLOW_RUN_ID_FILE).read_text().strip() == run_id
    assert _history(tracking, run_id) == {
        "all/reward": {1: 0.5, 2: 0.75},
        "val/mv/version_vision only/accuracy": {1: 0.25},  # `=` is not allowed in MLflow names
    }
    line = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert line["actor/kl_loss"] is None  # non-finite: null in jsonl, absent from every other backend
    params = tracking.get_run(run_id).data.params
    assert params["a.b"] == "1" and len(params["long"]) == 500
    assert mlflow_key("a/b=c@d") == "a/b_c_d"


def test_missing_mlflow_is_named_with_its_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                fastgrpo_log_messages: list[str]) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if not installed: `import mlflow` raises ImportError
    (tmp_path / "run").mkdir()
    logger = RunLogger(tmp_path / "run", ["jsonl", "mlflow"], True, {}, "p", "n")
    logger.log(1, {"all/reward": 1.0})
    logger.close()
    assert any("pip install 'fastgrpo[mlflow]'" in m for m in fastgrpo_log_messages)
    assert (tmp_path / "run" / "metrics.jsonl").exists()
