"""Exporting to a local folder: it reloads with transformers and reproduces the checkpoint's logits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from export_helpers import build_untied_src, expected_model, flat, invoke, logits, make_run, tree
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from fastgrpo.export import ExportOptions, VerifyError, export, plan_export, write_export
from fastgrpo.export import hf_folder as hf

FILES = {
    "README.md",
    "chat_template.jinja",
    "config.json",
    "fastgrpo_export.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
}


def _no_temp_left(parent: Path) -> None:
    assert not [p.name for p in parent.iterdir() if p.name.startswith(".")], "temp folders left behind"


def _safetensors_keys_and_dtypes(folder: Path) -> dict[str, torch.dtype]:
    out = {}
    for f in folder.glob("*.safetensors"):
        with safe_open(str(f), "pt") as fh:
            for k in fh.keys():  # noqa: SIM118 - safe_open is not a dict
                out[k] = fh.get_tensor(k).dtype
    return out


def test_export_latest_checkpoint_reloads_with_matching_logits(run_dir: Path, tiny_src: Path) -> None:
    result = invoke(run_dir)
    assert result.exit_code == 0, result.output
    out = run_dir / "export"
    assert "exported step 10 to" in flat(result.output)
    assert {p.name for p in out.iterdir()} == FILES
    _no_temp_left(run_dir)

    model = AutoModelForCausalLM.from_pretrained(out).eval()
    ref = expected_model(tiny_src, 10)
    torch.testing.assert_close(logits(model), logits(ref), rtol=0, atol=1e-5)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # still tied
    assert "lm_head.weight" not in _safetensors_keys_and_dtypes(out)

    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == AutoTokenizer.from_pretrained(tiny_src).chat_template
    text = tok.apply_chat_template(
        [{"role": "user", "content": "1+1?"}], add_generation_prompt=True, tokenize=False
    )
    assert text.endswith("<|im_start|>assistant\n")
    assert json.loads((out / "config.json").read_text())["dtype"] == "float32"
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == tok.eos_token_id
    marker = json.loads((out / "fastgrpo_export.json").read_text())
    assert marker["step"] == 10 and marker["checkpoint"] == "global_step_000010"


def test_step_and_bfloat16(run_dir: Path, tiny_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "exports" / "s5-bf16"
    result = invoke(run_dir, "--step", "5", "--dtype", "bfloat16", "--out", out)
    assert result.exit_code == 0, result.output
    assert set(_safetensors_keys_and_dtypes(out).values()) == {torch.bfloat16}
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert json.loads((out / "fastgrpo_export.json").read_text())["step"] == 5

    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ref = expected_model(tiny_src, 5)
    rounded = expected_model(tiny_src, 5)
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    torch.testing.assert_close(
        logits(model), logits(rounded), rtol=0, atol=1e-5
    )  # exactly the rounded weights
    torch.testing.assert_close(logits(model), logits(ref), rtol=0, atol=0.05)  # and close to the originals


def test_sharded_export_has_an_index(run_dir: Path, tiny_src: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    result = invoke(run_dir, "--out", out, "--max-shard-size", "20kB")
    assert result.exit_code == 0, result.output
    shards = sorted(p.name for p in out.glob("*.safetensors"))
    assert len(shards) > 2 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    index = json.loads((out / "model.safetensors.index.json").read_text())
    stored = _safetensors_keys_and_dtypes(out)
    assert set(index["weight_map"]) == set(stored) and set(index["weight_map"].values()) == set(shards)
    assert (
        index["metadata"]["total_size"]
        == sum(t.numel() * t.element_size() for t in expected_model(tiny_src, 10).state_dict().values())
        - expected_model(tiny_src, 10).lm_head.weight.numel() * 4
    )  # tied lm_head is not stored
    for shard in out.glob("*.safetensors"):
        assert shard.stat().st_size <= 20_000 + 4_000 or len(safe_open(str(shard), "pt").keys()) == 1
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    torch.testing.assert_close(logits(model), logits(expected_model(tiny_src, 10)), rtol=0, atol=1e-5)


def test_untied_model_keeps_its_lm_head(tmp_path: Path) -> None:
    src = build_untied_src(tmp_path / "untied-src")
    run = make_run(tmp_path / "runs" / "untied", src, steps=(3,))
    result = invoke(run)
    assert result.exit_code == 0, result.output
    assert "lm_head.weight" in _safetensors_keys_and_dtypes(run / "export")
    model = AutoModelForCausalLM.from_pretrained(run / "export").eval()
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)
    torch.testing.assert_close(logits(model), logits(expected_model(src, 3)), rtol=0, atol=1e-5)


def test_tied_checkpoint_that_also_saved_lm_head(tmp_path: Path, tiny_src: Path) -> None:
    """get_model_state_dict keeps both names of a tied weight; the export stores it once."""
    run = make_run(
        tmp_path / "runs" / "both", tiny_src, steps=(2,), include_lm_head=True, dtype=torch.bfloat16
    )
    result = invoke(run)
    assert result.exit_code == 0, result.output
    stored = _safetensors_keys_and_dtypes(run / "export")
    assert "lm_head.weight" not in stored and set(stored.values()) == {torch.bfloat16}  # training dtype kept
    assert json.loads((run / "export" / "config.json").read_text())["dtype"] == "bfloat16"


def test_reexport_replaces_the_previous_export_atomically(run_dir: Path) -> None:
    assert invoke(run_dir, "--step", "5").exit_code == 0
    first = tree(run_dir / "export")
    result = invoke(run_dir)
    assert result.exit_code == 0, result.output
    second = tree(run_dir / "export")
    assert json.loads(second["fastgrpo_export.json"])["step"] == 10
    assert first["model.safetensors"] != second["model.safetensors"]
    _no_temp_left(run_dir)


def test_failed_verification_leaves_nothing(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug that corrupts one tensor on the way out must be caught before anything is kept."""
    real = hf.write_shard

    def corrupt(path: Path, tensors: dict[str, torch.Tensor]) -> None:
        name = next(k for k in tensors if k.endswith("mlp.down_proj.weight"))
        real(path, {**tensors, name: tensors[name] * 1.5})

    monkeypatch.setattr(hf, "write_shard", corrupt)
    result = invoke(run_dir)
    assert result.exit_code == 1
    assert "exported logits differ from the checkpoint's" in flat(result.output)
    assert not (run_dir / "export").exists()
    _no_temp_left(run_dir)


