"""The one model loader (`fastgrpo.models.loader`): one dtype rule and one ModelLoadError for training and eval."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import fastgrpo.eval.engine as eval_engine
import fastgrpo.train.model as train_model
from fastgrpo.config import ModelConfig
from fastgrpo.eval import load_model
from fastgrpo.models.loader import ModelLoadError, eos_token_ids, load_weights, resolve_dtype
from fastgrpo.models.tiny import build_tiny_qwen2
from fastgrpo.train.model import load_policy_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2(tmp_path_factory.mktemp("loader") / "m", num_layers=1)


def test_auto_dtype_follows_the_compute_device_not_the_machine() -> None:
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16  # no CUDA needed to decide
    for name, dtype in (("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)):
        assert resolve_dtype(name, "cpu") == dtype and resolve_dtype(name, "cuda") == dtype
    with pytest.raises(ModelLoadError, match="unknown dtype 'fp8'"):
        resolve_dtype("fp8", "cpu")


def test_cpu_load_is_float32_unless_asked(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The old eval rule chose bfloat16 whenever CUDA existed, even for a CPU load: pretend CUDA exists.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load_model(str(tiny), device="cpu").model.dtype == torch.float32
    assert load_model(str(tiny), dtype="bfloat16", device="cpu").model.dtype == torch.bfloat16
    # A CPU-held weight carrier for a GPU engine (vLLM) computes on CUDA: auto is bfloat16 there.
    assert load_model(str(tiny), device="cpu", compute_device="cuda").model.dtype == torch.bfloat16
    train = load_policy_model(ModelConfig(path=str(tiny)), torch.device("cpu"), for_training=True)
    assert train.dtype == torch.float32 and train.training
    frozen = load_weights(ModelConfig(path=str(tiny), dtype="float16"), "cpu")
    assert frozen.dtype == torch.float16 and not frozen.training


def test_one_model_load_error_for_training_and_eval(tmp_path: Path) -> None:
    assert train_model.ModelLoadError is ModelLoadError is eval_engine.ModelLoadError
    with pytest.raises(ModelLoadError, match=r"--model '/nonexistent/m' does not exist"):
        load_model("/nonexistent/m")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=r"has no config\.json"):
        load_model(str(empty))
    with pytest.raises(ModelLoadError, match=r"has no config\.json"):
        load_policy_model(ModelConfig(path=str(empty)), torch.device("cpu"), for_training=False)


def test_eos_ids_tokenizer_first_then_generation_config(tiny: Path) -> None:
    loaded = load_model(str(tiny), device="cpu")
    eos = loaded.tokenizer.eos_token_id
    loaded.model.generation_config.eos_token_id = [eos, 7, eos]
    assert eos_token_ids(loaded.model, loaded.tokenizer) == [eos, 7]
