"""Chunked log-probs and entropy from hidden states equal the full-logits path: values and gradients."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, Qwen2ForCausalLM

from fastgrpo.models.tiny import build_char_tokenizer, tiny_qwen2_config
from fastgrpo.models.tiny_vl import build_vl_tokenizer, tiny_qwen2_vl_config
from fastgrpo.train import logprobs
from fastgrpo.train.batch import pack, pack_shared_prompt, response_token_stats
from fastgrpo.train.logprobs import HeadOptions, chunked_logprobs, liger_logprobs
from fastgrpo.train.vision_batch import pack_vision, vision_response_token_stats
from fastgrpo.utils.optional import MissingDependencyError

CPU = torch.device("cpu")
FULL = HeadOptions(method="full", entropy=True)


def _close(a: torch.Tensor, ref: torch.Tensor) -> None:
    """fp32, 1e-5 relative to the tensor's scale: the chunked sums add in another order than one matmul."""
    torch.testing.assert_close(a, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()) + 1e-7)


def _plain(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, y: torch.Tensor, t: float
           ) -> tuple[torch.Tensor, torch.Tensor]:
    logsm = torch.log_softmax(torch.nn.functional.linear(h, w, b).float() / t, dim=-1)
    return logsm.gather(-1, y[:, None]).squeeze(-1), -(logsm.exp() * logsm).sum(-1)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("bias", [False, True])
def test_kernel_matches_log_softmax_values_and_grads(temperature: float, chunk: int, bias: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logprobs, "_ENTROPY_ROWS", 3)  # several entropy row blocks per chunk
    g = torch.Generator().manual_seed(chunk)
    m, hdim, v = 23, 16, 300
    h0 = torch.randn(m, hdim, generator=g)
    w0 = torch.randn(v, hdim, generator=g) * 0.3
    b0 = torch.randn(v, generator=g) if bias else None
    y = torch.randint(0, v, (m,), generator=g)
    g_lp, g_ent = torch.randn(m, generator=g), torch.randn(m, generator=g)
    outs = []
    for fn in ("chunked", "plain"):
        h, w = h0.clone().requires_grad_(), w0.clone().requires_grad_()
        b = b0.clone().requires_grad_() if b0 is not None else None
        if fn == "chunked":
            lp, ent = chunked_logprobs(h, w, b, y, temperature, chunk, with_entropy=True)
        else:
            lp, ent = _plain(h, w, b, y, temperature)
        assert ent is not None
        ((lp * g_lp).sum() + (ent * g_ent).sum()).backward()
        outs.append((lp.detach(), ent.detach(), h.grad, w.grad, b.grad if b is not None else None))
    for a, ref in zip(outs[0], outs[1], strict=True):
        if ref is not None:
            _close(a, ref)


def test_kernel_gradient_of_logp_alone_and_chunk_size_check() -> None:
    g = torch.Generator().manual_seed(0)
    h = torch.randn(9, 8, generator=g, requires_grad=True)
    w = torch.randn(50, 8, generator=g, requires_grad=True)
    y = torch.randint(0, 50, (9,), generator=g)
    lp, ent = chunked_logprobs(h, w, None, y, 1.0, 4)
    assert ent is None
    lp.sum().backward()
    ref_h, ref_w = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    _plain(ref_h, ref_w, None, y, 1.0)[0].sum().backward()
    _close(h.grad, ref_h.grad)
    _close(w.grad, ref_w.grad)
    with pytest.raises(ValueError, match="logprob_chunk_size"):
        chunked_logprobs(h, w, None, y, 1.0, 0)


def _groups(seed: int, vocab: int, n_prompts: int = 4, n: int = 3) -> tuple[list[list[int]], list[list[int]]]:
    rng = random.Random(seed)
    prompts, responses = [], []
    for _ in range(n_prompts):
        p = [rng.randrange(3, vocab) for _ in range(rng.randrange(3, 10))]
        for _ in range(n):
            prompts.append(p)
            responses.append([rng.randrange(3, vocab) for _ in range(rng.choice([1, 2, 9, 17]))])
    responses[2] = []
    return prompts, responses


def _stats_and_grads(model: torch.nn.Module, fn: Any, opts: HeadOptions) -> tuple[torch.Tensor, ...]:
    model.zero_grad()
    st = fn(opts)
    weights = torch.linspace(-1.0, 1.0, st.logp.numel()).view_as(st.logp)
    (st.logp * weights).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return st.logp.detach(), st.entropy.detach() if st.entropy is not None else None, grads


