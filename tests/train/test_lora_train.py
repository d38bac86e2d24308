"""Training with LoRA adapters (actor.lora): learning, the reference as the base, small checkpoints, resume, FSDP2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed.checkpoint as dcp

from fastgrpo.models.tiny import build_tiny_qwen2
from fastgrpo.run_dir import list_checkpoints, step_dir_name
from fastgrpo.train.dist import DistInfo
from fastgrpo.train.recipe import FastGRPORecipe, train

from .conftest import read_metrics, toy_config
from .test_recipe import _assert_metrics_close, assert_two_processes_match_one

REPO = Path(__file__).resolve().parents[2]
LORA = {"actor.lora.rank": 2, "actor.lora.alpha": 8, "actor.lr": 2e-2}


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Wide enough that rank-2 adapters are a few percent of the weights, as LoRA is used."""
    return build_tiny_qwen2(tmp_path_factory.mktemp("wide") / "model", seed=0, hidden_size=64, num_layers=2,
                            num_heads=2, num_kv_heads=1, intermediate_size=256)


def _tensor_bytes(dcp_dir: Path) -> int:
    """Bytes of the tensors a DCP folder holds (its files add per-tensor metadata, which dominates a tiny model)."""
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    meta = dcp.FileSystemReader(str(dcp_dir)).read_metadata().state_dict_metadata.values()
    return sum(m.size.numel() * m.properties.dtype.itemsize for m in meta if isinstance(m, TensorStorageMetadata))


def test_setup_trains_only_adapters_and_has_no_reference_copy(wide_model: Path, toy_data: Path,
                                                                tmp_path: Path) -> None:
    recipe = FastGRPORecipe(toy_config(wide_model, toy_data, tmp_path, **LORA), DistInfo(0, 1, 0, torch.device("cpu")))
    recipe.setup()
    trained = {id(p) for g in recipe.optimizer.param_groups for p in g["params"]}
    names = [n for n, p in recipe.model.named_parameters() if id(p) in trained]
    assert names and all(".lora_" in n for n in names)
    total = sum(p.numel() for p in recipe.model.parameters())
    assert sum(p.numel() for n, p in recipe.model.named_parameters() if id(p) in trained) <= 0.05 * total
    assert recipe.use_kl and recipe.ref is None  # the reference is the actor with its adapters off


@pytest.mark.slow
def test_lora_reference_is_the_base_and_checkpoints_hold_only_adapters(wide_model: Path, toy_data: Path,
                                                                       tmp_path: Path) -> None:
    steps = {"trainer.max_steps": 4, "rollout.n": 8, "actor.global_batch_size": 32, "trainer.save_freq": 4}
    run_dir = train(toy_config(wide_model, toy_data, tmp_path / "lora", **steps, **LORA))
    rows = read_metrics(run_dir)
    # Step 1: adapters start as a no-op (lora_B = 0), so the actor is its reference: KL 0 exactly; then it moves.
    assert rows[0]["actor/kl_loss"] == pytest.approx(0.0, abs=1e-7)
    assert rows[-1]["actor/kl_loss"] > 1e-6

    (_, ckpt), = list_checkpoints(run_dir / "checkpoints")
    keys = list(dcp.FileSystemReader(str(ckpt / "model")).read_metadata().state_dict_metadata)
    assert keys and all(".lora_" in k for k in keys)  # no frozen base tensor, not even a tied alias
    full = train(toy_config(wide_model, toy_data, tmp_path / "full", **{**steps, "trainer.max_steps": 1,
                                                                          "trainer.save_freq": 1}))
    (_, full_ckpt), = list_checkpoints(full / "checkpoints")
    lora_bytes = _tensor_bytes(ckpt / "model") + _tensor_bytes(ckpt / "optim")
    full_bytes = _tensor_bytes(full_ckpt / "model") + _tensor_bytes(full_ckpt / "optim")
    assert lora_bytes <= 0.10 * full_bytes, (lora_bytes, full_bytes)


