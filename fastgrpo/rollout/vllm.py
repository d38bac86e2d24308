"""vLLM rollout engine colocated with the FSDP2 actor (SPMD, `external_launcher`).

Every training process holds its own `vllm.LLM` on its own GPU, created with
`distributed_executor_backend="external_launcher"` (as TRL's colocate mode and
verl/EasyR1 do): vLLM joins the trainer's torch.distributed world instead of
spawning workers. With `tensor_parallel_size > 1`, consecutive ranks form one
vLLM instance, so each TP group gathers its ranks' prompts, generates them all
(every rank of the group runs the same requests), and each rank keeps its share.

Memory: with sleep mode, `sleep()` frees the KV cache (and, at level 1, offloads
the weights to CPU; level 2 drops them) while the actor trains; `sync_weights`
wakes only the weights, loads the actor's, and the KV cache comes back on the
next `generate`.

Weight sync never gathers the whole model on one rank: the actor's state dict
is walked tensor by tensor (a DTensor is all-gathered with `.full_tensor()`,
one at a time, in the same order on every rank), renamed to the checkpoint
names vLLM's loader expects (`vllm_weight_name`), and fed to the vLLM model's
`load_weights` in buckets of at most `bucket_bytes`.

vllm is imported lazily (the `.[gpu]` extra); on a machine without it,
constructing the engine raises `MissingDependencyError`.

CPU (vLLM built for its CPU backend; what the tests run, see `make test-vllm`):
the same engine, with four differences, all decided once from the device:
- no sleep mode (vLLM's CPU worker has none): `enable_sleep_mode` is turned off;
- weight sync goes through the worker's `reload_weights` (the CPU linear layers
  repack their weights after loading, so a second plain `load_weights` fails),
  then a tied output layer is re-packed from the new embeddings;
- the KV cache gets an explicit size (`kv_cache_memory_bytes`; vLLM would
  otherwise reserve `gpu_memory_utilization` x the system's memory);
- eager execution by default (torch.compile's start-up dominates short CPU runs).
The GPU path is unchanged.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist

from fastgrpo.log import get_logger
from fastgrpo.models.lora import lora_scaling, merged_weights
from fastgrpo.rollout.base import PromptInput, RolloutOutput, SamplingParams
from fastgrpo.rollout.hf import row_seed
from fastgrpo.utils.optional import require

log = get_logger(__name__)

__all__ = [
    "CHECKPOINT_RENAMES",
    "WRAPPER_PREFIXES",
    "VLLMRolloutEngine",
    "bucket_weights",
    "collapse_image_tokens",
    "has_tied_embeddings",
    "iter_vllm_weights",
    "sampled_logprobs",
    "vllm_weight_name",
]

# ------------------------------------------------------------------------ name mapping

WRAPPER_PREFIXES = ("_orig_mod.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")
"""Module names added by torch.compile, FSDP1 and activation-checkpoint wrappers (anywhere in a name)."""

CHECKPOINT_RENAMES: dict[str, tuple[tuple[str, str], ...]] = {
    # transformers >= 4.52 nests the text model under `model.language_model` and the vision tower under
    # `model.visual`; the released checkpoints (and every vLLM version's Qwen2-VL loader) use `model.*`,
    # `visual.*` and `lm_head.*`. `save_pretrained` writes the checkpoint names too.
    "qwen2_vl": (("model.language_model.", "model."), ("model.visual.", "visual.")),
    "qwen2_5_vl": (("model.language_model.", "model."), ("model.visual.", "visual.")),
    # Qwen3-VL was released with the nested names: its checkpoint names equal the module names.
}
"""Per `config.model_type`: (module-name prefix, checkpoint-name prefix), first match wins."""

TIED_OUTPUT_NAMES = ("lm_head.weight",)


def vllm_weight_name(name: str, model_type: str | None = None, tie_word_embeddings: bool = False) -> str | None:
    """An actor state-dict name -> the checkpoint name vLLM's `load_weights` expects (None: do not send).

    Strips wrapper module names (torch.compile, FSDP1, checkpoint wrapper, a DDP `module.` prefix),
    maps transformers' module layout back to the checkpoint layout for `model_type`, and drops the
    output projection when it is tied to the input embeddings (vLLM ties it itself).
    """
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    if name.startswith("module."):
        name = name[len("module.") :]
    if tie_word_embeddings and name in TIED_OUTPUT_NAMES:
        return None
    for src, dst in CHECKPOINT_RENAMES.get(model_type or "", ()):
        if name.startswith(src):
            return dst + name[len(src) :]
    return name


def has_tied_embeddings(model: Any) -> bool:
    """Whether the output projection shares the input embedding (config says so, or it is the same tensor)."""
    config = getattr(model, "config", None)
    if config is not None:
        if getattr(config, "tie_word_embeddings", False):
            return True
        text = config.get_text_config() if hasattr(config, "get_text_config") else None
        if text is not None and text is not config and getattr(text, "tie_word_embeddings", False):
            return True
    try:
        out, inp = model.get_output_embeddings(), model.get_input_embeddings()
        return out is not None and inp is not None and out.weight is inp.weight
    except (AttributeError, NotImplementedError):
        return False


def iter_vllm_weights(model: torch.nn.Module, dtype: torch.dtype | None = None,
                      device: torch.device | str | None = None) -> Iterator[tuple[str, torch.Tensor]]:
    """(vLLM name, full tensor) for every tensor of the actor's state dict, materialized one at a time.

    A DTensor (FSDP2 shard) is gathered with `.full_tensor()`, a collective: every rank must
    consume this iterator to the end, in the same order. Skipped names are skipped on all ranks.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    tied = has_tied_embeddings(model)
    scaling = lora_scaling(model)

    def gathered() -> Iterator[tuple[str, torch.Tensor]]:
        for name, tensor in model.state_dict().items():
            if scaling is None and vllm_weight_name(name, model_type, tied) is None:
                continue
            t = tensor.detach()
            if dtype is not None and t.is_floating_point() and ".lora_" not in name:
                t = t.to(dtype)  # cast the shard first: the all-gather moves half the bytes of fp32
            if hasattr(t, "full_tensor"):
                t = t.full_tensor()
            yield name, t

    # LoRA: vLLM gets the merged weights (W + scale * B @ A), one layer at a time
    items = gathered() if scaling is None else merged_weights(gathered(), scaling)
    for name, t in items:
        target = vllm_weight_name(name, model_type, tied)
        if target is None:
            continue
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        if device is not None:
            t = t.to(device)
        yield target, t


