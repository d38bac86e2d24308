"""LoRA adapters (fastgrpo.models.lora) against peft's own merge and the plain model."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import Qwen2ForCausalLM, Qwen2VLForConditionalGeneration

from fastgrpo.models.lora import (
    LoraSpec,
    adapter_state_dict,
    adapters_disabled,
    add_lora,
    has_lora,
    merged_weights,
    trainable_counts,
)
from fastgrpo.models.tiny import tiny_qwen2_config
from fastgrpo.models.tiny_vl import build_vl_tokenizer, tiny_qwen2_vl_config

SPEC = LoraSpec(rank=4, alpha=8.0)


def _model(dtype: torch.dtype = torch.float32, tie: bool = False) -> Qwen2ForCausalLM:
    torch.manual_seed(0)
    cfg = tiny_qwen2_config(300)
    cfg.tie_word_embeddings = tie
    return Qwen2ForCausalLM(cfg).to(dtype).eval()


def _perturb(model: torch.nn.Module) -> None:
    """peft starts lora_B at zero (adapters are a no-op); give them values so they matter."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


IDS = torch.tensor([[5, 17, 42, 99, 7, 250, 3, 64]])


def test_adapters_trainable_base_frozen_in_own_dtypes() -> None:
    model = _model(torch.bfloat16)
    add_lora(model, SPEC, torch.float32)
    assert has_lora(model)
    for name, p in model.named_parameters():
        if ".lora_" in name:
            assert p.requires_grad and p.dtype == torch.float32, name
        else:
            assert not p.requires_grad and p.dtype == torch.bfloat16, name
    trainable, total = trainable_counts(model)
    assert 0 < trainable < 0.10 * total
    # every linear layer of the language model, not the output head
    adapted = {n.rsplit(".lora_A", 1)[0].rsplit(".", 1)[-1] for n in adapter_state_dict(model) if ".lora_A." in n}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    # a bf16 base with fp32 adapters runs forward and backward
    model.train()
    model(IDS).logits.float().sum().backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if ".lora_" in n)


def test_fresh_adapters_are_the_base_and_disabled_adapters_are_the_reference() -> None:
    model = _model()
    base_logits = model(IDS).logits
    add_lora(model, SPEC, torch.float32)
    torch.testing.assert_close(model(IDS).logits, base_logits)  # lora_B starts at 0
    _perturb(model)
    adapted = model(IDS).logits
    assert (adapted - base_logits).abs().max() > 1e-3
    with adapters_disabled(model):
        torch.testing.assert_close(model(IDS).logits, base_logits)
    torch.testing.assert_close(model(IDS).logits, adapted)
    with pytest.raises(RuntimeError), adapters_disabled(model):
        raise RuntimeError("boom")
    torch.testing.assert_close(model(IDS).logits, adapted)  # restored after an error too


@pytest.mark.parametrize("tie", [False, True])
def test_merged_weights_equal_peft_merge_and_load_into_the_plain_model(tie: bool) -> None:
    model = _model(tie=tie)
    add_lora(model, LoraSpec(rank=4, alpha=16.0, target_modules=("q_proj", "v_proj", "down_proj")), torch.float32)
    _perturb(model)
    adapted = model(IDS).logits

    merged = dict(merged_weights(model.state_dict().items(), scaling=16.0 / 4))
    assert not any(".lora_" in k or ".base_layer." in k for k in merged)

    oracle = copy.deepcopy(model)  # peft's own merge, in place, as the reference
    from peft.tuners.lora import LoraLayer

    for m in oracle.modules():
        if isinstance(m, LoraLayer):
            m.merge()
    for k, v in oracle.state_dict().items():
        if ".lora_" in k:
            continue
        torch.testing.assert_close(merged[k.replace(".base_layer.", ".")], v, rtol=1e-6, atol=1e-6)

    plain = _model(tie=tie)
    missing, unexpected = plain.load_state_dict(merged, strict=False)
    assert not unexpected and set(missing) <= ({"lm_head.weight"} if tie else set())
    torch.testing.assert_close(plain(IDS).logits, adapted, rtol=1e-5, atol=1e-5)


def test_merged_weights_refuses_a_stream_missing_an_adapter() -> None:
    model = _model()
    add_lora(model, SPEC, torch.float32)
    items = [(k, v) for k, v in model.state_dict().items() if not k.endswith("q_proj.lora_B.default.weight")]
    with pytest.raises(ValueError, match="q_proj"):
        list(merged_weights(items, SPEC.scaling))


def test_vision_tower_gets_no_adapters() -> None:
    model = Qwen2VLForConditionalGeneration(tiny_qwen2_vl_config(build_vl_tokenizer()))
    add_lora(model, SPEC, torch.float32)
    names = list(adapter_state_dict(model))
    assert names and all("language_model" in n for n in names)
    assert not any("visual" in n for n, p in model.named_parameters() if p.requires_grad)


def test_target_modules_that_match_nothing_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"actor\.lora\.target_modules"):
        add_lora(_model(), LoraSpec(rank=4, alpha=8.0, target_modules=("no_such_proj",)), torch.float32)
