"""What a training run will do before it does it: engine settings, length checks, and the dry-run plan.

`fastgrpo train CONFIG --dry-run` prints `build_plan(...)`: it reads the model's config.json, tokenizer
and chat template (no weights, no data, no GPU), builds the rollout engine's settings exactly as training
does, and reports world size, micro-batches, sequence lengths and a memory estimate. A preset that cannot
start (a length the model cannot hold, a template the grader misreads) fails here, on any machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from fastgrpo.config import Config
from fastgrpo.config.loader import ConfigError
from fastgrpo.data.chat_template import ChatTemplateError, think_span_in_prompt
from fastgrpo.data.io import DataSourceError
from fastgrpo.models.kernels import flash_attn_imports, is_vision_config
from fastgrpo.models.loader import ModelLoadError, load_model_config
from fastgrpo.rollout import resolve_engine_name
from fastgrpo.train.modality import load_modality

__all__ = ["TrainPlan", "build_plan", "check_model_length", "engine_settings", "format_plan"]

_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def engine_settings(cfg: Config) -> dict[str, Any]:
    """Keyword arguments of the vLLM engine (the HF engine ignores them). Its model length is
    max_prompt_length + max_response_length: what training (and validation) can generate into."""
    r = cfg.rollout
    kwargs = {"tensor_parallel_size": r.tensor_parallel_size, "gpu_memory_utilization": r.gpu_memory_utilization,
              "enable_sleep_mode": r.enable_sleep_mode, "max_num_batched_tokens": r.max_num_batched_tokens,
              "max_model_len": cfg.data.max_prompt_length + cfg.data.max_response_length, "seed": r.seed,
              "sleep_level": r.sleep_level}
    if r.kv_cache_memory_mb:
        kwargs["kv_cache_memory_bytes"] = r.kv_cache_memory_mb * 2**20
    return kwargs


def model_max_length(model_config: Any) -> int | None:
    """The longest sequence the model's positions cover (config.json `max_position_embeddings`)."""
    for c in (model_config, getattr(model_config, "text_config", None)):
        value = getattr(c, "max_position_embeddings", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_model_length(cfg: Config, model_config: Any) -> None:
    """data.max_prompt_length + data.max_response_length must fit the model (vLLM refuses a longer
    max_model_len only once it starts on the GPU; the HF engine would run past the trained positions)."""
    limit = model_max_length(model_config)
    total = cfg.data.max_prompt_length + cfg.data.max_response_length
    if limit is not None and total > limit:
        raise ConfigError(
            f"data.max_prompt_length + data.max_response_length = {cfg.data.max_prompt_length} + "
            f"{cfg.data.max_response_length} = {total} tokens is above the model's max_position_embeddings "
            f"({limit}, config.json of {cfg.model.path}); lower data.max_response_length"
        )


@dataclass
class TrainPlan:
    """The numbers `--dry-run` prints (see `format_plan`)."""

    model_path: str
    model_type: str
    vision: bool
    parameters: int
    vocab_size: int
    model_max_length: int | None
    world_size: int
    engine: str
    engine_settings: dict[str, Any]
    attn_on_gpu: str
    think_span: str
    prompts_per_step: int
    responses_per_step: int
    updates_per_step: int
    responses_per_rank_per_update: int
    micro_batches_per_update: int
    max_row_tokens: int
    memory_gib: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _count_parameters(model_config: Any, vision: bool) -> int:
    """Exact parameter count, from the architecture built on the meta device (no memory, no weights)."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    auto = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    with torch.device("meta"):
        model = auto.from_config(model_config)
    return sum(p.numel() for p in model.parameters())


def build_plan(cfg: Config, world_size: int = 1) -> TrainPlan:
    """Load config.json, tokenizer and chat template of cfg.model.path and work out the run's shape.

    Raises ConfigError (bad combination of keys) or ModelLoadError (unreadable model folder).
    """
    m = cfg.model
    model_config = load_model_config(m)
    check_model_length(cfg, model_config)
    vision = is_vision_config(model_config)
    notes: list[str] = []
    try:
        modality = load_modality(cfg)  # the tokenizer and chat template training renders prompts with
    except ChatTemplateError as e:  # data.override_chat_template / chat_template_kwargs
        raise ConfigError(str(e)) from None
    except DataSourceError as e:
        raise ModelLoadError(str(e)) from None
    span = think_span_in_prompt(modality.tokenizer, chat_template=modality.chat_template)
    if span == "closed" and cfg.reward.template.startswith("think"):
        notes.append("the chat template closes <think> itself: responses hold no thinking span, so the "
                     f"reward.template={cfg.reward.template} format reward is 0 for all of them")

    d, a, r = cfg.data, cfg.actor, cfg.rollout
    responses = d.rollout_batch_size * r.n
    updates = math.ceil(responses / a.global_batch_size) * a.ppo_epochs
    per_rank = math.ceil(a.global_batch_size / world_size)
    micro = max(1, math.ceil(per_rank / a.micro_batch_size))
    if a.global_batch_size % (a.micro_batch_size * world_size):
        notes.append(f"actor.global_batch_size ({a.global_batch_size}) is not a multiple of actor.micro_batch_size x "
                     f"world size ({a.micro_batch_size} x {world_size}): some micro-batches run part-empty")
    if responses % a.global_batch_size:
        notes.append(f"rollout_batch_size x n = {responses} is not a multiple of actor.global_batch_size "
                     f"({a.global_batch_size}): the last update of each step is smaller")
    row = d.max_prompt_length + d.max_response_length
    if a.packing != "padded" and a.pack_length > 0:
        row = max(row, a.pack_length)

    params = _count_parameters(model_config, vision)
    vocab = int(getattr(model_config, "vocab_size", 0) or getattr(model_config.get_text_config(), "vocab_size", 0))
    compute = "bfloat16" if m.dtype == "auto" else m.dtype  # `auto` is bf16 on the GPU
    pb = _DTYPE_BYTES[compute]
    shard = world_size if world_size > 1 else 1
    gib = 1024**3
    use_ref = cfg.algorithm.use_kl_loss and not (  # as FastGRPORecipe._make_reference decides
        (cfg.algorithm.kl_type == "fixed" and cfg.algorithm.kl_coef == 0)
        or (cfg.algorithm.kl_type == "group_accuracy_based" and cfg.algorithm.kl_max_coef == 0))
    master = _DTYPE_BYTES.get(a.master_dtype, pb)
    # the log-prob pass holds logits of the whole micro-batch (`full`) or of one chunk of tokens at a time
    logit_rows = a.micro_batch_size * row if a.logprob_method == "full" else min(a.logprob_chunk_size, a.micro_batch_size * row)
    memory = {
        # master parameters, gradients and AdamW's two moments in actor.master_dtype; FSDP2 shards them
        f"actor (params + grads + AdamW, {a.master_dtype})": 4 * params * master / shard / gib,
        # the frozen reference loads in the compute dtype
        "reference model": (params * pb / shard / gib) if use_ref else 0.0,
        # SPEC section 6: logits over the vocabulary, once in the compute dtype and once in fp32 for the log-softmax
        f"logits, {a.logprob_method} log-probs ({logit_rows} rows, bf16 + fp32)": logit_rows * vocab * (2 + 4) / gib,
    }
    if m.attn_implementation == "auto":
        attn = ("flash_attention_2 (flash_attn imports here)" if flash_attn_imports() and compute != "float32"
                else "sdpa, or flash_attention_2 where flash_attn imports (pip install flash-attn --no-build-isolation)")
    else:
        attn = m.attn_implementation
    return TrainPlan(
        model_path=m.path, model_type=str(getattr(model_config, "model_type", "?")), vision=vision,
        parameters=params, vocab_size=vocab, model_max_length=model_max_length(model_config), world_size=world_size,
        engine=f"{r.engine} -> {resolve_engine_name(r.engine)} on this machine (vllm on a CUDA machine with vLLM)"
        if r.engine == "auto" else r.engine,
        engine_settings=engine_settings(cfg), attn_on_gpu=attn, think_span=span,
        prompts_per_step=d.rollout_batch_size, responses_per_step=responses, updates_per_step=updates,
        responses_per_rank_per_update=per_rank, micro_batches_per_update=micro, max_row_tokens=row,
        memory_gib=memory, notes=notes,
    )


def format_plan(plan: TrainPlan, cfg: Config) -> str:
    """The plan as the lines `fastgrpo train --dry-run` prints."""
    d = cfg.data
    think = {"open": "opens <think> (responses graded as starting inside the span)",
             "closed": "writes a closed <think></think> block", "none": "opens no thinking span"}[plan.think_span]
    lines = [
        f"model        {plan.model_path} ({plan.model_type}{', vision-language' if plan.vision else ''}): "
        f"{plan.parameters / 1e9:.2f}B parameters, vocabulary {plan.vocab_size}, "
        f"max_position_embeddings {plan.model_max_length}",
        f"chat template {think}",
        f"world size   {plan.world_size} process(es)",
        f"engine       {plan.engine}; max_model_len {plan.engine_settings['max_model_len']}, "
        f"tensor_parallel_size {plan.engine_settings['tensor_parallel_size']}, "
        f"gpu_memory_utilization {plan.engine_settings['gpu_memory_utilization']}",
        f"attention    {cfg.model.attn_implementation} -> {plan.attn_on_gpu}",
        f"per step     {plan.prompts_per_step} prompts x {cfg.rollout.n} samples = {plan.responses_per_step} responses, "
        f"{plan.updates_per_step} optimizer update(s)",
        f"per update   {plan.responses_per_rank_per_update} responses per rank in {plan.micro_batches_per_update} "
        f"micro-batch(es) of {cfg.actor.micro_batch_size}",
        f"lengths      prompt <= {d.max_prompt_length}, response <= {d.max_response_length}, "
        f"row <= {plan.max_row_tokens} tokens; eval.max_new_tokens {cfg.eval.max_new_tokens}",
        "memory (GiB per GPU, estimate; activations and the engine's KV cache not included):",
        *(f"  {k:46s} {v:8.1f}" for k, v in plan.memory_gib.items()),
        f"  {'total':46s} {sum(plan.memory_gib.values()):8.1f}",
    ]
    lines += [f"note: {n}" for n in plan.notes]
    return "\n".join(lines)
