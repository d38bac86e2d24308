"""The GPU presets start as written: `config validate` and `train --dry-run` on CPU, with the real models'
config.json, tokenizer_config.json (chat template) and tokenizer (tests/real_models.py), no weights.

The preset's model.path is a hub id; the override points it at the local copy, so what is checked is the
preset itself plus the files a user downloads.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastgrpo.config import ConfigError, load_config
from fastgrpo.train.model import ModelLoadError
from fastgrpo.train.plan import build_plan
from tests.real_models import QWEN25_VL, R1_DISTILL, write_model_folder

REPO = Path(__file__).resolve().parents[2]
TEXT, VISION = "configs/fast_grpo_text.yaml", "configs/fast_grpo_vision.yaml"


def fastgrpo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fastgrpo", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("preset_models")
    return {name: write_model_folder(name, root / name) for name in (R1_DISTILL, QWEN25_VL)}


@pytest.mark.parametrize("preset", [TEXT, VISION])
def test_each_preset_validates(preset: str) -> None:
    """What `fastgrpo config validate PRESET` runs (the CLI wiring itself is tested in test_cli.py)."""
    cfg = load_config(REPO / preset)
    assert cfg.model.attn_implementation == "auto"  # flash-attn is optional: auto falls back to sdpa


def test_text_preset_dry_run(models: dict[str, Path]) -> None:
    result = fastgrpo("train", TEXT, f"model.path={models[R1_DISTILL]}", "--dry-run", "--nproc", "8")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # DeepSeek-R1-Distill-Qwen-1.5B: 1.78B parameters (untied 151,936-row embedding and head)
    assert "(qwen2): 1.78B parameters, vocabulary 151936, max_position_embeddings 131072" in out
    assert "chat template opens <think>" in out  # the format reward will expect only </think>
    assert "world size   8 process(es)" in out
    assert "max_model_len 9216" in out
    assert "128 prompts x 8 samples = 1024 responses, 8 optimizer update(s)" in out
    assert "16 responses per rank in 4 micro-batch(es) of 4" in out
    assert "prompt <= 1024, response <= 8192, row <= 9216 tokens; eval.max_new_tokens 8192" in out
    # chunked log-probs: 1,024 rows x 151,936 x (2 + 4) bytes = 0.9 GiB, not 4 x 9,216 rows (31.3 GiB)
    assert "logits, chunked log-probs (1024 rows, bf16 + fp32)" in out
    assert re.search(r"logits, chunked log-probs \(1024 rows, bf16 \+ fp32\)\s+0\.9\b", out)
    # 1.78B fp32 master parameters x (param + grad + 2 AdamW moments) x 4 bytes / 8 ranks = 3.3 GiB
    assert re.search(r"actor \(params \+ grads \+ AdamW, float32\)\s+3\.3\b", out)
    assert out.rstrip().endswith("dry run: ok (nothing was trained; data files were not read)")


def test_vision_preset_dry_run(models: dict[str, Path]) -> None:
    result = fastgrpo("train", VISION, f"model.path={models[QWEN25_VL]}", "--dry-run")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "(qwen2_5_vl, vision-language): 8.29B parameters, vocabulary 152064" in out
    assert "chat template opens no thinking span" in out
    assert "world size   1 process(es)" in out
    assert "512 prompts x 5 samples = 2560 responses, 20 optimizer update(s)" in out
    assert "128 responses per rank in 32 micro-batch(es) of 4" in out
    assert "max_model_len 4096" in out


def test_a_response_longer_than_the_model_fails_the_plan_naming_both_sides(models: dict[str, Path]) -> None:
    cfg = load_config(REPO / TEXT, [f"model.path={models[R1_DISTILL]}", "data.max_response_length=131072",
                                    "eval.max_new_tokens=1024"])
    with pytest.raises(ConfigError) as err:
        build_plan(cfg)
    assert "data.max_prompt_length + data.max_response_length" in str(err.value)
    assert "max_position_embeddings (131072" in str(err.value)


def test_eval_max_new_tokens_above_the_engine_length_is_a_config_error() -> None:
    """The old text preset: eval.max_new_tokens 16384 against a 1,024 + 8,192-token engine."""
    with pytest.raises(ConfigError) as err:
        load_config(REPO / TEXT, ["eval.max_new_tokens=16384"])
    assert "eval.max_new_tokens (16384) is above data.max_response_length (8192)" in str(err.value)
    assert "9216 tokens" in str(err.value)
    # without validation during training nothing is cut, so nothing to refuse
    load_config(REPO / TEXT, ["eval.max_new_tokens=16384", "trainer.val_freq=-1"])


def test_a_dry_run_on_a_missing_model_folder_names_it(tmp_path: Path) -> None:
    cfg = load_config(REPO / TEXT, [f"model.path={tmp_path / 'nowhere'}"])
    with pytest.raises(ModelLoadError, match=r"model.path .*nowhere.* does not exist"):
        build_plan(cfg)
