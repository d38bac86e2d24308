"""The thinking-span detection on the real chat templates (R1-Distill, Qwen3, ChatML), and what it changes.

The templates are the published ones (tests/fixtures/models, see tests/real_models.py), loaded through
transformers with the real Qwen vocabulary, so this is what a user's tokenizer renders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from fastgrpo.data.chat_template import (
    detect_think_in_prompt,
    generation_prompt_opens_think,
    generation_prompt_tail,
    think_span_in_prompt,
)
from fastgrpo.reward import RewardScorer, format_reward
from tests.real_models import QWEN3, QWEN25_VL, R1_DISTILL, write_model_folder


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("templates")
    return {name: AutoTokenizer.from_pretrained(write_model_folder(name, root / name))
            for name in (R1_DISTILL, QWEN3, QWEN25_VL)}


def test_r1_distill_opens_think(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[R1_DISTILL]
    assert generation_prompt_tail(tok) == "<｜Assistant｜><think>\n"
    assert think_span_in_prompt(tok) == "open"
    assert generation_prompt_opens_think(tok) is True
    # the rendered prompt a training run tokenizes really ends inside the span
    prompt = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<think>\n")
    assert tok.convert_ids_to_tokens(tok(prompt, add_special_tokens=False)["input_ids"][-2:]) == ["<think>", "Ċ"]


def test_qwen3_opens_nothing_with_thinking_on_and_closes_the_span_with_thinking_off(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[QWEN3]
    assert generation_prompt_tail(tok) == "<|im_start|>assistant\n"
    assert think_span_in_prompt(tok) == "none"
    assert think_span_in_prompt(tok, {"enable_thinking": True}) == "none"
    assert generation_prompt_tail(tok, {"enable_thinking": False}) == "<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert think_span_in_prompt(tok, {"enable_thinking": False}) == "closed"
    assert generation_prompt_opens_think(tok, {"enable_thinking": False}) is False


def test_chatml_opens_nothing(tokenizers: dict[str, Any]) -> None:
    tok = tokenizers[QWEN25_VL]
    assert generation_prompt_tail(tok) == "<|im_start|>assistant\n"
    assert generation_prompt_opens_think(tok) is False
    # an explicit template (a vision model's chat_template.json) wins over the tokenizer's
    r1 = tokenizers[R1_DISTILL].chat_template
    assert generation_prompt_opens_think(tok, chat_template=r1) is True


def test_no_template_means_plain_text(tokenizers: dict[str, Any]) -> None:
    class Plain:
        chat_template = None

    assert generation_prompt_tail(Plain()) == ""
    assert generation_prompt_opens_think(Plain()) is False


def test_detection_logs_the_closed_span(tokenizers: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    closed = tokenizers[QWEN3].chat_template.replace("enable_thinking is defined and enable_thinking is false", "true")
    with caplog.at_level("WARNING", logger="fastgrpo"):
        assert detect_think_in_prompt(tokenizers[QWEN3], chat_template=closed) is False
    assert "closed <think>...</think>" in caplog.text


def test_r1_responses_get_the_format_reward_only_with_the_detected_flag(tokenizers: dict[str, Any]) -> None:
    """What an R1-Distill model writes after `<think>\\n`: reasoning, `</think>`, then the boxed answer."""
    response = "1 plus 1 is 2.\n</think>\n\nThe answer is \\boxed{2}."
    opens = generation_prompt_opens_think(tokenizers[R1_DISTILL])
    assert format_reward(response, "think_boxed", think_in_prompt=opens) == 1.0
    assert format_reward(response, "think_boxed", think_in_prompt=False) == 0.0  # the trap this fixes
    with RewardScorer(num_workers=0) as scorer:
        on = scorer.score([response], ["2"], [{"think_in_prompt": opens}])
        off = scorer.score([response], ["2"])
    assert (on.format, on.accuracy) == ([1.0], [1.0])
    assert off.format == [0.0]


def test_fixture_folders_hold_the_published_template_markers() -> None:
    """Guard against an edited fixture: the decisive substrings of each published template."""
    import json

    root = Path(__file__).resolve().parents[1] / "fixtures" / "models"
    r1 = json.loads((root / R1_DISTILL / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]
    assert r1.endswith("{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}")
    q3 = json.loads((root / QWEN3 / "tokenizer_config.json").read_text(encoding="utf-8"))["chat_template"]
    assert "{%- if enable_thinking is defined and enable_thinking is false %}" in q3
