"""The FAST-GRPO training recipe, readable top to bottom.

One step, for B prompts x G samples (SPEC section 1):
  1. rollouts: each rank samples G responses for its share of the B prompts;
  2. scores: accuracy / format / overall per response (process pool, timeouts);
  3. every rank gathers all groups, so the group-level math below is computed
     identically everywhere: Slow2Fast filtering (refill until B groups pass),
     difficulty and the easy/hard split, thinking reward, advantages, and the
     per-group KL coefficient;
  4. policy update: PPO-clip loss + per-sample-weighted KL to the frozen
     reference, normalized over the *global* batch, so 1 process and N
     processes compute the same update;
  5. metrics, samples, checkpoints.

The data of a step is typed (`fastgrpo.train.step_batch`): scored `Group`s from the rollout, one
`StepBatch` from the group math (`StepBatch.build`, one call into `fastgrpo.algo.step`), one `Sample`
per response in the update. What differs between a text and a vision model (tokenizer/processor,
prompts, engine, packing, log-probs) is the modality adapter's (`fastgrpo.train.modality`), built once
in `setup`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fastgrpo.algo.difficulty import DifficultyWindow
from fastgrpo.algo.filtering import BatchFiller, resolve_filter_bounds, round_prompts, training_progress
from fastgrpo.algo.loss import agg_denominator, total_loss
from fastgrpo.algo.rollout_is import rollout_mismatch, tis_weights
from fastgrpo.config import Config, ConfigError, dump_config, to_dict
from fastgrpo.config.schema import AlgorithmConfig, LoraSettings
from fastgrpo.data.chat_template import detect_think_in_prompt
from fastgrpo.data.io import BadRows, DataSourceError
from fastgrpo.data.prompts import PromptSampler
from fastgrpo.log import console, get_logger
from fastgrpo.models.loader import eos_token_ids
from fastgrpo.models.lora import LoraSpec, adapters_disabled, add_lora, trainable_counts
from fastgrpo.reward import RewardScorer
from fastgrpo.reward.errors import RewardErrorBudget, RewardFailure, RewardFunctionError
from fastgrpo.rollout import SamplingParams, resolve_engine_name
from fastgrpo.rollout.hf import row_seed
from fastgrpo.run_dir import RunDir
from fastgrpo.train.batch import Packed
from fastgrpo.train.checkpoint import (
    CheckpointError,
    CheckpointSaveError,
    clean_stale_temp,
    complete_checkpoints,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from fastgrpo.train.dist import (
    DistInfo,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    ensure_process_group,
    init_distributed,
    seed_everything,
)
from fastgrpo.train.loggers import RunLogger, truncate_jsonl
from fastgrpo.train.logprobs import HeadOptions, TokenStats
from fastgrpo.train.modality import load_modality
from fastgrpo.train.model import (
    ModelLoadError,
    load_model_config,
    load_policy_model,
    resolve_dtype,
    resolve_master_dtype,
    shard_fsdp2,
)
from fastgrpo.train.plan import check_model_length, engine_settings
from fastgrpo.train.signals import EXIT_STOPPED, StopRequest, signal_name
from fastgrpo.train.step_batch import Group, GroupScores, Sample, StepBatch, TruncationSettings

log = get_logger(__name__)

# Loss metrics averaged with the aggregation's own weights, so they match across process counts.
WEIGHTED_LOSS_METRICS = ("pg_loss", "kl_loss", "total_loss", "pg_clipfrac", "ppo_kl")


class TrainingError(RuntimeError):
    """Training cannot start or continue; the message says why and what to do."""

    exit_code = 1


class BadCheckpointError(TrainingError):
    """trainer.resume names a checkpoint that is incomplete or damaged (bad input: exit 2)."""

    exit_code = 2


class TrainingStopped(TrainingError):
    """A signal stopped the run after its checkpoint was saved; rerunning the command resumes it."""

    exit_code = EXIT_STOPPED


def uses_kl(a: AlgorithmConfig) -> bool:
    """Whether the loss has a KL term to the reference (and so the reference log-prob pass runs)."""
    if not a.use_kl_loss:
        return False
    return (a.kl_coef if a.kl_type == "fixed" else a.kl_max_coef) != 0


def lora_spec(settings: LoraSettings) -> LoraSpec | None:
    """actor.lora -> what `add_lora` takes; None when LoRA is off (rank 0)."""
    if not settings.rank:
        return None
    return LoraSpec(rank=settings.rank, alpha=settings.alpha, dropout=settings.dropout,
                    target_modules=tuple(settings.target_modules))


def train(cfg: Config) -> Path:
    """Run FAST-GRPO training to completion (or resume it); returns the run directory."""
    info = init_distributed(cfg.trainer.device)
    try:
        return FastGRPORecipe(cfg, info).run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


class FastGRPORecipe:
    def __init__(self, cfg: Config, info: DistInfo) -> None:
        self.cfg, self.info = cfg, info
        self.run_dir = Path(cfg.trainer.output_dir) / cfg.trainer.experiment_name
        self.ckpt_root = RunDir(self.run_dir).checkpoints

    # ----------------------------------------------------------------- setup
    def setup(self) -> None:
        cfg, info = self.cfg, self.info
        # Everything that can fail on bad input happens before the run directory exists.
        if not cfg.data.train_files:
            raise TrainingError("data.train_files is empty: give a local parquet/jsonl file or a hub id `name@split`")
        self.bad_rows = BadRows(cfg.data.on_bad_row)
        try:
            check_model_length(cfg, load_model_config(cfg.model))
            # Text or vision: the tokenizer (and processor), the prompts, the engine, packing, log-probs.
            self.modality = load_modality(cfg, info)
            self.val_benchmarks = self._val_benchmarks()
            self.examples = self.modality.load_prompts(self.bad_rows)
            # Rendered once: an R1-Distill template opens <think> itself, and the graders must know it.
            self.think_in_prompt = detect_think_in_prompt(self.modality.tokenizer,
                                                          chat_template=self.modality.chat_template)
        except (ModelLoadError, DataSourceError, ConfigError) as e:
            raise TrainingError(str(e)) from None
        seed_everything(cfg.trainer.seed)
        if cfg.trainer.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        # Mixed precision (SPEC section 6): fp32 master parameters and AdamW state, compute in model.dtype.
        self.compute_dtype = resolve_dtype(cfg.model.dtype, info.device)
        try:
            self.master_dtype = resolve_master_dtype(cfg.actor.master_dtype, self.compute_dtype)
            self.lora = lora_spec(cfg.actor.lora)
            if self.lora is None:
                self.model = load_policy_model(cfg.model, info.device, for_training=True,
                                               param_dtype=self.master_dtype)
            else:  # frozen base in the compute dtype, trainable adapters in the master dtype
                self.model = load_policy_model(cfg.model, info.device, for_training=True,
                                               param_dtype=self.compute_dtype)
                add_lora(self.model, self.lora, self.master_dtype)
                trainable, total = trainable_counts(self.model)
                log.info("LoRA rank %d: %s of %s parameters trainable (%.2f%%)", self.lora.rank, f"{trainable:,}",
                         f"{total:,}", 100 * trainable / total)
            self.use_kl = uses_kl(cfg.algorithm)
            self.ref = self._make_reference()
            # actor.packing `auto` -> the best layout this modality and attention implementation allow
            self.packing = self.modality.resolve_packing(
                cfg.actor.packing, getattr(self.model.config, "_attn_implementation", None))
        except (ModelLoadError, ValueError) as e:
            raise TrainingError(str(e)) from None
        mixed = self.master_dtype != self.compute_dtype
        if info.distributed or mixed:
            ensure_process_group(info)  # one process in mixed precision: a one-rank FSDP2 group, same numerics
            shard_fsdp2(self.model, info, self.compute_dtype, cfg.actor.fsdp_reshard_after_forward)
            if self.ref is not None and info.distributed:
                shard_fsdp2(self.ref, info, None, True)
        self.head = HeadOptions(method=cfg.actor.logprob_method, chunk_size=cfg.actor.logprob_chunk_size)
        a = cfg.actor
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=a.lr, betas=(a.betas[0], a.betas[1]), weight_decay=a.weight_decay,
        )
        per_epoch = max(1, len(self.examples) // cfg.data.rollout_batch_size)
        self.total_steps = cfg.trainer.max_steps or cfg.trainer.total_epochs * per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_lambda)
        self.sampler = PromptSampler(len(self.examples), seed=cfg.data.seed, shuffle=cfg.data.shuffle)
        self.window = DifficultyWindow(cfg.algorithm.difficulty_window)
        self.pass_rate = 1.0  # groups kept / generated in the last round: sizes the next (max_prompts_per_round)
        self.truncation = TruncationSettings(
            cfg.data.max_response_length, tuple(eos_token_ids(self.model, self.modality.tokenizer)),
            cfg.reward.overlong_buffer_len, cfg.reward.overlong_penalty_factor)
        self.engine = self.modality.make_engine(self.model, **self._vllm_kwargs())
        self.engine_name = resolve_engine_name(cfg.rollout.engine)
        self._policy_version = 0  # optimizer updates applied to self.model in this process
        self._engine_version: int | None = None  # the policy version the engine's weights are from
        self._weight_syncs = 0
        self.scorer = RewardScorer(
            reward_function=cfg.reward.reward_function, template=cfg.reward.template,
            format_weight=cfg.reward.format_weight, timeout_s=cfg.reward.timeout_s,
            num_workers=cfg.reward.num_workers,
        )
        self.reward_errors = RewardErrorBudget(cfg.reward.reward_function, cfg.reward.max_error_fraction)
        self.logger = RunLogger(self.run_dir, cfg.trainer.logger, info.is_main, to_dict(cfg),
                                cfg.trainer.project_name, cfg.trainer.experiment_name)

    def _val_benchmarks(self) -> list[Any]:
        """eval.benchmarks (groups and comma lists expanded) plus data.val_files as benchmark `val`, checked now.

        Why here: a typo, an image benchmark for a text model or an unreadable val_files would
        otherwise surface only at the first validation, after trainer.val_freq steps of work.
        """
        from fastgrpo.eval import (
            UnknownBenchmarkError,
            custom_benchmark,
            get_benchmark,
            load_items,
            resolve_names,
        )

        cfg = self.cfg
        if cfg.trainer.val_freq <= 0 and not cfg.trainer.val_before_train:
            return []
        try:
            names = resolve_names(cfg.eval.benchmarks)
        except UnknownBenchmarkError as e:
            raise TrainingError(f"eval.benchmarks: {e}") from None
        if "custom" in names:
            raise TrainingError("eval.benchmarks: `custom` needs a data file; "
                                "for validation during training set data.val_files instead")
        benchmarks: list[Any] = [get_benchmark(n) for n in names]
        try:
            self.modality.check_benchmarks(benchmarks)
        except ValueError as e:
            raise TrainingError(str(e)) from None
        d = cfg.data
        if d.val_files:
            # Asked with training's format and system prompts (a vision model also gets the images).
            val = custom_benchmark(d.val_files, name="val", prompt_key=d.prompt_key, answer_key=d.answer_key,
                                   images_optional=True, system_prompt=d.system_prompt,
                                   **self.modality.val_benchmark_kwargs())
            load_items(val, cfg.eval.data_dir, cfg.eval.limit)  # reads it like train_files; errors surface now
            benchmarks.append(val)
        return benchmarks

    def _make_reference(self) -> torch.nn.Module | None:
        """A frozen copy of model.path, or None: no KL term, or LoRA (the actor with its adapters off)."""
        if not self.use_kl or self.lora is not None:
            return None
        return load_policy_model(self.cfg.model, self.info.device, for_training=False)  # in the compute dtype

    def _vllm_kwargs(self) -> dict[str, Any]:
        # the same settings `fastgrpo train --dry-run` prints, plus the dtype of the weights it will receive
        return {**engine_settings(self.cfg), "dtype": self._rollout_dtype()}

    def _rollout_dtype(self) -> str:
        """rollout.dtype `auto`: the actor's compute dtype (model.dtype; fp32 master weights compute in it), so a
        synced engine samples from the policy the actor computes (vLLM's own `auto` would serve an fp32
        checkpoint in 16-bit)."""
        if self.cfg.rollout.dtype != "auto":
            return self.cfg.rollout.dtype
        return str(self.compute_dtype).replace("torch.", "")

    def _sync_engine(self) -> None:
        """Give the engine the current policy: once per policy change, not per generate call.

        Why: the Slow2Fast refill rounds and the validation after an update all sample from the same
        weights; re-sending them (a full gather under FSDP) would only cost time. A level-2 sleep drops
        vLLM's weights, so after one the engine needs them again.
        """
        if self._engine_version == self._policy_version and not getattr(self.engine, "weights_dropped", False):
            return
        self.engine.sync_weights(self.model)  # collective for vLLM; a no-op for HF
        self._engine_version = self._policy_version
        self._weight_syncs += 1

    def _lr_lambda(self, step: int) -> float:
        a = self.cfg.actor
        warmup = int(a.warmup_ratio * self.total_steps)
        if step < warmup:
            return (step + 1) / warmup
        if a.lr_scheduler == "constant":
            return 1.0
        frac = (step - warmup) / max(1, self.total_steps - warmup)
        if a.lr_scheduler == "linear":
            return max(0.0, 1.0 - frac)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    def _write_run_files(self) -> None:
        if not self.info.is_main:
            return
        run = RunDir(self.run_dir)
        run.write_config(dump_config(self.cfg))
        run.write_hf_base(self._save_hf_base)

    def _save_hf_base(self, folder: Path) -> None:
        """The files export rebuilds a model folder from: model and generation config, tokenizer, processor."""
        model = self.model
        model.config.save_pretrained(folder)
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.save_pretrained(folder)
        self.modality.save_pretrained(folder)

    def _resume(self) -> int:
        """Restore from a checkpoint per trainer.resume; returns the step to continue after."""
        mode = self.cfg.trainer.resume
        clean_stale_temp(self.ckpt_root, self.info)
        if mode == "none":
            return self._rewind_logs(0)
        if mode == "auto":
            good, damaged = complete_checkpoints(self.ckpt_root)
            newest_good = good[-1][0] if good else -1
            for bad, problem in damaged:
                if int(bad.name.rsplit("_", 1)[-1]) > newest_good:
                    log.warning("skipping checkpoint %s: %s", bad, problem)
            if not good:
                if damaged:
                    log.warning("no complete checkpoint in %s: starting from step 0", self.ckpt_root)
                return self._rewind_logs(0)
            path = good[-1][1]
        else:
            path = Path(mode)
            if not path.is_dir():
                raise BadCheckpointError(f"trainer.resume={mode}: no such checkpoint folder")
        try:
            state = load_checkpoint(path, self.model, self.optimizer, self.info)
        except CheckpointError as e:
            hint = ("; set trainer.resume=auto to use the newest complete one, or point it at another "
                    "global_step_* folder")
            raise BadCheckpointError(f"trainer.resume={mode}: {e}{hint}") from None
        self.scheduler.load_state_dict(state["scheduler"])
        # The config's learning rate wins over the checkpoint's (e.g. resuming with a lower actor.lr).
        self.scheduler.base_lrs = [self.cfg.actor.lr] * len(self.optimizer.param_groups)
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.cfg.actor.lr
            group["lr"] = self.cfg.actor.lr * self._lr_lambda(self.scheduler.last_epoch)
        self.sampler.load_state_dict(state["sampler"])
        self.window.load_state_dict(state["difficulty_window"])
        self.pass_rate = float(state.get("filter_pass_rate", 1.0))  # absent in checkpoints before it existed
        step = self._rewind_logs(int(state["step"]))
        log.info("resumed from %s (step %d)", path, step)
        return step

    def _rewind_logs(self, step: int) -> int:
        """Drop log lines past `step`, so the files read as one uninterrupted run."""
        if self.info.is_main:
            truncate_jsonl(self.logger.metrics_path, step)
            truncate_jsonl(self.logger.samples_path, step)
        return step

    def _save(self, step: int) -> Path:
        state = {
            "step": step,
            "total_steps": self.total_steps,
            "dtype": str(next(self.model.parameters()).dtype).replace("torch.", ""),  # the master weights'
            "compute_dtype": str(self.compute_dtype).replace("torch.", ""),  # export's default dtype
            "world_size": self.info.world_size,
            "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(),
            "difficulty_window": self.window.state_dict(),
            "filter_pass_rate": self.pass_rate,
        }
        try:
            path = save_checkpoint(self.ckpt_root, step, self.model, self.optimizer, state, self.info,
                                   self.cfg.trainer.save_limit)
        except CheckpointSaveError as e:
            raise TrainingError(str(e)) from None
        log.info("saved checkpoint %s", path)
        return path

    # ------------------------------------------------------------------ loop
    def run(self) -> Path:
        self.setup()
        self._write_run_files()
        barrier(self.info)
        start = self._resume()
        last_saved = start
        step = start
        interrupted = False
        stopped_by = 0
        progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("steps"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
            disable=not self.info.is_main,
        )
        try:
            with progress, self.scorer, StopRequest(allow_immediate=not self.info.distributed) as stop:
                task = progress.add_task("train", total=self.total_steps, completed=start)
                if self.cfg.trainer.val_before_train and start == 0:
                    self.logger.log(0, self.validate(0))
                for step in range(start + 1, self.total_steps + 1):
                    stopped_by = stop.agreed(self.info)  # collective: every rank stops after the same step
                    if stopped_by:
                        step -= 1
                        if self.info.is_main:
                            console.print(f"[yellow]{signal_name(stopped_by)}: stopping after step {step}; "
                                          "saving a checkpoint[/]")
                        break
                    metrics, samples = self.train_step(step)
                    val_freq = self.cfg.trainer.val_freq
                    if val_freq > 0 and (step % val_freq == 0 or step == self.total_steps):
                        metrics.update(self.validate(step))
                    self.logger.log(step, metrics)
                    self.logger.log_samples(step, samples)
                    progress.update(task, advance=1)
                    if self.cfg.trainer.save_freq > 0 and step % self.cfg.trainer.save_freq == 0:
                        self._save(step)
                        last_saved = step
                if step > last_saved:
                    self._save(step)
                    last_saved = step
        except KeyboardInterrupt:
            interrupted = True
        finally:
            self.logger.close()
        if interrupted:
            done = step - 1 if step > start else start  # the interrupted step did not finish
            if done > last_saved:
                console.print(f"[yellow]interrupted: saving a checkpoint at step {done}[/]")
                self._save(done)
            raise TrainingStopped(f"interrupted; resume with the same command (checkpoints in {self.ckpt_root})")
        if stopped_by:
            return self._stop(stopped_by, step)
        return self.run_dir

    def _stop(self, signum: int, step: int) -> Path:
        """After a stop signal (the last finished step is saved by then): say how to resume."""
        raise TrainingStopped(f"stopped by {signal_name(signum)} after step {step} (checkpoint "
                              f"{latest_checkpoint(self.ckpt_root)}); resume with the same command")

    def validate(self, step: int) -> dict[str, float]:
        """Run the eval harness on the live model (every rank; rank 0 writes <run_dir>/eval/step_N)."""
        from fastgrpo.eval import flat_metrics

        cfg = self.cfg
        if not self.val_benchmarks:
            return {}
        # The training pool grades built-in rewards the same way; a custom reward function's pool
        # cannot grade eval answers, so a pool of the reward.* size and timeout is made for them.
        pool = self.scorer if cfg.reward.reward_function.startswith("builtin:") else None
        # The policy just updated is the one validated: sync it first (the engine slept holding the weights
        # the step's rollouts came from), and free the engine's memory again afterwards.
        syncs_before = self._weight_syncs
        self._sync_engine()
        try:
            results = self._evaluate(step, pool)
        finally:
            self.engine.sleep()
        return {**flat_metrics(results, prefix="val"), "perf/val_weight_syncs": float(self._weight_syncs - syncs_before)}

    def _eval_params(self) -> Any:
        from fastgrpo.eval import EvalParams

        return EvalParams.from_eval_config(self.cfg.eval, seed=self.cfg.trainer.seed)

    def _evaluate(self, step: int, pool: Any) -> dict[str, Any]:
        from fastgrpo.eval import evaluate

        cfg = self.cfg
        return evaluate(
            self.model, self.modality.tokenizer, self.val_benchmarks, self._eval_params(),
            out_dir=RunDir(self.run_dir).val_dir(step), engine=self.engine, scorer=cfg.eval.scorer,
            limit=cfg.eval.limit, data_dir=cfg.eval.data_dir, batch_size=cfg.eval.batch_size,
            template=cfg.reward.template, processor=self.modality.processor, progress=False,
            engine_name=self.engine_name, reward_scorer=pool, num_workers=cfg.reward.num_workers,
            timeout_s=cfg.reward.timeout_s, truncated_thinking=cfg.eval.truncated_thinking,
            think_in_prompt=self.think_in_prompt, split_across_ranks=True,
        )

    def train_step(self, step: int) -> tuple[dict[str, float], list[dict[str, Any]]]:
        t0 = time.perf_counter()
        syncs_before = self._weight_syncs
        # The last update's gradients are not needed again: free them before the rollout needs the memory.
        self.optimizer.zero_grad(set_to_none=True)
        cuda = self.info.device.type == "cuda"
        if cuda:  # per-phase peaks: which phase sets the memory a run needs (rollout or update)
            torch.cuda.reset_peak_memory_stats(self.info.device)
        low, high = resolve_filter_bounds(self.cfg.algorithm.dynamic_filter_schedule,
                                          training_progress(step, self.total_steps),
                                          self.cfg.algorithm.filter_low, self.cfg.algorithm.filter_high)
        groups, candidates, metrics = self.collect_groups(step, low, high)
        t1 = time.perf_counter()
        peaks: dict[str, float] = {}
        if cuda:
            peaks["perf/max_memory_rollout_gib"] = torch.cuda.max_memory_allocated(self.info.device) / 2**30
            torch.cuda.reset_peak_memory_stats(self.info.device)
        # The group math, one call into fastgrpo.algo: difficulty, easy/hard, thinking reward, advantages, KL.
        batch, group_metrics = StepBatch.build(groups, candidates, self.cfg.algorithm, self.window, self.truncation)
        metrics.update(group_metrics)
        metrics.update(self.update_policy(batch, step))
        t2 = time.perf_counter()
        if cuda:
            peaks["perf/max_memory_update_gib"] = torch.cuda.max_memory_allocated(self.info.device) / 2**30
            metrics.update(peaks)
        metrics["actor/lr"] = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        n_tokens = sum(sum(g.lengths) for g in groups)
        metrics.update({"time/step": t2 - t0, "time/rollout": t1 - t0, "time/update": t2 - t1,
                        "time/tokens_per_s": n_tokens / max(t1 - t0, 1e-9),
                        "perf/weight_syncs": float(self._weight_syncs - syncs_before)})
        if self.cfg.data.on_bad_row == "skip":
            metrics["data/skipped_rows"] = float(self.bad_rows.skipped)
        return metrics, batch.records(self.cfg.trainer.log_samples)

    # -------------------------------------------------------------- rollouts
    def collect_groups(self, step: int, low: float, high: float) -> tuple[list[Group], list[Group], dict[str, float]]:
        """Generate and score until B groups pass the Slow2Fast filter (bounded tries)."""
        cfg, info = self.cfg, self.info
        target = cfg.data.rollout_batch_size
        filler = BatchFiller(target, low, high, cfg.algorithm.max_try_make_batch, cfg.algorithm.online_filtering)
        candidates: list[Group] = []
        timeouts = 0
        round_ = 0
        cap = cfg.algorithm.max_prompts_per_round or target
        while not filler.done:
            passed_before = filler.groups_passed
            idx = self.sampler.next(round_prompts(filler.needed, target, cap, self.pass_rate))
            mine = [self.examples[i] for i in idx[info.rank :: info.world_size]]
            params = SamplingParams(n=cfg.rollout.n, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                                    top_k=cfg.rollout.top_k, max_new_tokens=cfg.data.max_response_length,
                                    seed=row_seed(cfg.rollout.seed, step, round_))
            self._sync_engine()  # the first round only: the policy does not change between rounds
            inputs = [self.modality.prompt_input(e, self.engine_name) for e in mine]
            out = self.engine.generate(inputs, params)
            texts = self.modality.tokenizer.batch_decode(out.response_ids, skip_special_tokens=True)
            n = cfg.rollout.n
            # A `think_in_prompt` data column, if any, wins over the template's (it was the only way before).
            extras = [{"think_in_prompt": self.think_in_prompt, **e.extras} for e in mine]
            result = self.scorer.score(texts, [e.answer for e in mine for _ in range(n)],
                                       [x for x in extras for _ in range(n)])
            timeouts += result.timeouts
            errors = [None if t else e for e, t in zip(result.error_messages, result.timed_out, strict=True)]
            local = [
                Group(e, out.response_ids[i * n : (i + 1) * n], texts[i * n : (i + 1) * n],
                      GroupScores(*(list(getattr(result, k)[i * n : (i + 1) * n])
                                    for k in ("accuracy", "format", "overall"))),
                      errors[i * n : (i + 1) * n],
                      None if out.logprobs is None else out.logprobs[i * n : (i + 1) * n])
                for i, e in enumerate(mine)
            ]
            gathered = all_gather_objects(local, info)
            # Restore the sampler's global order: rank r held positions r, r+W, r+2W, ...
            ordered = [gathered[j % info.world_size][j // info.world_size] for j in range(len(idx))]
            candidates.extend(ordered)
            filler.add(torch.tensor([g.scores.by_name(cfg.algorithm.filter_key) for g in ordered]), ordered)
            self.pass_rate = (filler.groups_passed - passed_before) / len(ordered)
            round_ += 1
        self.engine.sleep()  # free vLLM's memory for the update; a no-op for HF
        failures = [RewardFailure(g.example.uid, g.texts[j], err) for g in candidates
                    for j, err in enumerate(g.errors or []) if err]
        try:  # every rank holds the same gathered groups, so all stop or none does
            self.reward_errors.check(step, failures, sum(len(g.texts) for g in candidates))
        except RewardFunctionError as e:
            raise TrainingError(str(e)) from None
        result = filler.result()
        if not result.full:
            log.warning("step %d: %s", step, result.warning)
        metrics = dict(result.metrics)
        metrics["reward/timeouts"] = float(timeouts)
        metrics["reward/errors"] = float(len(failures))
        if not result.items:
            raise TrainingError(
                f"step {step}: online filtering kept no group in {result.tries} tries (bounds [{low}, {high}]); "
                "the data is too easy or too hard for the model. Widen algorithm.dynamic_filter_schedule bounds "
                "or set algorithm.online_filtering=false."
            )
        return result.items, candidates, metrics

    # --------------------------------------------------------- policy update
    def update_policy(self, batch: StepBatch, step: int) -> dict[str, float]:
        with self.modality.update_scope():  # per-update caches (a vision model's image patches)
            return self._update_policy(batch.samples(), step)

    def _update_policy(self, samples: list[Sample], step: int) -> dict[str, float]:
        cfg, info = self.cfg, self.info
        a = cfg.algorithm
        gbs, mbs = cfg.actor.global_batch_size, cfg.actor.micro_batch_size
        chunks = [samples[i : i + gbs] for i in range(0, len(samples), gbs)]
        n_updates = len(chunks) * cfg.actor.ppo_epochs
        need_ref = self.use_kl
        # Each rank owns samples r, r+W, ...; every rank runs the same number of micro-batches
        # (padding with zero-weight copies) so FSDP's collectives stay matched.
        plans = [self._micro_plan(chunk, mbs) for chunk in chunks]
        # Reference log-probs are computed in the loop, on the micro-batch's one layout (the reference
        # never changes), and kept for later epochs; old-policy ones must precede any update.
        ref_lp: dict[int, torch.Tensor] = {}
        old_lp = ({id(mb): self._logprobs(self.model, mb) for plan in plans for mb, _ in plan}
                  if n_updates > 1 else {})
        sums: dict[str, float] = {}
        weights = 0.0
        mismatch = torch.zeros(3, dtype=torch.float64)  # |log pi_old - log pi_rollout| sum, capped, tokens
        mismatch_max = torch.zeros(1, dtype=torch.float64)
        grad_norms = []
        ent_sums: dict[str, float] = {}  # token entropy of the first epoch's actor passes, by bucket
        positions = 0  # token positions the actor's forward computed (padding and repeated prompts included)
        norm_c = float(cfg.data.max_response_length)
        self.model.train()
        for epoch in range(cfg.actor.ppo_epochs):
            for chunk, plan in zip(chunks, plans, strict=True):
                mask_all = [len(s.response_ids) * s.in_loss for s in chunk]
                global_den = agg_denominator(mask_all, a.loss_agg_mode)
                self.optimizer.zero_grad(set_to_none=True)
                for mb, real in plan:
                    packed = self._pack(mb)
                    if need_ref and id(mb) not in ref_lp:
                        with torch.no_grad():
                            ref_lp[id(mb)] = self._reference_logprobs(packed)
                    positions += packed.input_ids.numel()
                    stats = self._token_stats(self.model, packed, entropy=True)
                    logp = stats.logp
                    if real and epoch == 0 and stats.entropy is not None:
                        self._add_entropy(ent_sums, stats.entropy, packed.response_mask, mb)
                    old = old_lp[id(mb)] if old_lp else logp.detach()
                    adv = torch.tensor([s.advantage for s in mb], device=info.device)
                    beta = torch.tensor([s.kl_coef for s in mb], device=info.device)
                    rollout_lp = self._rollout_logprobs(mb, packed)
                    is_w = None
                    if rollout_lp is not None:
                        if epoch == 0 and real:
                            mm = rollout_mismatch(old.detach(), rollout_lp, packed.response_mask, a.rollout_is_cap)
                            mismatch += torch.stack([t.double().cpu() for t in mm[:3]])
                            mismatch_max.clamp_(min=float(mm.max_abs_diff))
                        if a.rollout_is == "tis":
                            is_w = tis_weights(old.detach(), rollout_lp, packed.response_mask, a.rollout_is_cap)
                    # algorithm.mask_truncated: truncated responses leave the loss (and its denominators)
                    loss_mask = packed.response_mask & torch.tensor([s.in_loss for s in mb], device=info.device)[:, None]
                    loss, m = total_loss(
                        logp, old, adv, loss_mask, ref_log_prob=ref_lp.get(id(mb)), kl_coef=beta,
                        kl_penalty=a.kl_penalty, use_kl_loss=need_ref, clip_ratio_low=a.clip_ratio_low,
                        clip_ratio_high=a.clip_ratio_high, clip_ratio_dual=a.clip_ratio_dual,
                        loss_agg_mode=a.loss_agg_mode, norm_constant=norm_c, is_weights=is_w, policy_loss=a.policy_loss,
                    )
                    local_den = (agg_denominator([len(s.response_ids) * s.in_loss for s in mb], a.loss_agg_mode)
                                 if real else 0.0)
                    scale = (local_den / global_den if global_den > 0 else 0.0) * info.world_size
                    (loss * scale).backward()
                    for k in WEIGHTED_LOSS_METRICS:
                        if k in m and math.isfinite(m[k]):
                            sums[k] = sums.get(k, 0.0) + m[k] * local_den
                    weights += local_den
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.actor.max_grad_norm)
                if hasattr(grad_norm, "full_tensor"):
                    grad_norm = grad_norm.full_tensor()
                grad_norm = float(grad_norm)
                if not math.isfinite(grad_norm):
                    latest = latest_checkpoint(self.ckpt_root)
                    raise TrainingError(
                        f"step {step}: non-finite loss/gradient (grad norm {grad_norm}); stopping without applying "
                        f"the update. Last good checkpoint: {latest or 'none'}. Lower actor.lr or check the data."
                    )
                self.optimizer.step()
                self._policy_version += 1
                grad_norms.append(grad_norm)
        stats = torch.tensor([sums.get(k, 0.0) for k in WEIGHTED_LOSS_METRICS] + [weights], dtype=torch.float64)
        stats = all_reduce_sum(torch.cat([stats, mismatch]), info)
        mismatch, stats = stats[-3:], stats[:-3]
        if info.distributed:
            dist.all_reduce(mismatch_max, op=dist.ReduceOp.MAX)
        total_w = float(stats[-1])
        out = {f"actor/{k}": float(stats[i]) / total_w for i, k in enumerate(WEIGHTED_LOSS_METRICS)
               if total_w > 0 and k in sums}
        out.update(self._entropy_metrics(ent_sums))
        out["actor/grad_norm"] = sum(grad_norms) / len(grad_norms)
        out["actor/num_updates"] = float(n_updates)
        out["perf/forward_positions"] = float(positions)
        if float(mismatch[2]) > 0:  # rollout log-probs existed: how far the engine's policy is from the trainer's
            out["rollout/logprob_abs_diff"] = float(mismatch[0] / mismatch[2])
            out["rollout/is_capped_fraction"] = float(mismatch[1] / mismatch[2])
            out["rollout/logprob_max_abs_diff"] = float(mismatch_max[0])
        self.optimizer.zero_grad(set_to_none=True)  # validation and the next rollout need the memory
        return out

    def _micro_plan(self, chunk: list[Sample], mbs: int) -> list[tuple[list[Sample], bool]]:
        info = self.info
        mine = chunk[info.rank :: info.world_size]
        per_rank_max = math.ceil(len(chunk) / info.world_size)
        n_micro = max(1, math.ceil(per_rank_max / mbs))
        plan = []
        for i in range(n_micro):
            mb = mine[i * mbs : (i + 1) * mbs]
            plan.append((mb, True) if mb else ([chunk[0]], False))  # zero-weight filler keeps ranks in step
        return plan

    def _rollout_logprobs(self, mb: list[Sample], packed: Packed) -> torch.Tensor | None:
        """The engine's log-probs of the micro-batch's tokens, laid out like `packed.response_ids` (or None)."""
        if any(s.rollout_logprobs is None or len(s.rollout_logprobs) != len(s.response_ids) for s in mb):
            return None
        out = torch.zeros(packed.response_mask.shape, dtype=torch.float32)
        for i, s in enumerate(mb):
            out[i, : len(s.rollout_logprobs)] = torch.tensor(s.rollout_logprobs, dtype=torch.float32)
        return out.to(packed.response_mask.device)

    @torch.no_grad()
    def _logprobs(self, model: torch.nn.Module, mb: list[Sample]) -> torch.Tensor:
        return self._response_logprobs(model, self._pack(mb))

    def _pack(self, mb: list[Sample]) -> Packed:
        return self.modality.pack(mb, self.packing)

    def _reference_logprobs(self, packed: Packed) -> torch.Tensor:
        if self.ref is not None:
            return self._response_logprobs(self.ref, packed)
        with adapters_disabled(self.model):  # LoRA: the reference is the base under the adapters
            return self._response_logprobs(self.model, packed)

    def _response_logprobs(self, model: torch.nn.Module, packed: Packed) -> torch.Tensor:
        return self._token_stats(model, packed).logp

    def _token_stats(self, model: torch.nn.Module, packed: Packed, entropy: bool = False) -> TokenStats:
        """Log-probs (and entropy, from the same chunked pass) of the response tokens, per actor.logprob_*."""
        return self.modality.token_stats(model, packed, HeadOptions(self.head.method, self.head.chunk_size, entropy))

    def _entropy_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """Mean token entropy over all ranks' response tokens: all/easy/hard `entropy` (absent for an empty bucket)."""
        keys = [f"{b}/{k}" for b in ("all", "easy", "hard") for k in ("sum", "n")]
        t = all_reduce_sum(torch.tensor([sums.get(k, 0.0) for k in keys], dtype=torch.float64), self.info)
        return {f"{b}/entropy": float(t[2 * i] / t[2 * i + 1])
                for i, b in enumerate(("all", "easy", "hard")) if t[2 * i + 1] > 0}

    @staticmethod
    def _add_entropy(sums: dict[str, float], entropy: torch.Tensor, mask: torch.Tensor, mb: list[Sample]) -> None:
        """Token-summed entropy and token counts of a micro-batch, overall and per easy/hard bucket."""
        per_sample = (entropy.detach().float() * mask).sum(-1).tolist()
        counts = mask.sum(-1).tolist()
        for s, e, n in zip(mb, per_sample, counts, strict=True):
            for bucket in ("all", "hard" if s.is_hard else "easy"):
                sums[f"{bucket}/sum"] = sums.get(f"{bucket}/sum", 0.0) + e
                sums[f"{bucket}/n"] = sums.get(f"{bucket}/n", 0.0) + n
