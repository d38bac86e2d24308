"""The typed config schema: one dataclass per YAML section.

Every field has the paper's (or the reference frameworks') value as default, so
a config file only states what differs. Validation lives in `loader.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class FilterStage:
    """One entry of the Slow2Fast schedule: applies while progress <= epoch_ratio."""

    epoch_ratio: float = 1.0
    """Training progress (step / total steps) up to which this stage applies, in (0, 1]; must increase from
    stage to stage. Past the last stage, the last stage applies."""
    filter_low: float = 0.01
    """Keep a group when the mean of its `filter_key` over its rollout.n samples is >= this (inclusive)."""
    filter_high: float = 0.99
    """Keep a group when that mean is <= this (inclusive); must be >= filter_low."""


@dataclass
class DataConfig:
    train_files: str = ""
    """Hub id `name@split` (or `name:subset@split`) or a local parquet/jsonl/json/arrow file or folder."""
    val_files: str | None = None
    """Validation set, scored as benchmark `val` every trainer.val_freq steps; read like train_files (hub id
    `name@split` or a local file or folder), checked at startup when validation is on. Asked with format_prompt
    and system_prompt (format_prompt null: a text model gets the eval's `\\boxed{}` instruction, a vision model
    the bare question); a vision model also gets the images of its image_key column (none without the column)."""
    prompt_key: str = "problem"
    """Column holding the question text (the `content` of format_prompt); also read from val_files."""
    answer_key: str = "answer"
    """Column holding the ground-truth answer passed to the reward function; also read from val_files."""
    image_key: str = "images"
    """Column holding a row's image(s) (one or a list: PIL, bytes, or paths relative to the data file).
    Vision models only; a missing column makes every prompt text-only. Other columns reach the reward as extras."""
    format_prompt: str | None = None
    """Jinja template (inline text, or a path to a .jinja file) rendering `content` into the user turn."""
    system_prompt: str | None = None
    """System turn put before the user turn (null: none, so the chat template's own default, if any, applies)."""
    max_prompt_length: int = 1024
    """Prompt cap in tokens after the chat template (image tokens included); longer prompts are dropped or
    cut, see filter_overlong_prompts. With vLLM, max_prompt_length + max_response_length (or eval.max_new_tokens
    when validating, if larger) is its max_model_len; validation prompts must fit it too."""
    max_response_length: int = 2048
    """Most tokens generated per rollout response. Also the constant C of loss_agg_mode
    `seq-mean-token-sum-norm` (Dr.GRPO)."""
    rollout_batch_size: int = 8
    """Prompts per training step (each sampled rollout.n times)."""
    shuffle: bool = True
    """Reshuffle the prompt order every epoch (seeded by data.seed + epoch); false: file order."""
    seed: int = 1
    """Seed of the prompt shuffling (the sampler position is checkpointed, so a resume sees the same order)."""
    min_pixels: int = 262144
    """Vision models: each image is resized (aspect ratio kept, sides multiples of patch x merge, 28 for Qwen2-VL)
    so its pixel count lies in [min_pixels, max_pixels] (default 512 x 512 to 2048 x 2048). Also sent to vLLM
    and used by `fastgrpo eval --config`."""
    max_pixels: int = 4194304
    """Upper bound of that resize, in pixels; more pixels, more image tokens per prompt."""
    filter_overlong_prompts: bool = True
    """Drop prompts longer than max_prompt_length (a warning counts them); false: keep their last
    max_prompt_length tokens. Prompts with images are always dropped (cutting would cut image tokens)."""
    on_bad_row: Literal["error", "skip"] = "error"
    """A row that cannot be used (a JSON-lines line that is not a JSON object, a null or empty prompt, a null
    answer): `error` stops before training, naming the file, the line or row and the problem; `skip` drops such
    rows, prints their count with the first reasons, and logs it as data/skipped_rows in every step's metrics."""
    override_chat_template: str | None = None
    """Chat template (Jinja) that replaces the tokenizer's (or vision processor's) own: a path to a .jinja file or
    the template text. Used for every prompt: training, validation and `fastgrpo eval --config`; checked at start-up
    (a template that does not compile or render stops with an error naming this key). The run's hf_base, hence
    `fastgrpo export`'s folder, carries it. null: the model's own template."""
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra variables passed to the chat template wherever a prompt is rendered (training, validation,
    `fastgrpo eval --config`), e.g. `{enable_thinking: false}` for Qwen3. Names the template does not use are
    ignored by Jinja. On the command line: `data.chat_template_kwargs='{enable_thinking: false}'`."""


@dataclass
class ModelConfig:
    path: str = ""
    """Hugging Face hub id or local folder with config.json + weights + tokenizer."""
    tokenizer_path: str | None = None
    """Where to load the tokenizer (text) or processor (vision) from; null: model.path."""
    trust_remote_code: bool = False
    """Allow custom modelling code shipped with the model (config, tokenizer, vision processor and model
    loading; also the default of `fastgrpo eval --config`'s --trust-remote-code)."""
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    """`auto`: bfloat16 on GPU, float32 on CPU."""
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = "auto"
    """`auto` (the presets'): flash_attention_2 when CUDA, a 16-bit dtype and an importable flash_attn are all
    present, else sdpa. flash_attention_2 needs all three; flash-attn is in no extra: `pip install flash-attn
    --no-build-isolation` after torch. actor.packing `shared_prompt` needs sdpa."""
    gradient_checkpointing: bool = False
    """Recompute activations in the actor's backward (non-reentrant): less memory, about one more
    forward of compute. The reference model never needs it."""
    enable_liger: bool = False
    """Patch Liger Triton kernels (RMSNorm, SwiGLU, RoPE; not its cross-entropy) into the actor and
    reference; needs the liger_kernel package: `pip install 'fastgrpo[liger]'` (GPU machines)."""


@dataclass
class AlgorithmConfig:
    adv_estimator: Literal["grpo", "drgrpo"] = "grpo"
    """`grpo`: (r - mean_g) / (std_g + 1e-6); `drgrpo`: r - mean_g (no std division). Dr.GRPO's
    length-agnostic loss is separate: set loss_agg_mode `seq-mean-token-sum-norm`."""
    # Dynamic KL (SPEC section 1, step 8).
    use_kl_loss: bool = True
    """Add the per-token KL to the frozen reference to the loss. false (or a zero coefficient: kl_coef
    for `fixed`, kl_max_coef for `group_accuracy_based`) skips loading the reference model."""
    kl_penalty: Literal["low_var_kl", "k1", "abs", "mse"] = "low_var_kl"
    """Per-token KL estimator, d = logp - ref_logp: `low_var_kl` (k3: exp(-d) + d - 1, clamped to
    [0, 10]; SPEC default), `k1` (d), `abs` (abs(d)), `mse` (d^2 / 2)."""
    kl_coef: float = 1.0e-2
    """KL coefficient of every sample when kl_type is `fixed`; unused by `group_accuracy_based`."""
    kl_type: Literal["group_accuracy_based", "fixed"] = "group_accuracy_based"
    """`group_accuracy_based`: a per-group coefficient between kl_min_coef and kl_max_coef set by the
    group's accuracy (FAST's difficulty-aware KL, SPEC default); `fixed`: kl_coef for all."""
    kl_min_coef: float = 1.0e-3
    """Lower end of the group_accuracy_based coefficient (SPEC: 0.001); 0 <= kl_min_coef <= kl_max_coef."""
    kl_max_coef: float = 1.0e-2
    """Upper end of the group_accuracy_based coefficient (SPEC: 0.01); 0 there drops the KL term and the reference."""
    kl_coef_direction: Literal["accuracy", "inverse"] = "accuracy"
    """`accuracy`: coef = min + (max - min) * acc_g (solved groups held close to the reference, SPEC default);
    `inverse`: min + (max - min) * (1 - acc_g)."""
    # Thinking reward (step 4) and difficulty (step 3).
    thinking_reward: bool = True
    """Add the adaptive thinking reward to each response's overall reward before the advantages;
    false: plain GRPO rewards (difficulty is still computed and logged)."""
    thinking_reward_weight: float = 0.5
    """w, with L_i a response's length in tokens and L_max its group's longest: easy and correct
    gets w * (1 - L_i / L_max), hard and incorrect w * L_i / L_max, others 0 (SPEC default 0.5)."""
    easy_percentile: float = 80.0
    """A question is hard when its difficulty, (1 - pass rate) * complexity, is above this percentile
    (0-100) of the population; ties count as easy (SPEC default 80)."""
    difficulty_population: Literal["batch", "window"] = "batch"
    """What that percentile is taken over: `batch`: every group generated this step, kept or
    filtered (SPEC default); `window`: the last difficulty_window groups, across steps."""
    difficulty_window: int = 1024
    """Groups (questions) in the `window` population; must be >= 1. Checkpointed; unused with `batch`."""
    # Slow2Fast online filtering (step 6).
    online_filtering: bool = True
    """Keep only groups whose mean filter_key lies within the bounds in force and draw more prompts until
    rollout_batch_size groups pass (DAPO-style); false: keep every group of one round."""
    filter_key: str = "accuracy"
    """Per-sample score averaged per group for the filter: `accuracy`, `overall` (reward with format) or
    `format`."""
    filter_low: float = 0.01
    """Static lower bound (inclusive), used only when dynamic_filter_schedule is empty (`[]`)."""
    filter_high: float = 0.99
    """Static upper bound (inclusive), used only when dynamic_filter_schedule is empty; >= filter_low."""
    dynamic_filter_schedule: list[FilterStage] = field(
        default_factory=lambda: [
            FilterStage(epoch_ratio=0.5, filter_low=0.3, filter_high=0.99),
            FilterStage(epoch_ratio=1.0, filter_low=0.01, filter_high=0.7),
        ]
    )
    """Slow2Fast: the first stage with progress <= epoch_ratio gives the bounds. Default (the SPEC's numbers):
    [0.3, 0.99] for the first half, then [0.01, 0.7]. On `accuracy` that keeps medium and easy groups first
    (drops the hardest and the all-correct), then hard and medium ones (drops the all-wrong and the easiest):
    the opposite of the seed prose's "medium-hard first, then easy" (docs/algorithm.md section 7). `[]`: the
    static bounds."""
    max_try_make_batch: int = 5
    """Most generation rounds per step, >= 1. A batch still short then trains smaller, with a warning; if no
    group passes at all, training stops with an error."""
    max_prompts_per_round: int | None = None
    """With online filtering, the most prompts one generation round may draw (>= data.rollout_batch_size;
    null: data.rollout_batch_size, so every round draws one batch of prompts). A round draws enough prompts
    to fill what the batch still lacks at the pass rate of the previous round, within [rollout_batch_size,
    this]: under a strict Slow2Fast stage one large round replaces several small ones (DAPO's larger
    generation batch, sized by the pass rate). Passing groups beyond the batch are dropped."""
    # PPO-clip policy loss (step 7).
    clip_ratio_low: float = 0.2
    """PPO clip epsilon below 1: the ratio is clipped at 1 - clip_ratio_low."""
    clip_ratio_high: float = 0.28
    """PPO clip epsilon above 1: clipped at 1 + clip_ratio_high (0.28: DAPO's clip-higher)."""
    clip_ratio_dual: float = 3.0
    """Dual clip c: the loss of a negative-advantage token is capped at -A * c; <= 1 disables it."""
    loss_agg_mode: Literal["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"] = (
        "token-mean"
    )
    """How token losses become one number: `token-mean` (every token weighs the same, DAPO),
    `seq-mean-token-mean` (original GRPO), `seq-mean-token-sum`, `seq-mean-token-sum-norm` (Dr.GRPO)."""
    # Rollout/trainer mismatch correction.
    rollout_is: Literal["none", "tis"] = "none"
    """Importance correction for the rollout engine sampling from a numerically different policy than the
    trainer's (vLLM's bf16 kernels, another attention): `tis` multiplies each token's policy-gradient term by
    min(pi_old / pi_rollout, rollout_is_cap) from the engine's log-probs (truncated IS, as verl and TRL);
    `none`: no correction. The mismatch (rollout/logprob_abs_diff, rollout/is_capped_fraction) is logged either way."""
    rollout_is_cap: float = 2.0
    """Truncation C of the `tis` weight min(pi_old / pi_rollout, C); > 0 (verl's default 2.0)."""
    # Policy loss variant and truncated responses (issue 18).
    policy_loss: Literal["ppo", "gspo"] = "ppo"
    """`ppo`: the token-level PPO clip above (each token's ratio pi / pi_old clipped on its own). `gspo` (Group
    Sequence Policy Optimization, arXiv 2507.18071; TRL's importance_sampling_level `sequence`): one ratio per
    response, s_i = exp(mean over its tokens of log pi - log pi_old), clipped at [1 - clip_ratio_low,
    1 + clip_ratio_high] per sequence, in the paper's token-level form (every token carries s_i; the gradient
    flows through each token's log-prob). The paper's clip values are 3e-4 / 4e-4 (set them; the PPO defaults
    barely clip a sequence ratio) and its averaging is loss_agg_mode `seq-mean-token-mean`; clip_ratio_dual is
    not applied. The KL term and rollout_is weights act per token as with `ppo` (docs/algorithm.md)."""
    mask_truncated: bool = False
    """Drop responses that hit data.max_response_length without an EOS token from the loss (policy and KL
    terms; TRL's mask_truncated_completions, DAPO's overlong filtering): their ending was never seen, so their
    reward is noise. They still count in their group's accuracy, pass rate, difficulty and advantages. The
    truncated fraction is logged either way (all/easy/hard `truncated_fraction`)."""


@dataclass
class RolloutConfig:
    engine: Literal["auto", "hf", "vllm"] = "auto"
    """`auto`: vllm when importable and CUDA is present, else HF generate."""
    n: int = 8
    """Responses sampled per prompt (the group size G); >= 2 for a learning signal (a group of one has advantage 0)."""
    temperature: float = 1.0
    """Sampling temperature (SPEC: 1.0); the training log-probs use the same logits / temperature. 0: greedy,
    which gives identical responses and no signal."""
    top_p: float = 1.0
    """Nucleus sampling mass, in (0, 1]; 1 disables it."""
    top_k: int = -1
    """-1 disables top-k."""
    seed: int = 1
    """Sampling seed: each response's noise is keyed by (seed, step, refill round, prompt, sample), so it does
    not depend on batching or process count. Also vLLM's engine seed."""
    micro_batch_size: int = 64
    """Sequences per HF generate call."""
    tensor_parallel_size: int = 1
    """vLLM only: GPUs per vLLM instance (consecutive ranks); must divide the number of processes."""
    gpu_memory_utilization: float = 0.6
    """vLLM only: fraction of each GPU's memory vLLM may take for weights and KV cache, in (0, 1]; leave
    room for the actor."""
    enable_sleep_mode: bool = True
    """vLLM only: free the KV cache and vLLM's weights (see sleep_level) while the actor trains, and wake them
    for the next generation; false keeps them resident (faster, more memory). vLLM on CPU has no sleep mode."""
    max_num_batched_tokens: int = 8192
    """vLLM only: most tokens the scheduler runs in one forward pass (prefill chunk budget); 0: vLLM's
    default."""
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"
    """vLLM only: dtype of vLLM's weights and compute; `auto`: the actor's (model.dtype). A 16-bit engine under
    an fp32 actor samples from a measurably different policy (see algorithm.rollout_is)."""
    sleep_level: int = 2
    """vLLM only, with enable_sleep_mode: 2 drops vLLM's weights while the actor trains (the next weight
    sync overwrites them anyway; TRL/verl's colocated default), 1 copies them to CPU memory and back."""
    kv_cache_memory_mb: int = 0
    """vLLM only: KV cache size in MiB; 0: vLLM sizes it from gpu_memory_utilization (on a CPU build of vLLM,
    1024 MiB, since there that fraction would be taken from the system's memory)."""


@dataclass
class LoraSettings:
    """LoRA adapters through peft (off while rank is 0)."""

    rank: int = 0
    """Adapter rank; 0 trains the full model. With rank > 0 only the adapters are trained, checkpointed and in
    AdamW; the reference policy is the actor with its adapters switched off (no second copy of the weights); the
    frozen base weights stay in model.dtype and the adapters in actor.master_dtype. LoRA wants a higher actor.lr
    than full fine-tuning (about 10x: on the demo, 1e-3 learned where 1e-4 did not move in 20 steps)."""
    alpha: float = 32.0
    """LoRA scale numerator: the adapter's output is multiplied by alpha / rank."""
    dropout: float = 0.0
    """Dropout on the adapter input, in [0, 1)."""
    target_modules: list[str] = field(default_factory=list)
    """Module names (or suffixes) that get adapters, e.g. [q_proj, v_proj]; empty: every linear layer of the
    language model (peft's `all-linear`: the output head excluded). A vision model's vision tower never gets
    adapters (as in EasyR1)."""


@dataclass
class ActorConfig:
    lr: float = 1.0e-6
    """Peak AdamW learning rate (reached after warmup). On resume the config's value replaces the checkpoint's."""
    weight_decay: float = 1.0e-2
    """AdamW decoupled weight decay."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """AdamW (beta1, beta2); exactly two numbers, each in [0, 1)."""
    lr_scheduler: Literal["constant", "cosine", "linear"] = "constant"
    """Learning-rate shape after warmup, over the run's total steps: `constant`, or `linear` / `cosine`
    decay to 0 at the last step."""
    warmup_ratio: float = 0.0
    """Fraction of the total steps (in [0, 1]) over which the lr ramps up linearly; 0: no warmup."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this before each optimizer update (logged as actor/grad_norm). A
    non-finite norm stops training without applying the update."""
    global_batch_size: int = 128
    """Responses per optimizer update (across all ranks); the step's rollouts are split into updates of this size."""
    micro_batch_size: int = 4
    """Responses per forward/backward on one rank (gradient accumulation fills the global batch); the
    reference and old-policy log-prob passes run on the same micro-batches."""
    ppo_epochs: int = 1
    """Passes over each step's rollouts (>= 1). With more than one update per step the old-policy log-probs
    are computed before the first, so the PPO ratio and clip take effect."""
    packing: Literal["auto", "shared_prompt", "varlen", "padded"] = "auto"
    """Layout of a micro-batch for the log-prob passes. `shared_prompt`: rows hold each prompt once followed by
    several of its responses, under a block mask (same log-probs; skips the repeated prompts and the padding);
    needs sdpa attention. `varlen`: one padding-free row, sequences told apart by restarting position ids
    (flash-attn's varlen kernel; with sdpa/eager a dense mask over the whole row). `padded`: one right-padded
    row per response. `auto`: shared_prompt for text models with sdpa, varlen with flash_attention_2, padded
    otherwise (vision models, eager)."""
    pack_length: int = 0
    """Row length cap in tokens for shared_prompt (0: the longest prompt+response in the micro-batch)."""
    fsdp_reshard_after_forward: bool = True
    """FSDP2 (several processes, or mixed precision in one): free the gathered (and cast) layer parameters after
    the forward (less memory, one more all-gather in backward); false keeps them until the backward. The
    reference always reshards."""
    master_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """dtype of the actor's trainable parameters, gradients and AdamW state (the "master weights"; checkpoints
    hold them). When model.dtype resolves to a 16-bit compute dtype, training is mixed precision as EasyR1 and
    accelerate do it: FSDP2 `MixedPrecisionPolicy(param_dtype=model.dtype, reduce_dtype=float32)` over these
    parameters, also in one process (a one-rank FSDP2 group), on CPU as on GPU. Equal to model.dtype: plain
    low-precision training (at lr 1e-6 most bf16 updates round to zero). The frozen reference stays in model.dtype."""
    logprob_method: Literal["chunked", "liger", "full"] = "chunked"
    """How log-probs and entropy of the response tokens are computed. `chunked`: from the final hidden states,
    logprob_chunk_size tokens at a time (lm_head, log-softmax, gather, entropy; recomputed in the backward), so
    memory grows with chunk x vocab, not micro-batch x length x vocab. `liger`: as chunked, but the passes
    without gradient (reference, old policy) use Liger's fused linear cross-entropy kernel (needs CUDA and the
    liger_kernel package; at rollout.temperature 1 only, as the kernel takes no temperature). `full`: the plain path through full-vocabulary logits (for comparison)."""
    logprob_chunk_size: int = 1024
    """Tokens per chunk of the `chunked` log-prob pass: about 3 x chunk x vocab x 4 bytes transient (1,024 at
    vocabulary 151,936: 1.9 GB); smaller saves memory, larger runs fewer, bigger matmuls."""
    lora: LoraSettings = field(default_factory=LoraSettings)
    """LoRA instead of full fine-tuning: `actor.lora.rank=8` turns it on (see the keys below)."""


@dataclass
class RewardConfig:
    reward_function: str = "builtin:math"
    """`builtin:math` (math-verify + multiple choice), `builtin:reference` (the PAPO rule, via mathruler), `path/to/file.py:function`
    or `module:function`."""
    template: Literal["think_boxed", "think_answer"] = "think_boxed"
    """Response format the built-in rewards check and take the answer from: `think_boxed` (`<think>...</think>`
    then `\\boxed{}`) or `think_answer` (`<think>...</think>` then `<answer>...</answer>`). Eval scoring uses it too."""
    format_weight: float = 0.1
    """Built-in rewards: overall = (1 - format_weight) * accuracy + format_weight * format, in [0, 1]. Custom
    reward functions compute their own overall."""
    timeout_s: float = 5.0
    """Seconds allowed to score one response; a response over it scores 0 (and counts in reward/timeouts).
    <= 0: no timeout."""
    num_workers: int = 2
    """Scoring worker processes (a stuck one is killed and replaced); 0: score in the trainer process. Validation
    grades in the same pool (with a custom reward_function, in a pool of this size and timeout_s)."""
    max_error_fraction: float = 0.1
    """A response whose reward function raises scores 0 (the first few errors are logged with the response, all
    are counted in reward/errors); the run stops only when more than this fraction of one step's responses fail,
    in [0, 1] (1: never stop)."""
    overlong_buffer_len: int = 0
    """DAPO's soft overlong punishment: a response longer than data.max_response_length - overlong_buffer_len
    tokens gets a penalty added to its overall reward, growing linearly from 0 to -overlong_penalty_factor at
    data.max_response_length (as verl's DAPO reward manager). 0: off; else in [1, data.max_response_length]."""
    overlong_penalty_factor: float = 1.0
    """Penalty at data.max_response_length (the most a response loses), >= 0; used when overlong_buffer_len > 0."""


@dataclass
class TrainerConfig:
    project_name: str = "fastgrpo"
    """W&B project, MLflow experiment (used only with the wandb / mlflow loggers)."""
    experiment_name: str = "run"
    """Name of the run: its directory under output_dir, and the W&B / MLflow run name."""
    output_dir: str = "runs"
    """Run directory is <output_dir>/<experiment_name>."""
    total_epochs: int = 1
    """With max_steps null, the run has total_epochs * (prompts // rollout_batch_size) steps. The step count
    sets training progress (Slow2Fast schedule) and the lr schedule."""
    max_steps: int | None = None
    """Stop after this many steps (default: one pass over the data per epoch)."""
    save_freq: int = 50
    """Save a checkpoint every this many steps; <= 0: only the final one (always saved, also when Ctrl-C, SIGTERM
    or SIGUSR1 stops the run after its current step)."""
    save_limit: int = 3
    """Complete checkpoints kept in the run dir, newest first; older ones are deleted, only once the new one is
    complete (a failed save deletes nothing). <= 0: keep all."""
    resume: str = "auto"
    """`auto`: the newest complete checkpoint in the run dir (an incomplete or damaged newer one is skipped with a
    warning naming it); `none`; or a checkpoint path, which must be complete (else exit 2 naming the bad file).
    Complete: its manifest.json, written last, lists every file with its size, and they match."""
    val_freq: int = -1
    """Validate on eval.benchmarks and data.val_files every this many steps and at the last step; -1 (any
    value <= 0): never."""
    val_before_train: bool = False
    """Also validate before the first step (step 0) of a fresh run; not on resume."""
    logger: list[str] = field(default_factory=lambda: ["console", "jsonl"])
    """Any of console, jsonl, tensorboard, wandb, mlflow (every backend gets the keys of metrics.jsonl). mlflow
    logs to MLFLOW_TRACKING_URI (unset: MLflow's default, sqlite:///mlflow.db in the working directory for
    MLflow 3), experiment project_name, run experiment_name; it needs `pip install 'fastgrpo[mlflow]'`."""
    log_samples: int = 4
    """Responses per step written to <run dir>/samples.jsonl with their scores and reward; 0: none."""
    seed: int = 1
    """Seed of the Python, NumPy and torch global RNGs, and of validation sampling (also `fastgrpo eval
    --config`'s default --seed)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto`: CUDA when available, else CPU; `cuda` fails without a GPU. Each process uses cuda:LOCAL_RANK."""
    deterministic: bool = False
    """torch.use_deterministic_algorithms (warn only): deterministic kernels where they exist; slower."""


@dataclass
class EvalConfig:
    """Benchmarks for validation during training (trainer.val_freq) and the defaults of `fastgrpo eval --config`.

    Sampling keys (n, temperature, top_p, top_k, max_new_tokens): validation during training applies all of them
    to every benchmark; `fastgrpo eval` applies only those the YAML file sets (its flags win over both), and the
    rest take each benchmark's own defaults (vision: n 8, temperature 1.0, top_p 1.0, top_k 50, 2048 tokens;
    text: n 1, temperature 0.6, top_p 0.95, no top-k, 16384 tokens; AIME 2024: n 8).
    """

    benchmarks: list[str] = field(default_factory=list)
    """Benchmarks for validation during training, as `fastgrpo eval --bench` takes them: registry names
    (`fastgrpo eval --list`; e.g. gsm8k, math500), the groups `all` / `vision` / `text`, or comma lists. Checked
    when a command loads the config (train, config validate, eval --config); training also rejects image benchmarks for a text model, and `custom` (use
    data.val_files)."""
    n: int = 1
    """Samples per question; a question's accuracy is the mean over them (avg@n)."""
    temperature: float = 1.0
    """Sampling temperature for evaluation; 0: greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass for evaluation, in (0, 1]; 1 disables it."""
    top_k: int = 50
    """Top-k for evaluation; -1 (or 0) disables it. 50 is the reference vision evaluation's hidden default."""
    max_new_tokens: int = 2048
    """Most tokens generated per evaluation response. With validation on (trainer.val_freq), at most
    data.max_response_length: validation shares the training engine, whose model length is
    max_prompt_length + max_response_length (a config error otherwise, not a silent cut)."""
    scorer: Literal["mathverify", "reference"] = "mathverify"
    """`mathverify`: the training grader (math-verify, option letters); `reference`: PAPO-Eval's own rule through
    the `mathruler` package (last `\\boxed{}`, string then sympy equality, PAPO's gold+newline label), to compare
    with published tables."""
    truncated_thinking: Literal["wrong", "search"] | None = None
    """A response that opened `<think>` (or whose prompt did) and never closed it: `wrong` grades it wrong
    (the lm-eval / lighteval convention), `search` grades whatever answer it holds; null: `wrong` for
    mathverify, `search` for reference (PAPO's code has no such rule). Counted in results.json either way."""
    limit: int | None = None
    """Evaluate only the first N questions of each benchmark (data.val_files included); null: all."""
    data_dir: str | None = None
    """Folder searched for local benchmark copies (<name>.parquet/.jsonl/.json/.arrow or a saved dataset)
    before the hub; the FASTGRPO_EVAL_DATA variable is searched too."""
    batch_size: int = 32
    """Questions per generation call (each with its n samples)."""


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