def bucket_weights(weights: Iterable[tuple[str, torch.Tensor]],
                   bucket_bytes: int) -> Iterator[list[tuple[str, torch.Tensor]]]:
    """Group (name, tensor) pairs into lists of at most `bucket_bytes` (a larger tensor travels alone).

    Why: one `load_weights` call per tensor is slow, the whole model at once needs a full copy;
    buckets bound the extra memory to one bucket plus the tensor being gathered.
    """
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    bucket: list[tuple[str, torch.Tensor]] = []
    size = 0
    for name, t in weights:
        n = t.numel() * t.element_size()
        if bucket and size + n > bucket_bytes:
            yield bucket
            bucket, size = [], 0
        bucket.append((name, t))
        size += n
    if bucket:
        yield bucket


# ------------------------------------------------------------------------ request helpers


def collapse_image_tokens(ids: Sequence[int], image_token_id: int | None) -> list[int]:
    """Runs of the image pad token -> one token each: vLLM expands each image's pad itself."""
    if image_token_id is None:
        return list(ids)
    out: list[int] = []
    for t in ids:
        if t == image_token_id and out and out[-1] == image_token_id:
            continue
        out.append(t)
    return out


def sampled_logprobs(token_ids: Sequence[int], logprobs: Any) -> list[float] | None:
    """The sampled tokens' log-probs from a vLLM `CompletionOutput.logprobs`.

    Either one mapping {token id: Logprob} per position, or vLLM's `FlatLogprobs` (flat lists of token ids
    and log-probs with per-position start/end indices; what `flat_logprobs=True` returns): read from its
    lists directly, as building a mapping per position is the per-token cost flat log-probs avoid.
    """
    if logprobs is None:
        return None
    flat = _flat_sampled_logprobs(token_ids, logprobs)
    if flat is not None:
        return flat
    out: list[float] = []
    for i, tok in enumerate(token_ids):
        entry = logprobs[i]
        value = entry.get(tok) if isinstance(entry, Mapping) else entry[tok]
        out.append(float(getattr(value, "logprob", value)))
    return out


