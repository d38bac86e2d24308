"""vLLM engine: weight-sync name mapping against the names `save_pretrained` writes (what vLLM loads),
bucketing, the FSDP2 DTensor path, a clear error without vllm, and the engine's request/sync/sleep
logic against a stand-in `vllm` module. The real engine on a GPU is the one `gpu` test."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from safetensors import safe_open

from fastgrpo.models.tiny import build_char_tokenizer, tiny_qwen2_config
from fastgrpo.models.tiny_vl import build_vl_tokenizer, tiny_qwen2_vl_config
from fastgrpo.rollout import PromptInput, SamplingParams, make_engine
from fastgrpo.rollout import vllm as vllm_engine
from fastgrpo.rollout.hf import row_seed
from fastgrpo.rollout.vllm import (
    VLLMRolloutEngine,
    bucket_weights,
    collapse_image_tokens,
    has_tied_embeddings,
    iter_vllm_weights,
    sampled_logprobs,
    vllm_weight_name,
)
from fastgrpo.utils.optional import MissingDependencyError


def saved_keys(model: torch.nn.Module, tmp_path: Path) -> set[str]:
    """The tensor names `save_pretrained` writes: the checkpoint names vLLM's loaders read."""
    model.save_pretrained(tmp_path)
    keys: set[str] = set()
    for f in tmp_path.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            keys |= set(st.keys())
    return keys


def mapped_names(model: torch.nn.Module) -> list[str]:
    return [name for name, _ in iter_vllm_weights(model)]


