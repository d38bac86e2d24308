"""Export a checkpoint written by a real (tiny) FAST-GRPO training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from export_helpers import SMALL, flat, invoke, logits
from torch.distributed.checkpoint.format_utils import dcp_to_torch_save
from transformers import AutoModelForCausalLM, AutoTokenizer

from fastgrpo.config import load_config
from fastgrpo.models.tiny import build_tiny_qwen2

REWARD = """
def digits(inputs, **kwargs):
    out = []
    for item in inputs:
        frac = sum(c.isdigit() for c in item["response"]) / max(1, len(item["response"]))
        out.append({"overall": frac, "accuracy": float(frac >= 0.5), "format": 0.0})
    return out
"""


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")
def test_export_a_trained_checkpoint(tmp_path: Path) -> None:
    from fastgrpo.train.recipe import train

    src = build_tiny_qwen2(tmp_path / "tiny", seed=0, **SMALL)
    data = tmp_path / "train.jsonl"
    data.write_text(
        "".join(
            json.dumps({"problem": f"{a}+{b}", "answer": str(a + b)}) + "\n"
            for a in range(1, 5)
            for b in range(1, 5)
        )
    )
    (tmp_path / "reward.py").write_text(REWARD)
    overrides = {
        "model.path": src,
        "data.train_files": data,
        "data.max_prompt_length": 64,
        "data.max_response_length": 8,
        "data.rollout_batch_size": 2,
        "rollout.n": 2,
        "rollout.engine": "hf",
        "actor.lr": 1e-2,
        "actor.global_batch_size": 4,
        "actor.micro_batch_size": 4,
        "reward.reward_function": f"{tmp_path}/reward.py:digits",
        "reward.num_workers": 1,
        "algorithm.online_filtering": False,
        "trainer.output_dir": tmp_path / "runs",
        "trainer.experiment_name": "trained",
        "trainer.max_steps": 2,
        "trainer.save_freq": 2,
        "trainer.logger": "[jsonl]",
    }
    run = train(load_config(None, [f"{k}={v}" for k, v in overrides.items()]))
    assert (run / "checkpoints" / "global_step_000002").is_dir()

    result = invoke(run, "--dtype", "bfloat16")
    assert result.exit_code == 0, result.output
    assert f"exported step 2 to {run / 'export'}" in flat(result.output)

    # Reference: the checkpoint converted by torch's own DCP tool, loaded into the base model.
    dcp_to_torch_save(run / "checkpoints" / "global_step_000002" / "model", tmp_path / "ref.pt")
    state = torch.load(tmp_path / "ref.pt", weights_only=True)["model"]
    ref = AutoModelForCausalLM.from_pretrained(src).eval()
    before = logits(ref)
    ref.load_state_dict({k: v.to(torch.bfloat16).float() for k, v in state.items()})
    assert not torch.allclose(before, logits(ref)), "training did not change the weights"

    exported = AutoModelForCausalLM.from_pretrained(run / "export", dtype=torch.float32).eval()
    torch.testing.assert_close(logits(exported), logits(ref), rtol=0, atol=1e-5)
    assert AutoTokenizer.from_pretrained(run / "export").chat_template
    card = (run / "export" / "README.md").read_text()
    assert "| Steps | 2 of 2 |" in card and "| Training data | train.jsonl (local) |" in card