def test_failure_keeps_the_previous_export(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert invoke(run_dir, "--step", "5").exit_code == 0
    before = tree(run_dir / "export")

    def boom(*args: object, **kwargs: object) -> None:
        raise VerifyError("simulated")

    monkeypatch.setattr("fastgrpo.export.exporter.verify_export", boom)
    assert invoke(run_dir).exit_code == 1
    assert tree(run_dir / "export") == before
    _no_temp_left(run_dir)


def test_float16_overflow_is_refused(tmp_path: Path, tiny_src: Path) -> None:
    run = make_run(tmp_path / "runs" / "big", tiny_src, steps=(1,))
    opts = ExportOptions(source=run, dtype="float16")
    plan = plan_export(opts)
    import torch.distributed.checkpoint as dcp

    from fastgrpo.export import load_tensors

    state = load_tensors(run / "checkpoints" / "global_step_000001" / "model")
    state["model.norm.weight"][0] = 1e6
    with pytest.warns(UserWarning):  # overwriting an existing checkpoint, single process: both intended
        dcp.save(
            {"model": state},
            checkpoint_id=str(run / "checkpoints" / "global_step_000001" / "model"),
            no_dist=True,
        )
    with pytest.raises(Exception, match="overflows float16"):
        write_export(plan)
    assert not (run / "export").exists()


def test_python_api(run_dir: Path, tmp_path: Path) -> None:
    result = export(ExportOptions(source=run_dir, out=tmp_path / "api", dtype="float16"))
    assert result.folder == tmp_path / "api" and result.verify is not None
    assert result.verify.max_abs_diff <= result.verify.tolerance and result.verify.chat_template
    assert json.loads((result.folder / "config.json").read_text())["dtype"] == "float16"
