"""The typed config schema: one dataclass per YAML section.

Every field has the paper's (or the reference frameworks') value as default, so
a config file only states what differs. Validation lives in `loader.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class FilterStage:
    """One entry of the Slow2Fast schedule: applies while progress <= epoch_ratio."""

    epoch_ratio: float = 1.0
    filter_low: float = 0.01
    filter_high: float = 0.99


@dataclass
class DataConfig:
    train_files: str = ""
    """Hub id `name@split` (or `name:subset@split`) or a local parquet/jsonl/json/arrow file or folder."""
    val_files: str | None = None
    prompt_key: str = "problem"
    answer_key: str = "answer"
    image_key: str = "images"
    format_prompt: str | None = None
    """Jinja template (inline text, or a path to a .jinja file) rendering `content` into the user turn."""
    system_prompt: str | None = None
    max_prompt_length: int = 1024
    max_response_length: int = 2048
    rollout_batch_size: int = 8
    """Prompts per training step (each sampled rollout.n times)."""
    shuffle: bool = True
    seed: int = 1
    min_pixels: int = 262144
    max_pixels: int = 4194304
    filter_overlong_prompts: bool = True


@dataclass
class ModelConfig:
    path: str = ""
    """Hugging Face hub id or local folder with config.json + weights + tokenizer."""
    tokenizer_path: str | None = None
    trust_remote_code: bool = False
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """`auto`: bfloat16 on GPU, float32 on CPU."""
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    gradient_checkpointing: bool = False
    enable_liger: bool = False


@dataclass
class AlgorithmConfig:
    adv_estimator: Literal["grpo", "drgrpo"] = "grpo"
    # Dynamic KL (SPEC section 1, step 8).
    use_kl_loss: bool = True
    kl_penalty: Literal["low_var_kl", "k1", "abs", "mse"] = "low_var_kl"
    kl_coef: float = 1.0e-2
    kl_type: Literal["group_accuracy_based", "fixed"] = "group_accuracy_based"
    kl_min_coef: float = 1.0e-3
    kl_max_coef: float = 1.0e-2
    kl_coef_direction: Literal["accuracy", "inverse"] = "accuracy"
    """`accuracy`: coef = min + (max - min) * acc_g (solved groups held close to the reference, SPEC default);
    `inverse`: min + (max - min) * (1 - acc_g)."""
    # Thinking reward (step 4) and difficulty (step 3).
    thinking_reward: bool = True
    thinking_reward_weight: float = 0.5
    easy_percentile: float = 80.0
    difficulty_population: Literal["batch", "window"] = "batch"
    difficulty_window: int = 1024
    # Slow2Fast online filtering (step 6).
    online_filtering: bool = True
    filter_key: str = "accuracy"
    filter_low: float = 0.01
    filter_high: float = 0.99
    dynamic_filter_schedule: list[FilterStage] = field(
        default_factory=lambda: [
            FilterStage(epoch_ratio=0.5, filter_low=0.3, filter_high=0.99),
            FilterStage(epoch_ratio=1.0, filter_low=0.01, filter_high=0.7),
        ]
    )
    max_try_make_batch: int = 5
    # PPO-clip policy loss (step 7).
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.28
    clip_ratio_dual: float = 3.0
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = (
        "token-mean"
    )


@dataclass
class RolloutConfig:
    engine: Literal["auto", "hf", "vllm"] = "auto"
    """`auto`: vllm when importable and CUDA is present, else HF generate."""
    n: int = 8
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    """-1 disables top-k."""
    seed: int = 1
    micro_batch_size: int = 64
    """Sequences per HF generate call."""
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.6
    enable_sleep_mode: bool = True
    max_num_batched_tokens: int = 8192


@dataclass
class ActorConfig:
    lr: float = 1.0e-6
    weight_decay: float = 1.0e-2
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    lr_scheduler: Literal["constant", "cosine", "linear"] = "constant"
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    global_batch_size: int = 128
    """Responses per optimizer update (across all ranks); the step's rollouts are split into updates of this size."""
    micro_batch_size: int = 4
    """Responses per forward/backward on one rank (gradient accumulation fills the global batch); the
    reference and old-policy log-prob passes run on the same micro-batches."""
    ppo_epochs: int = 1
    packing: Literal["auto", "shared_prompt", "padded"] = "auto"
    """Layout of a micro-batch for the log-prob passes. `shared_prompt`: rows hold each prompt once followed by
    several of its responses, under a block mask (same log-probs; skips the repeated prompts and the padding);
    needs sdpa attention. `padded`: one right-padded row per response. `auto`: shared_prompt for text models
    with sdpa attention, padded otherwise (vision models, eager or flash-attention)."""
    pack_length: int = 0
    """Row length cap in tokens for shared_prompt (0: the longest prompt+response in the micro-batch)."""
    fsdp_reshard_after_forward: bool = True
    mixed_precision: bool = True
    """On GPU: bf16 params for compute, fp32 gradient reduction. Ignored on CPU."""


@dataclass
class RewardConfig:
    reward_function: str = "builtin:math"
    """`builtin:math` (math-verify + multiple choice) or `path/to/file.py:function`."""
    template: Literal["think_boxed", "think_answer"] = "think_boxed"
    format_weight: float = 0.1
    timeout_s: float = 5.0
    num_workers: int = 2


@dataclass
class TrainerConfig:
    project_name: str = "fastgrpo"
    experiment_name: str = "run"
    output_dir: str = "runs"
    """Run directory is <output_dir>/<experiment_name>."""
    total_epochs: int = 1
    max_steps: int | None = None
    """Stop after this many steps (default: one pass over the data per epoch)."""
    save_freq: int = 50
    save_limit: int = 3
    resume: str = "auto"
    """`auto` (latest checkpoint in the run dir), `none`, or a checkpoint path."""
    val_freq: int = -1
    val_before_train: bool = False
    logger: list[str] = field(default_factory=lambda: ["console", "jsonl"])
    """Any of console, jsonl, tensorboard, wandb."""
    log_samples: int = 4
    seed: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = False


@dataclass
class EvalConfig:
    benchmarks: list[str] = field(default_factory=list)
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    max_new_tokens: int = 2048
    scorer: Literal["mathverify", "reference"] = "mathverify"
    limit: int | None = None
    data_dir: str | None = None
    batch_size: int = 32


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    actor: ActorConfig = field(default_factory=ActorConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
