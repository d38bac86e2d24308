"""The HF rollout engine: exact sampling, batch independence, EOS handling."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from fastgrpo.models.tiny import build_tiny_qwen2
from fastgrpo.rollout import PromptInput, SamplingParams, make_engine
from fastgrpo.rollout.hf import counter_uniform, row_seed, sample_tokens


def test_sample_tokens_draws_from_the_softmax() -> None:
    logits = torch.tensor([0.0, 1.0, 2.0, -1.0, float("-inf")])  # the last one masked by a warper
    seeds = torch.tensor([row_seed(7, i, 0) for i in range(20000)])
    counts = torch.zeros(5, dtype=torch.float64)
    for pos in range(5):
        counts += torch.bincount(sample_tokens(logits.expand(len(seeds), -1), seeds, pos), minlength=5)
    freq = counts / counts.sum()
    assert counts[4] == 0
    assert torch.allclose(freq[:4], torch.softmax(logits[:4].double(), 0), atol=0.01), freq


def test_sample_tokens_at_the_real_vocabulary_keeps_tail_mass() -> None:
    """151,936 tokens, mass spread over the whole vocabulary: the float64 CDF still hits every region."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(151_936, generator=g)
    seeds = torch.tensor([row_seed(3, i, 0) for i in range(4000)])
    tokens = torch.cat([sample_tokens(logits.expand(250, -1), seeds[i : i + 250], 0) for i in range(0, 4000, 250)])
    probs = torch.softmax(logits.double(), 0)
    # the fraction drawn from the upper half of the vocabulary matches its probability mass
    upper = float(probs[75_968:].sum())
    assert abs(float((tokens >= 75_968).double().mean()) - upper) < 0.03
    assert int(tokens.max()) < 151_936 and len(set(tokens.tolist())) > 3000


def test_sample_tokens_takes_bf16_logits_as_their_float32_values() -> None:
    """bf16 compute hands the sampler bf16 logits: it samples them in float32, the same tokens."""
    logits = torch.randn(64, 151_936, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    seeds = torch.tensor([row_seed(5, i, 0) for i in range(64)])
    tokens = sample_tokens(logits, seeds, 2)
    assert tokens.dtype == torch.int64 and tokens.shape == (64,)
    assert torch.equal(tokens, sample_tokens(logits.float(), seeds, 2))


def test_counter_uniform_is_uniform_and_keyed() -> None:
    seeds = torch.tensor([row_seed(1, i, j) for i in range(5000) for j in range(8)])
    u = counter_uniform(seeds, 3)
    assert float(u.min()) > 0.0 and float(u.max()) < 1.0
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.003
    assert torch.equal(u[5:9], counter_uniform(seeds[5:9], 3))  # a row's draw ignores the other rows
    later = counter_uniform(seeds, 4)
    assert not torch.equal(u, later)
    assert abs(float(torch.corrcoef(torch.stack([u, later]))[0, 1])) < 0.05  # positions are not correlated


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    path: Path = build_tiny_qwen2(tmp_path_factory.mktemp("m") / "model", hidden_size=32, num_layers=2,
                                  num_heads=2, num_kv_heads=1, intermediate_size=64)
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_responses_do_not_depend_on_batching_and_stop_at_eos(tiny: tuple) -> None:
    model, tok = tiny
    prompts = [PromptInput(tok(t)["input_ids"], uid=i) for i, t in enumerate(["1+2=", "3+4+5=", "7+7+7+7="])]
    params = SamplingParams(n=4, max_new_tokens=24, seed=3)
    big = make_engine("hf", model, tok, micro_batch_size=64).generate(prompts, params)
    small = make_engine("hf", model, tok, micro_batch_size=3).generate(prompts[1:], params)
    assert small.response_ids == big.response_ids[4:]
    assert len(big.response_ids) == 12 and big.n == 4
    for r in big.response_ids:
        assert 1 <= len(r) <= 24
        if tok.eos_token_id in r:
            assert r.index(tok.eos_token_id) == len(r) - 1  # nothing after EOS
    again = make_engine("hf", model, tok).generate(prompts, params)
    assert again.response_ids == big.response_ids
    other = make_engine("hf", model, tok).generate(prompts, SamplingParams(n=4, max_new_tokens=24, seed=4))
    assert other.response_ids != big.response_ids


def test_greedy_is_deterministic_argmax(tiny: tuple) -> None:
    model, tok = tiny
    ids = tok("2+2=")["input_ids"]
    out = make_engine("hf", model, tok).generate([PromptInput(ids, uid=0)],
                                                  SamplingParams(n=2, temperature=0.0, max_new_tokens=5))
    with torch.no_grad():
        first = int(model(torch.tensor([ids])).logits[0, -1].argmax())
    assert out.response_ids[0] == out.response_ids[1] and out.response_ids[0][0] == first


def test_compacting_decode_matches_hf_generate(tiny: tuple) -> None:
    """The row-dropping decode loop samples exactly what HF `generate` samples, with the same log-probs."""
    model, tok = tiny
    prompts = [PromptInput(tok(t)["input_ids"], uid=i) for i, t in enumerate(["1+2=", "3+4+5=", "9=", "8+8="])]
    params = SamplingParams(n=6, max_new_tokens=20, seed=11, temperature=0.9, top_p=0.95, top_k=50)
    outs = {}
    for fast in (True, False):
        engine = make_engine("hf", model, tok)
        engine.fast_decode, engine.return_logprobs = fast, True
        outs[fast] = engine.generate(prompts, params)
    assert outs[True].response_ids == outs[False].response_ids
    assert len({len(r) for r in outs[True].response_ids}) > 1  # rows did finish at different lengths
    for a, b in zip(outs[True].logprobs, outs[False].logprobs, strict=True):
        assert torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-5)


def test_distinct_prompts_keep_their_own_cache_rows(tmp_path: Path) -> None:
    """n=1 with distinct prompts (every row unique): each row decodes from its own prompt's cache, as when
    generated alone. The prefill deduplicates rows with torch.unique, which also sorts them; they must be
    put back in batch order even when none repeats (a mix-up changed a greedy answer here)."""
    path = build_tiny_qwen2(tmp_path / "m", hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1,
                            intermediate_size=128)
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    prompts = [PromptInput(tok(t)["input_ids"], uid=i) for i, t in enumerate(["1+2=", "3+4+5=", "9*9="])]
    params = SamplingParams(n=1, temperature=0.0, max_new_tokens=6)
    batched = make_engine("hf", model, tok).generate(prompts, params).response_ids
    alone = [make_engine("hf", model, tok).generate([p], params).response_ids[0] for p in prompts]
    assert batched == alone