def _assert_same(model: torch.nn.Module, fn: Any, chunk: int = 7) -> None:
    got = _stats_and_grads(model, fn, HeadOptions(method="chunked", chunk_size=chunk, entropy=True))
    ref = _stats_and_grads(model, fn, FULL)
    for a, b in zip(got, ref, strict=True):
        _close(a, b)


def _text_model(tied: bool) -> torch.nn.Module:
    tok = build_char_tokenizer()
    cfg = tiny_qwen2_config(len(tok), hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                            intermediate_size=64)
    cfg.tie_word_embeddings = tied
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.config._attn_implementation = "sdpa"
    return model


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("layout", ["padded", "shared_prompt", "shared_prompt_long_rows"])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_text_model_chunked_equals_full_logits(tied: bool, layout: str, temperature: float) -> None:
    model = _text_model(tied)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    prompts, responses = _groups(seed=len(layout), vocab=model.config.vocab_size)
    if layout == "padded":
        packed = pack(prompts, responses, 0, CPU)
    else:
        packed = pack_shared_prompt(prompts, responses, 0, CPU, row_length=0 if layout == "shared_prompt" else 200)
    _assert_same(model, lambda o: response_token_stats(model, packed, temperature, o))
    # the empty response scores nothing, its entropy is 0
    st = response_token_stats(model, packed, temperature, HeadOptions(entropy=True))
    assert st.logp[2].abs().sum() == 0 and st.entropy is not None and st.entropy[2].abs().sum() == 0
    assert (st.entropy[packed.response_mask] > 0).all()


def _vl_model(variant: str, tied: bool) -> torch.nn.Module:
    tok = build_vl_tokenizer()
    if variant == "qwen3_vl":
        from transformers import Qwen3VLConfig

        text = {"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16, "max_position_embeddings": 512,
                "rope_parameters": {"rope_type": "default", "mrope_section": [4, 2, 2], "rope_theta": 10000.0,
                                    "mrope_interleaved": True},
                "tie_word_embeddings": tied, "pad_token_id": tok.pad_token_id}
        vision = {"depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": 32,
                  "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                  "deepstack_visual_indexes": [0]}
        cfg: Any = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=tied)
    else:
        cfg = tiny_qwen2_vl_config(tok, variant=variant, hidden_size=32, num_heads=2,  # type: ignore[arg-type]
                                   num_kv_heads=1, intermediate_size=64, vision_dim=16, tie_word_embeddings=tied)
    torch.manual_seed(0)
    return AutoModelForImageTextToText.from_config(cfg)


@pytest.mark.parametrize("variant,tied", [("qwen2_vl", True), ("qwen2_5_vl", False), ("qwen3_vl", True),
                                          ("qwen3_vl", False)])
def test_vl_language_heads_chunked_equal_full_logits(variant: str, tied: bool) -> None:
    model = _vl_model(variant, tied)
    prompts, responses = _groups(seed=3, vocab=100)
    packed = pack_vision(prompts, responses, [None] * len(prompts), 0, CPU, image_token_id=10**6)
    _assert_same(model, lambda o: vision_response_token_stats(model, packed, 0.8, o), chunk=5)


def test_bf16_compute_stays_close_to_full_logits(tiny_model: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16, attn_implementation="sdpa")
    prompts, responses = _groups(seed=5, vocab=model.config.vocab_size)
    packed = pack(prompts, responses, 0, CPU)
    got = _stats_and_grads(model, lambda o: response_token_stats(model, packed, 1.0, o), HeadOptions(entropy=True))
    ref = _stats_and_grads(model, lambda o: response_token_stats(model, packed, 1.0, o), FULL)
    torch.testing.assert_close(got[0], ref[0], rtol=0, atol=2e-2)
    torch.testing.assert_close(got[1], ref[1], rtol=0, atol=2e-2)
    cos = torch.nn.functional.cosine_similarity(got[2].float(), ref[2].float(), dim=0)
    assert cos > 0.999


def test_liger_method_fails_clearly_without_a_gpu() -> None:
    h, w, y = torch.randn(3, 4), torch.randn(10, 4), torch.tensor([1, 2, 3])
    with pytest.raises((RuntimeError, MissingDependencyError), match="liger"), torch.no_grad():
        liger_logprobs(h, w, None, y)
    with pytest.raises(RuntimeError, match="values only"):
        liger_logprobs(h.requires_grad_(), w, None, y)