@pytest.mark.slow
def test_lora_resume_matches_uninterrupted(wide_model: Path, toy_data: Path, tmp_path: Path) -> None:
    extra = {"trainer.max_steps": 4, "trainer.save_freq": 2, "trainer.save_limit": 2, **LORA}
    reference = train(toy_config(wide_model, toy_data, tmp_path / "ref", **extra))
    resumed_dir = tmp_path / "resumed" / "run"
    shutil.copytree(reference, resumed_dir)
    shutil.rmtree(resumed_dir / "checkpoints" / step_dir_name(4))  # as if killed after step 2's save
    train(toy_config(wide_model, toy_data, tmp_path / "resumed", **extra))
    assert [s for s, _ in list_checkpoints(resumed_dir / "checkpoints")] == [2, 4]
    _assert_metrics_close(read_metrics(reference), read_metrics(resumed_dir), rel=1e-6)


@pytest.mark.slow
def test_lora_two_processes_match_one_process(wide_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """FSDP2 over frozen base weights and trainable adapters (gloo) computes the same steps as one process."""
    assert_two_processes_match_one(wide_model, toy_data, tmp_path, {"trainer.max_steps": 3,
                                                                    "data.max_response_length": 10, **LORA})


@pytest.mark.slow
def test_merged_export_equals_the_adapter_model(wide_model: Path, toy_data: Path, tmp_path: Path) -> None:
    """`fastgrpo export` of a LoRA run: the base with the adapters merged, checked against peft's own forward."""
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import AutoModelForCausalLM

    from fastgrpo.export.exporter import ExportOptions, export

    run_dir = train(toy_config(wide_model, toy_data, tmp_path, **{"trainer.max_steps": 2, "trainer.save_freq": 2,
                                                                   **LORA}))
    out = export(ExportOptions(source=run_dir, out=tmp_path / "export")).folder

    (_, ckpt), = list_checkpoints(run_dir / "checkpoints")
    expected = AutoModelForCausalLM.from_pretrained(wide_model, dtype=torch.float32)
    inject_adapter_in_model(LoraConfig(r=2, lora_alpha=8, target_modules="all-linear"), expected)
    adapters = {k: torch.empty_like(v) for k, v in expected.state_dict().items() if ".lora_" in k}
    dcp.load({"model": adapters}, checkpoint_id=str(ckpt / "model"))
    assert max(v.abs().max().item() for k, v in adapters.items() if ".lora_B." in k) > 0  # trained, not a no-op
    expected.load_state_dict(adapters, strict=False)
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)  # a plain HF folder
    assert not any(".lora_" in k for k in merged.state_dict())
    ids = torch.tensor([[5, 17, 42, 99, 7, 25, 3, 64, 11, 30]])
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, expected.eval()(ids).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_adapter_only_export_is_a_peft_folder_of_the_trained_policy(wide_model: Path, toy_data: Path,
                                                                     tmp_path: Path) -> None:
    """`fastgrpo export --adapter-only`: peft loads it onto the base and gives the merged export's logits."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir = train(toy_config(wide_model, toy_data, tmp_path, **{"trainer.max_steps": 2, "trainer.save_freq": 2,
                                                                   **LORA}))
    for args in (["--out", str(tmp_path / "merged")], ["--adapter-only", "--out", str(tmp_path / "adapter")]):
        proc = subprocess.run([sys.executable, "-m", "fastgrpo", "export", str(run_dir), *args], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    adapter = tmp_path / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in adapter.iterdir()}
    assert not (adapter / "model.safetensors").exists()
    assert _dir_bytes(adapter) < 0.5 * _dir_bytes(tmp_path / "merged")
    base = AutoModelForCausalLM.from_pretrained(wide_model, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, str(adapter)).eval()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype=torch.float32).eval()
    ids = torch.tensor([[5, 17, 42, 99, 7, 25, 3, 64, 11, 30]])
    with torch.no_grad():
        torch.testing.assert_close(peft_model(ids).logits, merged(ids).logits, rtol=1e-5, atol=1e-5)


def test_adapter_only_export_of_a_full_run_is_refused(tiny_model: Path, toy_data: Path, tmp_path: Path) -> None:
    from fastgrpo.export.errors import ExportError
    from fastgrpo.export.exporter import ExportOptions, plan_export

    run_dir = train(toy_config(tiny_model, toy_data, tmp_path, **{"trainer.max_steps": 1, "trainer.save_freq": 1}))
    with pytest.raises(ExportError, match="not from a LoRA run"):
        plan_export(ExportOptions(source=run_dir, adapter_only=True))


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
