"""Helpers for export tests: run directories in the trainer's layout, built from tiny local models.

A run has hf_base/ (config, generation config, tokenizer, chat template; no weights),
config.yaml, and DCP checkpoints whose weights are the tiny model perturbed by a
step-dependent amount, so each step has distinct, reproducible weights
(`expected_model` rebuilds them independently of the exporter).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2ForCausalLM
from typer.testing import CliRunner, Result

from fastgrpo import log
from fastgrpo.cli.main import app
from fastgrpo.config import dump_config, load_config
from fastgrpo.models.tiny import build_char_tokenizer, tiny_qwen2_config
from fastgrpo.run_dir import write_manifest

SMALL = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RUN_OVERRIDES = [
    "data.train_files=openai/gsm8k@train",
    "trainer.max_steps=10",
    "algorithm.thinking_reward_weight=0.7",
    "algorithm.kl_min_coef=0.002",
]


@contextlib.contextmanager
def preserved_logging() -> Iterator[None]:
    """Restore the `fastgrpo` logger (level, handlers, propagate) that the CLI configures in-process.

    pytest attaches its capture handlers to non-propagating loggers for each test phase;
    those are left out of what is restored.
    """
    logger = logging.getLogger("fastgrpo")

    def pytest_owned(h: logging.Handler) -> bool:
        return type(h).__module__.startswith("_pytest")

    def own(handlers: list[logging.Handler]) -> list[logging.Handler]:
        return [h for h in handlers if not pytest_owned(h)]

    saved = (logger.level, own(logger.handlers), logger.propagate, log._configured)
    try:
        yield
    finally:
        logger.setLevel(saved[0])
        logger.handlers[:] = saved[1] + [h for h in logger.handlers if pytest_owned(h)]
        logger.propagate = saved[2]
        log._configured = saved[3]


def invoke(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(
        app, ["export", *map(str, args)], env={"COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    )


def flat(text: str) -> str:
    return " ".join(ANSI.sub("", text).split())


def build_untied_src(out: Path) -> Path:
    tok = build_char_tokenizer()
    config = tiny_qwen2_config(
        len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **SMALL
    )
    config.tie_word_embeddings = False
    torch.manual_seed(1)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def expected_model(src: Path, step: int) -> torch.nn.Module:
    """The weights the checkpoint of `step` holds, rebuilt from the source model (float32)."""
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    with torch.no_grad():
        for i, (_, p) in enumerate(model.named_parameters()):
            p.add_(0.002 * step * ((i % 5) - 2))
    return model.eval()


def make_run(
    run_dir: Path,
    src: Path,
    steps: tuple[int, ...] = (5, 10),
    include_lm_head: bool = False,
    dtype: torch.dtype = torch.float32,
    overrides: list[str] | None = None,
) -> Path:
    """A run directory in the trainer's layout (see fastgrpo/run_dir.py)."""
    run_dir.mkdir(parents=True)
    cfg = load_config(None, [f"model.path={src}", *RUN_OVERRIDES, *(overrides or [])])
    (run_dir / "config.yaml").write_text(dump_config(cfg))
    base = AutoModelForCausalLM.from_pretrained(src)
    base.config.save_pretrained(run_dir / "hf_base")
    base.generation_config.save_pretrained(run_dir / "hf_base")
    AutoTokenizer.from_pretrained(src).save_pretrained(run_dir / "hf_base")
    for step in steps:
        model = expected_model(src, step)
        state = {k: v.to(dtype) for k, v in model.state_dict().items()}
        if not include_lm_head and model.config.tie_word_embeddings:
            state.pop("lm_head.weight")
        ckpt = run_dir / "checkpoints" / f"global_step_{step:06d}"
        with warnings.catch_warnings():  # "assuming the intent is to save in a single process": it is
            warnings.simplefilter("ignore", UserWarning)
            dcp.save({"model": state}, checkpoint_id=str(ckpt / "model"), no_dist=True)
        (ckpt / "optim").mkdir()
        (ckpt / "trainer_state.json").write_text(json.dumps({"step": step, "dtype": str(dtype)[6:]}))
        write_manifest(ckpt, step)
    (run_dir / "metrics.jsonl").write_text("")
    return run_dir


@torch.no_grad()
def logits(model: torch.nn.Module, ids: torch.Tensor | None = None) -> torch.Tensor:
    ids = ids if ids is not None else torch.tensor([[5, 17, 42, 9, 3, 60, 11, 2, 33, 8]])
    return model(input_ids=ids).logits.float()


def tree(path: Path) -> dict[str, bytes]:
    """Every file under path (relative name -> content), to prove nothing changed."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