def _flat_sampled_logprobs(token_ids: Sequence[int], logprobs: Any) -> list[float] | None:
    """`FlatLogprobs` -> the sampled tokens' log-probs (None: not that layout)."""
    starts, ends = getattr(logprobs, "start_indices", None), getattr(logprobs, "end_indices", None)
    ids, values = getattr(logprobs, "token_ids", None), getattr(logprobs, "logprobs", None)
    if starts is None or ends is None or ids is None or values is None:
        return None
    if len(starts) < len(token_ids):
        raise ValueError(f"vLLM returned log-probs for {len(starts)} positions but {len(token_ids)} tokens")
    if len(values) == len(starts) and list(ids[: len(token_ids)]) == list(token_ids):
        return [float(v) for v in values[: len(token_ids)]]  # logprobs=0: the sampled token only
    out: list[float] = []
    for i, tok in enumerate(token_ids):  # top-k entries too: the sampled one is among them
        span = range(starts[i], ends[i])
        k = next((k for k in span if ids[k] == tok), None)
        if k is None:
            raise ValueError(f"vLLM returned no log-prob for sampled token {tok} at position {i}")
        out.append(float(values[k]))
    return out


def _truncate_at_eos(ids: list[int], lps: list[float] | None, eos: set[int]) -> tuple[list[int], list[float] | None]:
    for k, t in enumerate(ids):
        if t in eos:
            return ids[: k + 1], None if lps is None else lps[: k + 1]
    return ids, lps


CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30
"""KV cache on CPU when none is given: vLLM's own default would take a fraction of the system's memory."""


