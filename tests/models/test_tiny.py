"""The tiny Qwen2 + tokenizer: exact round trips, single-token markers, and a folder that
`AutoTokenizer` / `AutoModelForCausalLM` load back to the very same tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

from fastgrpo.models.tiny import (
    CHAT_TEMPLATE,
    MARKER_TOKENS,
    SPECIAL_TOKENS,
    build_char_tokenizer,
    build_tiny_qwen2,
)

TEXTS = [
    "hello world",
    "a . b , c ! d ? (e) 'f' \"g\"",
    "line 1\nline 2\n\n  indented\ttab  \n",
    "\n\n\n",
    "  leading and trailing spaces  ",
    "<think>\nStep 1: 12 + 30 = 42\n</think>\nSo \\boxed{42}",
    "<answer>7</answer><image>",
    "<|im_start|>user\n1+2=<|im_end|>\n<|im_start|>assistant\n",
    "don't we'll they're",
    "x^2 + y_1 = {z} ~ `code` | #$%&*@",
    "é π √2 ∑ 中文 🙂",  # any text: non-ASCII as UTF-8 bytes
]


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return build_char_tokenizer()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_qwen2(
        tmp_path_factory.mktemp("tiny"),
        seed=0,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        intermediate_size=64,
    )


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tok: PreTrainedTokenizerFast, text: str) -> None:
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text


def test_ascii_is_one_token_per_character(tok: PreTrainedTokenizerFast) -> None:
    text = "line 1\nline 2\t(x)"
    assert len(tok.encode(text, add_special_tokens=False)) == len(text)


@pytest.mark.parametrize("marker", SPECIAL_TOKENS + MARKER_TOKENS)
def test_markers_are_single_tokens(tok: PreTrainedTokenizerFast, marker: str) -> None:
    ids = tok.encode(f"a{marker}b", add_special_tokens=False)
    assert len(ids) == 3
    assert tok.convert_ids_to_tokens(ids[1]) == marker


def test_special_tokens_and_padding(tok: PreTrainedTokenizerFast) -> None:
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert tok.eos_token_id != tok.pad_token_id
    assert tok.bos_token is None
    assert tok.padding_side == "left"
    assert tok.encode("ab") == tok.encode("ab", add_special_tokens=False)  # no BOS/EOS added
    skipped = tok.decode(tok.encode("<|im_start|>hi<|im_end|>"), skip_special_tokens=True)
    assert skipped == "hi"


def test_chat_template(tok: PreTrainedTokenizerFast) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "1+2?"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n1+2?<|im_end|>\n"
    assert text == expected + "<|im_start|>assistant\n"


def test_saved_folder_has_what_from_pretrained_needs(model_dir: Path) -> None:
    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["num_hidden_layers"] == 1


def test_auto_tokenizer_reloads_the_same_tokenizer(tok: PreTrainedTokenizerFast, model_dir: Path) -> None:
    """AutoTokenizer on a qwen2 folder rebuilds a Qwen2Tokenizer; it must tokenize exactly like ours."""
    loaded = AutoTokenizer.from_pretrained(model_dir)
    assert loaded.get_vocab() == tok.get_vocab()
    assert (loaded.eos_token_id, loaded.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    assert loaded.padding_side == "left"
    assert loaded.chat_template == CHAT_TEMPLATE
    for text in TEXTS:
        ids = loaded.encode(text, add_special_tokens=False)
        assert ids == tok.encode(text, add_special_tokens=False), text
        assert loaded.decode(ids) == text


def test_model_loads_and_generates(tok: PreTrainedTokenizerFast, model_dir: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    assert model.config.vocab_size == len(tok)
    assert model.generation_config.eos_token_id == tok.eos_token_id
    assert model.generation_config.pad_token_id == tok.pad_token_id
    batch = tok(["1+2=", "12+30="], return_tensors="pt", padding=True)
    assert batch["attention_mask"][0, 0] == 0  # left padding
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2 and batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 4


def test_build_is_seeded(tmp_path: Path) -> None:
    kwargs = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 32}
    a = AutoModelForCausalLM.from_pretrained(build_tiny_qwen2(tmp_path / "a", seed=3, **kwargs))
    b = AutoModelForCausalLM.from_pretrained(build_tiny_qwen2(tmp_path / "b", seed=3, **kwargs))
    c = AutoModelForCausalLM.from_pretrained(build_tiny_qwen2(tmp_path / "c", seed=4, **kwargs))
    wa, wb, wc = (m.model.embed_tokens.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
