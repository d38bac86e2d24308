"""Attention/kernel selection: sdpa on CPU, flash-attn and Liger only on request, and a missing package
or device is a clear error (MissingDependencyError / ModelLoadError), never an ImportError traceback."""

from __future__ import annotations

import importlib.machinery
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from fastgrpo.config import ModelConfig
from fastgrpo.models.kernels import apply_liger, is_vision_config, select_attn_implementation
from fastgrpo.models.tiny_vl import build_tiny_qwen2_vl
from fastgrpo.train.model import ModelLoadError, load_policy_model
from fastgrpo.utils.optional import MissingDependencyError

CPU, CUDA = torch.device("cpu"), torch.device("cuda", 0)


def fake_module(monkeypatch: pytest.MonkeyPatch, name: str, **attrs: Any) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    for k, v in attrs.items():
        setattr(mod, k, v)
    monkeypatch.setitem(sys.modules, name, mod)
    return mod


def test_auto_attention() -> None:
    assert select_attn_implementation("auto", CPU, torch.float32) == "sdpa"
    assert select_attn_implementation("eager", CPU) == "eager"
    assert select_attn_implementation("sdpa", CUDA, torch.bfloat16) == "sdpa"
    with pytest.raises(ValueError, match="choose one of"):
        select_attn_implementation("flash3", CPU)


def test_auto_picks_flash_attention_only_with_cuda_half_and_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flash_attn", None)
    assert select_attn_implementation("auto", CUDA, torch.bfloat16) == "sdpa"
    fake_module(monkeypatch, "flash_attn")
    assert select_attn_implementation("auto", CUDA, torch.bfloat16) == "flash_attention_2"
    assert select_attn_implementation("auto", CUDA, torch.float32) == "sdpa"
    assert select_attn_implementation("auto", CPU, torch.bfloat16) == "sdpa"


def test_auto_falls_back_to_sdpa_when_flash_attn_is_installed_but_broken(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A flash-attn wheel built for another torch is found by importlib but fails to import."""
    pkg = tmp_path / "flash_attn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('undefined symbol: _ZN3c104cuda9SetDevice')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "flash_attn", raising=False)
    with caplog.at_level("WARNING", logger="fastgrpo"):
        assert select_attn_implementation("auto", CUDA, torch.bfloat16) == "sdpa"
    assert "does not import" in caplog.text and "undefined symbol" in caplog.text


def test_flash_attention_errors_are_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # not installed (also on a GPU machine)
    with pytest.raises(MissingDependencyError) as err:
        select_attn_implementation("flash_attention_2", CUDA, torch.bfloat16)
    assert "flash_attention_2" in str(err.value) and "pip install flash-attn --no-build-isolation" in str(err.value)
    assert not isinstance(err.value, ImportError) and err.value.__cause__ is None
    fake_module(monkeypatch, "flash_attn")
    with pytest.raises(RuntimeError, match="needs a CUDA device"):
        select_attn_implementation("flash_attention_2", CPU, torch.bfloat16)
    with pytest.raises(RuntimeError, match="bfloat16"):
        select_attn_implementation("flash_attention_2", CUDA, torch.float32)
    assert select_attn_implementation("flash_attention_2", CUDA, torch.bfloat16) == "flash_attention_2"


def test_liger(monkeypatch: pytest.MonkeyPatch) -> None:
    assert apply_liger(object(), enabled=False) is False  # never imported when off
    monkeypatch.setitem(sys.modules, "liger_kernel", None)
    with pytest.raises(MissingDependencyError, match=r"model\.enable_liger=true.*liger_kernel.*fastgrpo\[liger\]"):
        apply_liger(object(), enabled=True)
    calls: list[dict[str, Any]] = []
    fake_module(monkeypatch, "liger_kernel")
    fake_module(monkeypatch, "liger_kernel.transformers",
                _apply_liger_kernel_to_instance=lambda **kw: calls.append(kw))
    model = object()
    assert apply_liger(model, enabled=True) is True
    assert calls[0]["model"] is model and calls[0]["fused_linear_cross_entropy"] is False
    assert calls[0]["cross_entropy"] is False and calls[0]["rms_norm"] is True


@pytest.fixture(scope="module")
def vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2_vl(tmp_path_factory.mktemp("vlk") / "model")


def test_load_policy_model_for_vision(vl_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_policy_model(ModelConfig(path=str(vl_dir)), CPU, for_training=True)
    assert model.training and is_vision_config(model.config)
    assert model.config._attn_implementation == "sdpa"
    frozen = load_policy_model(ModelConfig(path=str(vl_dir)), CPU, for_training=False)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    monkeypatch.setitem(sys.modules, "flash_attn", None)
    monkeypatch.setitem(sys.modules, "liger_kernel", None)
    with pytest.raises(ModelLoadError, match="flash_attention_2"):
        load_policy_model(ModelConfig(path=str(vl_dir), attn_implementation="flash_attention_2"), CPU, True)
    with pytest.raises(ModelLoadError, match="enable_liger"):
        load_policy_model(ModelConfig(path=str(vl_dir), enable_liger=True), CPU, True)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_policy_model(ModelConfig(path=str(vl_dir / "nope")), CPU, True)