def _rollout_device() -> torch.device:
    """The GPU, or the CPU when this vLLM is a build for its CPU backend."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    try:
        from vllm.platforms import current_platform

        on_cpu = bool(current_platform.is_cpu())
    except (ImportError, AttributeError):
        on_cpu = False
    if not on_cpu:
        raise RuntimeError("rollout.engine=vllm needs a CUDA GPU (or vLLM built for CPU); "
                           "use rollout.engine=hf on this machine")
    return torch.device("cpu")


def _is_cpu_backend(device: torch.device) -> bool:
    """Whether vLLM runs on its CPU backend (the differences listed in the module docstring apply)."""
    return device.type == "cpu"


def _empty_cache() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------ engine


class VLLMRolloutEngine:
    """`RolloutEngine` on a colocated vLLM instance; see the module docstring for the design."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        eos_token_ids: Sequence[int],
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.6,
        enable_sleep_mode: bool = True,
        max_model_len: int | None = None,
        seed: int = 0,
        *,
        model_path: str | None = None,
        dtype: str = "auto",
        sleep_level: int = 2,
        bucket_bytes: int = 512 * 2**20,
        max_num_batched_tokens: int | None = None,
        enforce_eager: bool | None = None,
        kv_cache_memory_bytes: int | None = None,
        image_token_id: int | None = None,
        suppress_token_ids: Sequence[int] = (),
        mm_processor_kwargs: dict[str, Any] | None = None,
        limit_images_per_prompt: int | None = None,
        return_logprobs: bool = True,
        logprobs_mode: str | None = "processed_logprobs",
        llm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        """Create the vLLM instance with random ("dummy") weights, load the actor's, then sleep.

        `model_path`: the model folder or hub id (default `model.name_or_path`); vLLM reads only its
        config, tokenizer and processor files. `image_token_id`: the image pad id of a vision model
        (default `model.config.image_token_id`); prompts' expanded pads are collapsed for vLLM.
        `suppress_token_ids` (vision special tokens) get a -100 logit bias so responses never
        contain them. `mm_processor_kwargs` (e.g. min_pixels/max_pixels) must match the
        processor used for training, so vLLM makes as many image tokens as the trainer sees.
        `sleep_level`: 2 (default) drops vLLM's weights while the actor trains, as the next sync
        overwrites them anyway; 1 keeps a copy in CPU memory (only useful when generating without a
        sync after waking). `kv_cache_memory_bytes`: an explicit KV cache size (default: vLLM sizes it
        from `gpu_memory_utilization`; on CPU `CPU_DEFAULT_KV_CACHE_BYTES`). `enforce_eager` None:
        eager on CPU, CUDA graphs on GPU.
        """
        vllm = require("vllm", extra="gpu", what="rollout.engine=vllm")
        self.device = _rollout_device()
        self.on_cpu = _is_cpu_backend(self.device)
        if sleep_level not in (1, 2):
            raise ValueError(f"sleep_level must be 1 or 2, got {sleep_level}")
        if self.on_cpu and enable_sleep_mode:
            log.info("vLLM on CPU has no sleep mode: its weights and KV cache stay allocated")
            enable_sleep_mode = False
        if enforce_eager is None:
            enforce_eager = self.on_cpu
        self._vllm = vllm
        self.tokenizer = tokenizer
        self.eos_token_ids = [int(e) for e in eos_token_ids]
        self.tp = int(tensor_parallel_size)
        self.enable_sleep_mode = enable_sleep_mode
        self.sleep_level = sleep_level
        self.bucket_bytes = int(bucket_bytes)
        self.return_logprobs = return_logprobs
        self._built_for_logprobs = bool(return_logprobs)
        self.num_syncs = 0
        """Weight syncs so far (the trainer logs how many each step took)."""
        self.last_sync_seconds = 0.0
        config = getattr(model, "config", None)
        self.tied_output = has_tied_embeddings(model)
        self.image_token_id = image_token_id if image_token_id is not None else getattr(config, "image_token_id", None)
        self.suppress_token_ids = [int(t) for t in suppress_token_ids]
        path = model_path or getattr(model, "name_or_path", None) or getattr(config, "_name_or_path", None)
        if not path:
            raise ValueError("VLLMRolloutEngine: pass model_path (the actor has no name_or_path)")

        self.rank, self.world_size = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        if self.world_size % self.tp:
            raise ValueError(f"rollout.tensor_parallel_size={self.tp} must divide the number of processes "
                             f"({self.world_size})")
        self._tp_group = None
        if self.tp > 1:  # every rank must create every subgroup, in the same order
            self._tp_group, _ = dist.new_subgroups_by_enumeration(
                [list(range(g * self.tp, (g + 1) * self.tp)) for g in range(self.world_size // self.tp)]
            )
        kwargs: dict[str, Any] = {
            "model": str(path),
            "tensor_parallel_size": self.tp,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enable_sleep_mode": enable_sleep_mode,
            "distributed_executor_backend": "external_launcher",
            # vLLM requires a seed with external_launcher; ranks of one TP group must agree on it.
            "seed": int(seed) + self.rank // self.tp,
            "dtype": dtype,
            "load_format": "dummy",  # the actor's weights are pushed below; no second read from disk
            "enforce_eager": enforce_eager,
            "trust_remote_code": bool(getattr(config, "trust_remote_code", False)),
        }
        if max_model_len:
            kwargs["max_model_len"] = int(max_model_len)
        if max_num_batched_tokens:
            kwargs["max_num_batched_tokens"] = int(max_num_batched_tokens)
        if self.on_cpu and kv_cache_memory_bytes is None and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kv_cache_memory_bytes = CPU_DEFAULT_KV_CACHE_BYTES
        if kv_cache_memory_bytes:
            kwargs["kv_cache_memory_bytes"] = int(kv_cache_memory_bytes)
        if mm_processor_kwargs:
            kwargs["mm_processor_kwargs"] = dict(mm_processor_kwargs)
        if limit_images_per_prompt:
            kwargs["limit_mm_per_prompt"] = {"image": int(limit_images_per_prompt)}
        engine_fields = _engine_arg_names(vllm)
        if return_logprobs and logprobs_mode and (engine_fields is None or "logprobs_mode" in engine_fields):
            # log-probs of the distribution actually sampled (after temperature), like the HF engine's.
            # Only when they are returned: in this mode vLLM's CPU sampler takes a full-vocabulary
            # log-softmax at every step whether or not a request asks for log-probs.
            kwargs["logprobs_mode"] = logprobs_mode
        self._flat_logprobs = "flat_logprobs" in _sampling_param_names(vllm)
        kwargs.update(llm_kwargs or {})
        with self._launch_env():
            self.llm = vllm.LLM(**kwargs)
        self._awake = {"weights": True, "kv_cache": True}
        self._weights_stale = False
        if enable_sleep_mode and sleep_level == 2:
            # A level-2 sleep would drop what a sync loads now: the first sync happens before the first
            # generate (which refuses to run on the dummy weights).
            self.sleep()
            self._weights_stale = True
        else:
            self.sync_weights(model)
            self.sleep()

    # ------------------------------------------------------------------ lifecycle
    @contextlib.contextmanager
    def _launch_env(self) -> Iterator[None]:
        """external_launcher reads the torch.distributed env at start-up; a single process may not have it.

        Set only for the `LLM(...)` call and restored afterwards: left behind, a WORLD_SIZE or MASTER_PORT
        leaks into everything this process later reads or launches (a child torchrun joined its port).
        """
        wanted = {"RANK": str(self.rank), "LOCAL_RANK": "0", "WORLD_SIZE": str(self.world_size),
                  "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": None}
        added = [k for k in wanted if k not in os.environ]
        for k in added:
            os.environ[k] = wanted[k] or str(_free_port())
        try:
            yield
        finally:
            for k in added:
                os.environ.pop(k, None)

    def sleep(self) -> None:
        """Free the KV cache and offload (level 1) or drop (level 2) the weights while the actor trains."""
        if not self.enable_sleep_mode or not (self._awake["weights"] or self._awake["kv_cache"]):
            return
        if not (self._awake["weights"] and self._awake["kv_cache"]):
            # vLLM's allocator sleeps everything it holds; never hand it a half-asleep state.
            self._wake([tag for tag, awake in self._awake.items() if not awake])
        self.llm.sleep(level=self.sleep_level)
        self._awake = {"weights": False, "kv_cache": False}
        self._weights_stale = self.sleep_level == 2
        _empty_cache()

    def wake_up(self) -> None:
        """Restore weights and KV cache (after a level-2 sleep, `sync_weights` must run before `generate`)."""
        self._wake([tag for tag, awake in self._awake.items() if not awake])

    def _wake(self, tags: list[str]) -> None:
        if not tags:
            return
        _empty_cache()
        if len(tags) == len(self._awake):
            self.llm.wake_up()
        else:
            try:
                self.llm.wake_up(tags=tags)
            except TypeError:  # a vLLM without tagged wake-up: wake everything
                self.llm.wake_up()
                tags = list(self._awake)
        for tag in tags:
            self._awake[tag] = True

    @property
    def weights_dropped(self) -> bool:
        """True after a level-2 sleep: vLLM holds no usable weights until the next `sync_weights`."""
        return self._weights_stale

    def sync_weights(self, model: Any) -> None:
        """Load the actor's current weights into vLLM, bucket by bucket (a collective under FSDP2)."""
        t0 = time.perf_counter()
        if not self._awake["weights"]:
            self._wake(["weights"])  # the KV cache stays freed until generate
        weights = iter_vllm_weights(model, dtype=self._vllm_dtype(), device=self.device)
        n = self._reload_weights(weights) if self.on_cpu else self._load_buckets(weights)
        if n == 0:
            raise RuntimeError("weight sync sent no tensor: the actor's state dict is empty")
        self._weights_stale = False
        self.llm.reset_prefix_cache()  # cached prefixes were computed with the old weights
        self.num_syncs += 1
        self.last_sync_seconds = time.perf_counter() - t0

    def _load_buckets(self, weights: Iterator[tuple[str, torch.Tensor]]) -> int:
        n = 0
        for bucket in bucket_weights(weights, self.bucket_bytes):
            self._load_weights(bucket)
            n += len(bucket)
            del bucket
        return n

    def _reload_weights(self, weights: Iterator[tuple[str, torch.Tensor]]) -> int:
        """CPU: the worker's `reload_weights` (restores the layers' checkpoint layout, loads, re-packs).

        The iterator is consumed lazily inside vLLM's loader, so one tensor is materialized at a time
        (no buckets needed). A tied output layer was packed from the old embeddings at start-up and is
        not among the loaded names: it is re-packed here, or it would keep the old weights.
        """
        counted = _Counted(weights)
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": counted, "is_checkpoint_format": True})
        if self.tied_output:
            self.llm.collective_rpc(_repack_tied_output)
        return counted.n

    def _vllm_dtype(self) -> torch.dtype | None:
        try:
            return self.llm.llm_engine.model_config.dtype
        except AttributeError:
            return None

    def _load_weights(self, weights: list[tuple[str, torch.Tensor]]) -> None:
        model = _vllm_model(self.llm)
        if model is not None:
            model.load_weights(weights)
            return
        # Newer vLLM may hide the worker: run the load on it (in-process with external_launcher, no copies).
        self.llm.collective_rpc(_load_weights_on_worker, args=(weights,))

    # ----------------------------------------------------------------- generation
    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> RolloutOutput:
        if self._weights_stale:
            raise RuntimeError("vLLM weights were dropped by a level-2 sleep: call sync_weights(model) first")
        if self.return_logprobs and not self._built_for_logprobs:
            raise RuntimeError("VLLMRolloutEngine was created with return_logprobs=False, so vLLM was not set up "
                               "for the sampling distribution's log-probs (logprobs_mode): create it with "
                               "return_logprobs=True")
        self.wake_up()
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        # One request per (prompt, sample), seeded by (seed, uid, sample) like the HF engine: a response
        # does not depend on the batch it was generated in.
        local = [(self._request(p), [row_seed(seed, p.uid if p.uid is not None else i, j) for j in range(params.n)],
                  len(p.prompt_ids)) for i, p in enumerate(prompts)]
        groups = self._gather_tp(local)
        requests, sampling = [], []
        for req, seeds, _ in (item for g in groups for item in g):
            for s in seeds:
                requests.append(req)
                sampling.append(self._sampling_params(params, s))
        outputs = self.llm.generate(requests, sampling_params=sampling, use_tqdm=False) if requests else []
        eos = set(self.eos_token_ids)
        responses: list[list[int]] = []
        logprobs: list[list[float]] | None = [] if self.return_logprobs else None
        for out in outputs:
            comp = out.outputs[0]
            ids = [int(t) for t in comp.token_ids]
            lps = sampled_logprobs(ids, comp.logprobs) if self.return_logprobs else None
            ids, lps = _truncate_at_eos(ids, lps, eos)
            responses.append(ids)
            if logprobs is not None:
                logprobs.append(lps if lps is not None else [0.0] * len(ids))
        self._check_prompt_lengths(outputs, [item for g in groups for item in g], params.n)
        if self._tp_group is not None:  # keep this rank's share: its prompts are at its position in the group
            before = sum(len(g) for g in groups[: dist.get_rank(self._tp_group)]) * params.n
            count = len(prompts) * params.n
            responses = responses[before : before + count]
            logprobs = None if logprobs is None else logprobs[before : before + count]
        return RolloutOutput(response_ids=responses, logprobs=logprobs, n=params.n)

    def _request(self, p: PromptInput) -> dict[str, Any]:
        if not p.images:
            return {"prompt_token_ids": list(p.prompt_ids)}
        if self.image_token_id is None:
            raise ValueError("VLLMRolloutEngine: image prompts need image_token_id (model.config has none)")
        images = list(p.images)
        return {"prompt_token_ids": collapse_image_tokens(p.prompt_ids, self.image_token_id),
                "multi_modal_data": {"image": images if len(images) > 1 else images[0]}}

    def _sampling_params(self, params: SamplingParams, seed: int) -> Any:
        kwargs: dict[str, Any] = {
            "n": 1,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "top_k": params.top_k if params.top_k and params.top_k > 0 else -1,
            "max_tokens": params.max_new_tokens,
            "seed": seed,
            "stop_token_ids": list(self.eos_token_ids),
            "detokenize": False,
        }
        if self.return_logprobs:
            kwargs["logprobs"] = 0  # just the sampled token
            if self._flat_logprobs:  # flat lists instead of a dict and a Logprob object per token
                kwargs["flat_logprobs"] = True
        if self.suppress_token_ids:
            kwargs["logit_bias"] = {t: -100.0 for t in self.suppress_token_ids}
        return self._vllm.SamplingParams(**kwargs)

    def _gather_tp(self, local: list[Any]) -> list[list[Any]]:
        if self._tp_group is None:
            return [local]
        gathered: list[Any] = [None] * self.tp
        dist.all_gather_object(gathered, local, group=self._tp_group)
        return gathered

    def _check_prompt_lengths(self, outputs: list[Any], items: list[Any], n: int) -> None:
        """vLLM's image token count must equal the trainer's, or log-probs are computed on another prompt."""
        for k, out in enumerate(outputs):
            request, _, expected = items[k // n]
            got = len(getattr(out, "prompt_token_ids", None) or [])
            if "multi_modal_data" in request and got and got != expected:
                raise RuntimeError(
                    f"vLLM expanded a prompt to {got} tokens but the trainer has {expected}: vLLM's image "
                    "processor resized differently. Pass mm_processor_kwargs={'min_pixels': data.min_pixels, "
                    "'max_pixels': data.max_pixels} to the engine."
                )


def _engine_arg_names(vllm: Any) -> set[str] | None:
    try:
        return {f.name for f in dataclasses.fields(vllm.EngineArgs)}
    except (AttributeError, TypeError):
        return None


def _sampling_param_names(vllm: Any) -> set[str]:
    """The fields this vLLM's `SamplingParams` accepts (a msgspec struct in recent versions)."""
    names = getattr(vllm.SamplingParams, "__struct_fields__", None)
    if names is not None:
        return set(names)
    try:
        return {f.name for f in dataclasses.fields(vllm.SamplingParams)}
    except TypeError:
        return set()


def _vllm_model(llm: Any) -> Any | None:
    """The in-process vLLM model (external_launcher runs the worker in this process), or None."""
    try:
        worker = llm.llm_engine.model_executor.driver_worker
    except AttributeError:
        return None
    for path in (("worker", "model_runner", "model"), ("model_runner", "model")):
        obj = worker
        try:
            for attr in path:
                obj = getattr(obj, attr)
        except AttributeError:
            continue
        if hasattr(obj, "load_weights"):
            return obj
    return None


def _load_weights_on_worker(worker: Any, weights: list[tuple[str, torch.Tensor]]) -> None:
    worker.model_runner.model.load_weights(weights)


class _Counted:
    """Passes (name, tensor) pairs through, counting them (vLLM's loader consumes the iterator)."""

    def __init__(self, items: Iterator[tuple[str, torch.Tensor]]) -> None:
        self.items, self.n = items, 0

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        for item in self.items:
            self.n += 1
            yield item


def _repack_tied_output(worker: Any) -> None:
    """Re-run the output layer's post-load processing (CPU kernels keep a packed copy of its weight)."""
    model = worker.model_runner.get_model()
    for holder in (model, getattr(model, "language_model", None)):
        head = getattr(holder, "lm_head", None)
        method = getattr(head, "quant_method", None)
        if head is not None and hasattr(method, "process_weights_after_loading"):
            method.process_weights_after_loading(head)
            return
