"""The real vLLM engine (CPU build): weight sync proven by log-probs, greedy equal to HF, 16-bit mismatch
measured and bounded by TIS, the HF engine's own sampling log-probs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fastgrpo.algo.rollout_is import rollout_mismatch, tis_weights
from fastgrpo.models.tiny import build_char_tokenizer
from fastgrpo.rollout import PromptInput, RolloutOutput, SamplingParams, make_engine
from fastgrpo.train.batch import pack, response_logprobs
from tests.vllm_support import KV_CACHE_BYTES, build_vllm_tiny, needs_vllm

pytestmark = needs_vllm


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_vllm_tiny(tmp_path_factory.mktemp("vllm") / "model")


def prompts(tok) -> list[PromptInput]:
    return [PromptInput(tok(t, add_special_tokens=False)["input_ids"], uid=i)
            for i, t in enumerate(["1+2=", "3+4+5=", "9*9="])]


def actor_logprobs(model, ps: list[PromptInput], out: RolloutOutput, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The actor's log-probs of the engine's samples and the engine's own, both [N, T], and the mask."""
    packed = pack([ps[out.prompt_index(i)].prompt_ids for i in range(len(out.response_ids))], out.response_ids,
                  pad, torch.device("cpu"))
    with torch.no_grad():
        actor = response_logprobs(model, packed)
    assert out.logprobs is not None
    engine = torch.zeros_like(actor)
    for i, lps in enumerate(out.logprobs):
        assert len(lps) == len(out.response_ids[i])
        engine[i, : len(lps)] = torch.tensor(lps)
    return actor, engine, packed.response_mask


def perturb(model, scale: float = 0.05, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("tied", [True, False])
def test_sync_makes_vllm_sample_from_the_actor(tiny_path: Path, tmp_path: Path, tied: bool) -> None:
    """fp32: after each sync vLLM's log-probs of its own samples equal the actor's (to 1e-4); stale weights
    do not (the check can fail). Tied: the output layer follows the new embeddings."""
    tok = build_char_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32, tie_word_embeddings=tied)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) is tied
    path = tiny_path
    if not tied:  # vLLM builds its model from the folder's config: an untied one needs an untied folder
        path = tmp_path / "untied"
        model.save_pretrained(path)
        tok.save_pretrained(path)
    eng = make_engine("vllm", model, tok, max_model_len=128, seed=0, dtype="float32",
                      kv_cache_memory_bytes=KV_CACHE_BYTES, model_path=str(path))
    assert eng.on_cpu and not eng.enable_sleep_mode  # the CPU build has no sleep mode
    ps, params = prompts(tok), SamplingParams(n=4, max_new_tokens=16, seed=5)
    for update in range(3):
        perturb(model, seed=update)  # a "training update" the engine has not seen yet
        stale = eng.generate(ps, params)
        actor, engine, mask = actor_logprobs(model, ps, stale, tok.pad_token_id)
        assert (actor - engine)[mask].abs().max() > 1e-2, "stale weights gave the actor's log-probs"
        eng.sync_weights(model)
        out = eng.generate(ps, params)
        actor, engine, mask = actor_logprobs(model, ps, out, tok.pad_token_id)
        assert (actor - engine)[mask].abs().max() < 1e-4, update
    assert eng.num_syncs == 1 + 3  # construction + one per update
    assert eng._flat_logprobs  # vLLM 0.30 has flat log-probs: the path checked above is the flat one
    assert eng.generate(ps, params).response_ids == out.response_ids  # seeded: reproducible

    # greedy decoding equals HF's on the synced weights
    greedy = SamplingParams(temperature=0.0, max_new_tokens=12)
    hf = make_engine("hf", model, tok).generate(ps, greedy)
    assert eng.generate(ps, greedy).response_ids == hf.response_ids


def test_bf16_engine_mismatch_is_measured_and_tis_bounds_it(tiny_path: Path) -> None:
    """A bf16 vLLM under an fp32 actor samples from a measurably different policy; TIS weights stay <= cap.
    The HF engine's sampling log-probs (from the same fp32 weights) show no mismatch."""
    tok = build_char_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    perturb(model, scale=0.2)  # larger weights: larger bf16 rounding effects, as in a trained model
    ps, params = prompts(tok), SamplingParams(n=8, max_new_tokens=16, seed=1)
    results = {}
    for name in ("fp32", "bf16", "hf"):
        if name == "hf":
            eng = make_engine("hf", model, tok, return_logprobs=True)
        else:
            eng = make_engine("vllm", model, tok, max_model_len=128, seed=0, kv_cache_memory_bytes=KV_CACHE_BYTES,
                              dtype="float32" if name == "fp32" else "bfloat16", model_path=str(tiny_path))
        out = eng.generate(ps, params)
        actor, engine, mask = actor_logprobs(model, ps, out, tok.pad_token_id)
        mm = rollout_mismatch(actor, engine, mask, cap=2.0)
        weights = tis_weights(actor, engine, mask, cap=2.0)
        results[name] = (float(mm.abs_diff_sum / mm.tokens), float(mm.max_abs_diff), weights[mask])
        del eng
    fp32, bf16, hf = results["fp32"], results["bf16"], results["hf"]
    assert fp32[1] < 1e-4 and hf[1] < 1e-4  # same weights, same numerics: no mismatch
    assert bf16[0] > 1e-3 and bf16[0] > 100 * fp32[0], results  # measurable
    w = bf16[2]
    assert float(w.max()) <= 2.0 and float(w.min()) > 0.0 and float((w - 1).abs().max()) > 1e-3
    assert torch.allclose(fp32[2], torch.ones_like(fp32[2]), atol=1e-3)


def test_engine_without_logprobs_skips_them(tiny_path: Path) -> None:
    """return_logprobs=False: no log-probs, and vLLM is left in its default log-prob mode (the processed mode
    costs a full-vocabulary log-softmax per step on CPU); asking for them afterwards is a clear error."""
    tok = build_char_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(tiny_path, dtype=torch.float32)
    eng = make_engine("vllm", model, tok, max_model_len=128, seed=0, dtype="float32",
                      kv_cache_memory_bytes=KV_CACHE_BYTES, model_path=str(tiny_path), return_logprobs=False)
    assert eng.llm.llm_engine.model_config.logprobs_mode != "processed_logprobs"
    ps, params = prompts(tok), SamplingParams(n=2, max_new_tokens=8, seed=5)
    out = eng.generate(ps, params)
    assert out.logprobs is None and len(out.response_ids) == 6
    eng.return_logprobs = True
    with pytest.raises(RuntimeError, match="return_logprobs=True"):
        eng.generate(ps, params)