def tiny_qwen2(tied: bool) -> torch.nn.Module:
    from transformers import Qwen2ForCausalLM

    tok = build_char_tokenizer()
    cfg = tiny_qwen2_config(len(tok), hidden_size=32, num_layers=2, num_heads=2, num_kv_heads=1,
                            intermediate_size=64, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg.tie_word_embeddings = tied
    return Qwen2ForCausalLM(cfg)


def tiny_vl(variant: str, tied: bool = True) -> torch.nn.Module:
    from transformers import AutoModelForImageTextToText

    cfg = tiny_qwen2_vl_config(build_vl_tokenizer(), variant=variant, hidden_size=32, num_heads=2,  # type: ignore[arg-type]
                               num_kv_heads=1, intermediate_size=64, vision_dim=16, tie_word_embeddings=tied)
    return AutoModelForImageTextToText.from_config(cfg)


def tiny_qwen3_vl() -> torch.nn.Module:
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    cfg = Qwen3VLConfig(
        text_config={"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 16,
                     "rope_parameters": {"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True,
                                         "rope_theta": 10000.0}},
        vision_config={"depth": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
                       "out_hidden_size": 32, "patch_size": 16, "deepstack_visual_indexes": [0],
                       "num_position_embeddings": 64},
        image_token_id=290, video_token_id=291, vision_start_token_id=292, vision_end_token_id=293,
        tie_word_embeddings=True,
    )
    return Qwen3VLForConditionalGeneration(cfg)


# --------------------------------------------------------------------------- name mapping


@pytest.mark.parametrize("tied", [True, False])
def test_qwen2_names_match_checkpoint(tmp_path: Path, tied: bool) -> None:
    model = tiny_qwen2(tied)
    names = mapped_names(model)
    assert len(names) == len(set(names))
    assert set(names) == saved_keys(model, tmp_path)
    assert ("lm_head.weight" in names) is not tied


@pytest.mark.parametrize("variant", ["qwen2_vl", "qwen2_5_vl"])
@pytest.mark.parametrize("tied", [True, False])
def test_qwen_vl_names_match_checkpoint(tmp_path: Path, variant: str, tied: bool) -> None:
    """transformers nests model.language_model.* / model.visual.*; checkpoints say model.* / visual.*."""
    model = tiny_vl(variant, tied)
    module_names = set(model.state_dict())
    assert any(n.startswith("model.language_model.") for n in module_names)
    assert any(n.startswith("model.visual.") for n in module_names)
    names = mapped_names(model)
    assert len(names) == len(set(names))
    assert set(names) == saved_keys(model, tmp_path)
    assert any(n.startswith("visual.blocks.0.") for n in names)
    assert "model.embed_tokens.weight" in names
    assert ("lm_head.weight" in names) is not tied


def test_qwen3_vl_names_are_module_names(tmp_path: Path) -> None:
    model = tiny_qwen3_vl()
    assert set(mapped_names(model)) == saved_keys(model, tmp_path)


def test_wrapper_prefixes_are_stripped() -> None:
    assert vllm_weight_name("_orig_mod.model.layers.0.mlp.up_proj.weight") == "model.layers.0.mlp.up_proj.weight"
    assert (vllm_weight_name("model.layers.3._checkpoint_wrapped_module.self_attn.q_proj.weight")
            == "model.layers.3.self_attn.q_proj.weight")
    assert (vllm_weight_name("_fsdp_wrapped_module.model.language_model.layers.0._fsdp_wrapped_module.mlp.w",
                             "qwen2_vl") == "model.layers.0.mlp.w")
    assert vllm_weight_name("module.model.visual.merger.mlp.0.weight", "qwen2_5_vl") == "visual.merger.mlp.0.weight"
    assert vllm_weight_name("lm_head.weight", "qwen2_vl", tie_word_embeddings=True) is None
    assert vllm_weight_name("lm_head.weight", "qwen2_vl") == "lm_head.weight"
    # an older transformers already used the checkpoint layout: left alone
    assert vllm_weight_name("visual.blocks.0.attn.qkv.weight", "qwen2_vl") == "visual.blocks.0.attn.qkv.weight"


def test_compiled_and_checkpoint_wrapped_models_map_to_checkpoint_names(tmp_path: Path) -> None:
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    model = tiny_vl("qwen2_vl")
    expected = saved_keys(model, tmp_path)
    layers = model.model.language_model.layers
    for i in range(len(layers)):
        layers[i] = checkpoint_wrapper(layers[i])
    compiled = torch.compile(model)  # compiled lazily: building it costs nothing
    assert has_tied_embeddings(compiled)
    raw = list(compiled.state_dict())  # torch's state-dict hook already drops the checkpoint wrapper's name
    assert all(n.startswith("_orig_mod.") for n in raw)
    assert {vllm_weight_name(n, "qwen2_vl", True) for n in raw} - {None} == expected
    params = [n for n, _ in compiled.named_parameters()]  # ... named_parameters keeps it
    assert any("._checkpoint_wrapped_module." in n for n in params)
    assert {vllm_weight_name(n, "qwen2_vl", True) for n in params} - {None} == expected
    assert set(mapped_names(compiled)) == expected


def test_fsdp2_dtensors_are_gathered_one_by_one(tmp_path: Path) -> None:
    """Under FSDP2 the state dict holds DTensor shards; each is materialized with .full_tensor()."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import DTensor

    created = not dist.is_initialized()
    if created:
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert dist.get_world_size() == 1
    try:
        model = tiny_vl("qwen2_vl")
        reference = {vllm_weight_name(k, "qwen2_vl", True): v.clone() for k, v in model.state_dict().items()}
        reference.pop(None, None)
        mesh = init_device_mesh("cpu", (1,))
        for layer in model.model.language_model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        assert any(isinstance(v, DTensor) for v in model.state_dict().values())
        got = dict(iter_vllm_weights(model, dtype=torch.bfloat16))
        assert set(got) == set(reference)
        for name, t in got.items():
            assert not isinstance(t, DTensor) and t.dtype == torch.bfloat16
            torch.testing.assert_close(t, reference[name].to(torch.bfloat16))
    finally:
        if created:
            dist.destroy_process_group()


# ------------------------------------------------------------------------------- buckets


def test_buckets_are_bounded_ordered_and_complete() -> None:
    weights = [(f"w{i}", torch.zeros(n, dtype=torch.float32)) for i, n in enumerate([10, 20, 5, 100, 1, 1, 30])]
    limit = 120  # bytes: 30 floats
    buckets = list(bucket_weights(iter(weights), limit))
    assert [n for b in buckets for n, _ in b] == [n for n, _ in weights]
    for b in buckets:
        size = sum(t.numel() * t.element_size() for _, t in b)
        assert size <= limit or len(b) == 1  # a tensor larger than a bucket travels alone
    assert [[n for n, _ in b] for b in buckets] == [["w0", "w1"], ["w2"], ["w3"], ["w4", "w5"], ["w6"]]
    with pytest.raises(ValueError):
        list(bucket_weights(iter(weights), 0))


def test_bucketing_consumes_the_weights_lazily() -> None:
    """Only one bucket (plus the next tensor) is ever materialized: the generator is pulled, not listed."""
    pulled: list[int] = []

    def gen():
        for i in range(6):
            pulled.append(i)
            yield f"w{i}", torch.zeros(4)  # 16 bytes

    it = bucket_weights(gen(), 32)
    assert [n for n, _ in next(it)] == ["w0", "w1"]
    assert pulled == [0, 1, 2]


# ------------------------------------------------------------------------------ requests


def test_collapse_image_tokens() -> None:
    img = 9
    ids = [1, 2, img, img, img, 3, 4, img, img, 5]
    assert collapse_image_tokens(ids, img) == [1, 2, img, 3, 4, img, 5]
    assert collapse_image_tokens([1, 2, 3], img) == [1, 2, 3]
    assert collapse_image_tokens(ids, None) == ids


def test_sampled_logprobs_reads_vllm_shapes() -> None:
    class Logprob:
        def __init__(self, v: float) -> None:
            self.logprob = v

    entries = [{5: Logprob(-0.5), 7: Logprob(-1.0)}, {6: Logprob(-0.25)}]
    assert sampled_logprobs([5, 6], entries) == [-0.5, -0.25]
    assert sampled_logprobs([1], [{1: -2.0}]) == [-2.0]
    assert sampled_logprobs([1], None) is None


@dataclasses.dataclass
class FlatLayout:
    """vLLM's `FlatLogprobs` layout (flat lists, per-position start/end indices), built here as vLLM's is only
    importable in the vLLM venv; the real one is read in tests/rollout/test_vllm_cpu.py."""

    start_indices: list[int]
    end_indices: list[int]
    token_ids: list[int]
    logprobs: list[float]


def test_sampled_logprobs_reads_flat_logprobs() -> None:
    # logprobs=0: one entry per position, the sampled token
    assert sampled_logprobs([5, 6], FlatLayout([0, 1], [1, 2], [5, 6], [-0.5, -0.25])) == [-0.5, -0.25]
    # top-k entries too: the sampled token is found within its position's span
    flat = FlatLayout([0, 2], [2, 3], [7, 5, 6], [-0.1, -0.5, -0.25])
    assert sampled_logprobs([5, 6], flat) == [-0.5, -0.25]
    with pytest.raises(ValueError, match="sampled token 9"):
        sampled_logprobs([9, 6], flat)
    with pytest.raises(ValueError, match="1 positions but 2 tokens"):
        sampled_logprobs([5, 6], FlatLayout([0], [1], [5], [-0.5]))


# --------------------------------------------------------------------------- missing vllm


def test_missing_vllm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # as if not installed, even on a GPU machine
    model = tiny_qwen2(True)
    tok = build_char_tokenizer()
    with pytest.raises(MissingDependencyError) as err:
        make_engine("vllm", model, tok, tensor_parallel_size=1, gpu_memory_utilization=0.5, enable_sleep_mode=True,
                    max_model_len=64, seed=1)
    msg = str(err.value)
    assert "rollout.engine=vllm" in msg and "vllm" in msg and "fastgrpo[gpu]" in msg
    assert not isinstance(err.value, ImportError)
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no ImportError traceback chained


# --------------------------------------------------------- engine logic with a stand-in vllm


class FakeModelRunnerModel:
    def __init__(self) -> None:
        self.loads: list[list[tuple[str, torch.Tensor]]] = []

    def load_weights(self, weights: Any) -> None:
        self.loads.append([(n, t.clone()) for n, t in weights])


class FakeLLM:
    """Records what the engine asks of vLLM; generates deterministic tokens from each request's seed."""

    instances: ClassVar[list[FakeLLM]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.calls: list[Any] = []
        self.model = FakeModelRunnerModel()
        worker = types.SimpleNamespace(worker=types.SimpleNamespace(model_runner=types.SimpleNamespace(model=self.model)))
        self.llm_engine = types.SimpleNamespace(
            model_executor=types.SimpleNamespace(driver_worker=worker),
            model_config=types.SimpleNamespace(dtype=torch.bfloat16),
        )
        self.requests: list[Any] = []
        FakeLLM.instances.append(self)

    def sleep(self, level: int = 1) -> None:
        self.calls.append(("sleep", level))

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.calls.append(("wake_up", tuple(tags) if tags else None))

    def reset_prefix_cache(self) -> None:
        self.calls.append(("reset_prefix_cache",))

    def generate(self, prompts: list[dict], sampling_params: list[Any], use_tqdm: bool = False) -> list[Any]:
        self.calls.append(("generate", len(prompts)))
        self.requests.append((prompts, sampling_params))
        outs = []
        for req, sp in zip(prompts, sampling_params, strict=True):
            g = torch.Generator().manual_seed(sp.seed % (2**63))
            ids = torch.randint(10, 60, (sp.max_tokens,), generator=g).tolist()
            if sp.seed % 2:  # some requests stop on EOS, with a token after it that must be cut
                ids[2] = sp.stop_token_ids[0]
            lps = [{t: types.SimpleNamespace(logprob=-0.1 * (k + 1))} for k, t in enumerate(ids)]
            prompt = list(req["prompt_token_ids"])
            if "multi_modal_data" in req:  # vLLM expands each image pad back to 4 tokens here
                prompt = [t for tok in prompt for t in ([tok] * 4 if tok == IMG else [tok])]
            outs.append(types.SimpleNamespace(prompt_token_ids=prompt, outputs=[
                types.SimpleNamespace(token_ids=ids, logprobs=lps, finish_reason="stop")]))
        return outs


class FakeSamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.__dict__.update(kwargs)


IMG = 200


@pytest.fixture()
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM  # type: ignore[attr-defined]
    mod.SamplingParams = FakeSamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setattr(vllm_engine, "_rollout_device", lambda: torch.device("cpu"))
    monkeypatch.setattr(vllm_engine, "_is_cpu_backend", lambda device: False)  # the GPU path's logic
    FakeLLM.instances.clear()
    return mod


def test_engine_contract_with_stand_in_vllm(fake_vllm: types.ModuleType, tmp_path: Path) -> None:
    model = tiny_vl("qwen2_vl", tied=True)
    tok = build_vl_tokenizer()
    eng = VLLMRolloutEngine(model, tok, eos_token_ids=[tok.eos_token_id], tensor_parallel_size=1,
                            gpu_memory_utilization=0.4, enable_sleep_mode=True, max_model_len=128, seed=3,
                            model_path=str(tmp_path), bucket_bytes=4096, image_token_id=IMG, sleep_level=1,
                            suppress_token_ids=[IMG, 201], mm_processor_kwargs={"min_pixels": 3136})
    llm = FakeLLM.instances[0]
    kw = llm.kwargs
    assert kw["distributed_executor_backend"] == "external_launcher"
    assert kw["tensor_parallel_size"] == 1 and kw["gpu_memory_utilization"] == 0.4
    assert kw["enable_sleep_mode"] is True and kw["max_model_len"] == 128 and kw["seed"] == 3
    assert kw["load_format"] == "dummy" and kw["mm_processor_kwargs"] == {"min_pixels": 3136}
    # construction pushed the actor's weights under checkpoint names, in bounded buckets, then slept
    pushed = [(n, t) for b in llm.model.loads for n, t in b]
    assert {n for n, _ in pushed} == {vllm_weight_name(n, "qwen2_vl", True) for n in model.state_dict()} - {None}
    assert all(t.dtype == torch.bfloat16 for _, t in pushed)
    assert all(sum(t.numel() * 2 for _, t in b) <= 4096 or len(b) == 1 for b in llm.model.loads)
    assert llm.calls == [("reset_prefix_cache",), ("sleep", 1)]

    # a training update, then the next step: sync (wakes weights only), generate (wakes the KV cache), sleep
    with torch.no_grad():
        model.model.language_model.embed_tokens.weight.add_(1.0)
    llm.calls.clear()
    llm.model.loads.clear()
    eng.sync_weights(model)
    emb = dict(p for b in llm.model.loads for p in b)["model.embed_tokens.weight"]
    torch.testing.assert_close(emb, model.model.language_model.embed_tokens.weight.detach().to(torch.bfloat16))
    prompts = [
        PromptInput([1, 2, 3], uid=7),
        PromptInput([1, 4, IMG, IMG, IMG, IMG, 5], images=["img-a"], uid=8),
        PromptInput([IMG] * 4 + [6] + [IMG] * 4, images=["img-b", "img-c"], uid=9),
    ]
    params = SamplingParams(n=2, temperature=0.7, top_p=0.9, top_k=-1, max_new_tokens=5, seed=11)
    out = eng.generate(prompts, params)
    eng.sleep()
    assert llm.calls == [("wake_up", ("weights",)), ("reset_prefix_cache",), ("wake_up", ("kv_cache",)),
                         ("generate", 6), ("sleep", 1)]
    reqs, sps = llm.requests[-1]
    assert reqs[0] == {"prompt_token_ids": [1, 2, 3]}
    assert reqs[2] == {"prompt_token_ids": [1, 4, IMG, 5], "multi_modal_data": {"image": "img-a"}}
    assert reqs[4] == {"prompt_token_ids": [IMG, 6, IMG], "multi_modal_data": {"image": ["img-b", "img-c"]}}
    assert [sp.seed for sp in sps] == [row_seed(11, uid, j) for uid in (7, 8, 9) for j in range(2)]
    sp = sps[0]
    assert (sp.n, sp.temperature, sp.top_p, sp.top_k, sp.max_tokens, sp.logprobs) == (1, 0.7, 0.9, -1, 5, 0)
    assert sp.stop_token_ids == [tok.eos_token_id] and sp.logit_bias == {IMG: -100.0, 201: -100.0}
    assert out.n == 2 and len(out.response_ids) == 6 and out.logprobs is not None
    for ids, lps, s in zip(out.response_ids, out.logprobs, [sp.seed for sp in sps], strict=True):
        assert len(ids) == len(lps) == (3 if s % 2 else 5)  # cut right after EOS
        assert lps == pytest.approx([-0.1 * (k + 1) for k in range(len(ids))])


def test_engine_level2_sleep_needs_a_sync(fake_vllm: types.ModuleType, tmp_path: Path) -> None:
    model = tiny_qwen2(True)
    tok = build_char_tokenizer()
    eng = VLLMRolloutEngine(model, tok, eos_token_ids=[tok.eos_token_id], model_path=str(tmp_path))
    llm = FakeLLM.instances[0]
    assert eng.sleep_level == 2  # the default: the weights a sync would load now would be dropped at once
    assert llm.model.loads == [] and llm.calls == [("sleep", 2)] and eng.weights_dropped
    with pytest.raises(RuntimeError, match="sync_weights"):
        eng.generate([PromptInput([1, 2])], SamplingParams(max_new_tokens=3, seed=0))
    eng.sync_weights(model)
    out = eng.generate([PromptInput([1, 2])], SamplingParams(max_new_tokens=3, seed=0))
    assert len(out.response_ids) == 1
    # sync then sleep without generating: the KV cache is woken first so vLLM sleeps a consistent state
    eng.sleep()
    llm.calls.clear()
    eng.sync_weights(model)
    eng.sleep()
    assert llm.calls == [("wake_up", ("weights",)), ("reset_prefix_cache",), ("wake_up", ("kv_cache",)),
                         ("sleep", 2)]


def test_image_prompt_length_mismatch_is_reported(fake_vllm: types.ModuleType, tmp_path: Path) -> None:
    model = tiny_qwen2(True)
    tok = build_char_tokenizer()
    eng = VLLMRolloutEngine(model, tok, eos_token_ids=[tok.eos_token_id], model_path=str(tmp_path),
                            image_token_id=IMG, enable_sleep_mode=False)
    with pytest.raises(RuntimeError, match="mm_processor_kwargs"):  # the fake expands to 4 pads, the prompt has 3
        eng.generate([PromptInput([1, IMG, IMG, IMG, 2], images=["x"])], SamplingParams(max_new_tokens=2, seed=0))


# ------------------------------------------------------------------------------- real GPU


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
                    reason="needs a CUDA GPU and vLLM (pip install 'fastgrpo[gpu]')")
def test_vllm_greedy_matches_hf_after_sync(tmp_path: Path) -> None:  # pragma: no cover - GPU only
    from transformers import AutoModelForCausalLM

    from fastgrpo.models.tiny import build_tiny_qwen2

    path = build_tiny_qwen2(tmp_path / "m", hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1,
                            intermediate_size=256)
    tok = build_char_tokenizer()
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).cuda()  # fp32: no near-tie flips
    with torch.no_grad():  # a trained actor differs from the checkpoint: the engine must serve these weights
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    eng = make_engine("vllm", model, tok, tensor_parallel_size=1, gpu_memory_utilization=0.2,
                      enable_sleep_mode=True, max_model_len=256, seed=0, dtype="float32")
    prompt = tok("1+2=", add_special_tokens=False)["input_ids"]
    out = eng.generate([PromptInput(prompt, uid=0)], SamplingParams(temperature=0.0, max_new_tokens=8))
    hf = make_engine("hf", model, tok).generate([PromptInput(prompt, uid=0)],
                                                SamplingParams(temperature=0.0, max_new_tokens=8))
    assert out.response_ids == hf.response_ids
    eng.sleep()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available() or importlib.util.find_spec("vllm") is None,
                    reason="needs a CUDA GPU and vLLM (pip install 'fastgrpo[gpu]')")
