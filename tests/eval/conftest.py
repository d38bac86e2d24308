"""Shared fixtures for the eval tests: offline hub, a fixture data dir with generated images, a scripted engine."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "eval"
TRUNCATE = "<<no-eos>>"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test may reach the hub; dataset caches go to a temp dir."""
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.getbasetemp() / "hf_datasets")
    monkeypatch.delenv("FASTGRPO_EVAL_DATA", raising=False)


def _image_paths(data_dir: Path) -> set[str]:
    rels: set[str] = set()
    for f in list(data_dir.glob("*.jsonl")) + list(data_dir.glob("vppo/*.json")):
        text = f.read_text()
        rows = (
            json.loads(text)
            if f.suffix == ".json"
            else [json.loads(x) for x in text.splitlines() if x.strip()]
        )
        for row in rows:
            rels.update(row.get("images") or [])
    return rels


def write_aokvqa(path: Path, n: int = 3) -> Path:
    """A-OKVQA validation rows in the hub schema (embedded images, choices + correct_choice_idx) as parquet."""
    import datasets
    from PIL import Image

    choices = [
        ["cat", "dog", "bird", "fish"],
        ["red", "green", "blue", "yellow"],
        ["sitting", "running", "eating", "sleeping"],
    ]
    rows = {
        "question_id": [f"q{i}" for i in range(n)],
        "question": ["What animal is shown?", "What color is the bus?", "What is the man doing?"][:n],
        "choices": choices[:n],
        "correct_choice_idx": [1, 2, 0][:n],
        "direct_answers": [["dog"] * 10, ["blue"] * 10, ["sitting"] * 10][:n],
        "difficult_direct_answer": [False] * n,
        "rationales": [["a rationale"]] * n,
        "image": [Image.new("RGB", (24, 16), color=(40 * i, 90, 160)) for i in range(n)],
    }
    features = datasets.Features(
        {
            "question_id": datasets.Value("string"),
            "question": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "correct_choice_idx": datasets.Value("int64"),
            "direct_answers": datasets.Sequence(datasets.Value("string")),
            "difficult_direct_answer": datasets.Value("bool"),
            "rationales": datasets.Sequence(datasets.Value("string")),
            "image": datasets.Image(),
        }
    )
    datasets.Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A copy of tests/fixtures/eval with every referenced image generated (PIL) under images/."""
    from PIL import Image

    d = tmp_path / "evaldata"
    shutil.copytree(FIXTURES, d)
    for i, rel in enumerate(sorted(_image_paths(d))):
        target = d / rel.replace("./data/", "", 1)
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (16 + i, 12), color=(i * 20 % 255, 100, 200)).save(target)
    write_aokvqa(d / "aokvqa.parquet")
    return d


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from fastgrpo.models.tiny import build_char_tokenizer

    return build_char_tokenizer()


class ScriptedEngine:
    """A RolloutEngine that answers from a script instead of a model, and records what it was asked.

    `script(prompt_text, j)` returns the j-th response for a prompt; a response ending in TRUNCATE
    comes back without EOS (as if cut at max_new_tokens).
    """

    def __init__(
        self, tokenizer: Any, script: Callable[[str, int], str], fail_after_calls: int | None = None
    ) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self.fail_after_calls = fail_after_calls
        self.calls: list[tuple[int, int]] = []
        self.params: list[Any] = []
        self.prompts: list[str] = []
        self.images: list[list[Any]] = []

    def generate(self, prompts: list[Any], params: Any) -> Any:
        from fastgrpo.rollout.base import RolloutOutput

        if self.fail_after_calls is not None and len(self.calls) >= self.fail_after_calls:
            raise KeyboardInterrupt("simulated kill")
        self.calls.append((len(prompts), params.n))
        self.params.append(params)
        out = []
        for p in prompts:
            text = self.tokenizer.decode(p.prompt_ids)
            self.prompts.append(text)
            self.images.append(list(p.images))
            for j in range(params.n):
                resp = self.script(text, j)
                ids = self.tokenizer(resp.replace(TRUNCATE, ""), add_special_tokens=False)["input_ids"]
                if not resp.endswith(TRUNCATE):
                    ids = [*ids, self.tokenizer.eos_token_id]
                out.append(ids)
        return RolloutOutput(response_ids=out, logprobs=None, n=params.n)

    def sync_weights(self, model: Any) -> None: ...

    def sleep(self) -> None: ...

    def wake_up(self) -> None: ...

    @property
    def generated(self) -> int:
        return sum(a * b for a, b in self.calls)


@pytest.fixture
def scripted(tokenizer: Any) -> Callable[..., ScriptedEngine]:
    def make(script: Callable[[str, int], str], **kw: Any) -> ScriptedEngine:
        return ScriptedEngine(tokenizer, script, **kw)

    return make