def test_vllm_vision_greedy_matches_hf(tmp_path: Path) -> None:  # pragma: no cover - GPU only
    import numpy as np
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from fastgrpo.data.processor import VisionProcessor, build_messages
    from fastgrpo.models.tiny_vl import build_tiny_qwen2_vl

    path = build_tiny_qwen2_vl(tmp_path / "vl", hidden_size=128, num_heads=2, num_kv_heads=1, intermediate_size=256,
                               vision_dim=128, vision_heads=2)
    proc = VisionProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).cuda()
    image = proc.prepare_image(Image.fromarray((np.random.default_rng(0).random((60, 90, 3)) * 255).astype("uint8")))
    enc = proc.encode(proc.render(build_messages("<image>What is it?", 1)), [image])
    prompt = PromptInput(enc.prompt_ids, images=[image], processor_inputs=enc.processor_inputs, uid=0)
    params = SamplingParams(temperature=0.0, max_new_tokens=8)
    eng = make_engine("vllm", model, None, processor=proc, tensor_parallel_size=1, gpu_memory_utilization=0.2,
                      enable_sleep_mode=True, max_model_len=512, seed=0, dtype="float32")
    out = eng.generate([prompt], params)
    hf = make_engine("hf", model, None, processor=proc).generate([prompt], params)
    assert out.response_ids == hf.response_ids
    eng.sleep()
