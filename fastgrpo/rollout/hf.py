"""HF `generate` rollout engine: the embedded default that runs anywhere, CPU included.

Batched, left-padded, KV-cached sampling straight from the training model, so
there are no weights to sync. Two choices make runs reproducible across batch
sizes and process counts:
- sampling inverts the softmax's CDF at one counter-based uniform per (seed, prompt
  uid, sample, position), so each response depends only on its own key, not on
  what else is in the batch;
- under FSDP with several ranks, `synced_gpus` keeps every rank stepping the
  model until all are done, so the per-layer all-gathers stay matched.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from fastgrpo.rollout.base import PromptInput, RolloutOutput, SamplingParams


def row_seed(seed: int, uid: int, sample: int) -> int:
    """A 63-bit seed from the row's key; hashing avoids correlated neighbouring streams."""
    digest = hashlib.blake2b(f"{seed}:{uid}:{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x < 2**32 in int64, split so no intermediate overflows int64."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _M32


def _fmix32(x: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finalizer: a cheap, well-mixed bijection."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x85EBCA6B)
    x = x ^ (x >> 13)
    x = _mul32(x, 0xC2B2AE35)
    return x ^ (x >> 16)


def counter_uniform(row_seeds: torch.Tensor, position: int) -> torch.Tensor:
    """One uniform in (0, 1) per row, float64, a pure function of (row seed, position).

    Why counter-based: one vectorized hash gives every row its own stream, so a
    sample never depends on the rest of the batch, without a Python loop over
    per-row generators at every decoding step.
    """
    lo = row_seeds & _M32
    hi = (row_seeds >> 32) & _M32
    x = _fmix32(lo ^ _mul32(torch.full_like(lo, position + 1), 0x27D4EB2F))
    x = _fmix32(x ^ hi ^ 0x9E3779B1)
    return (x.to(torch.float64) + 0.5) / 2.0**32


SAMPLER = "inverse-cdf-2"
"""Names the sampling scheme: the same seed draws other samples under another one (the demo's fingerprints
include it, so results from an older scheme are not reused as if reproduced)."""
SAMPLE_BLOCK = 128
"""Vocabulary entries per block of `sample_tokens`' two-level CDF."""


def sample_tokens(scores: torch.Tensor, row_seeds: torch.Tensor, position: int) -> torch.Tensor:
    """One token per row of `scores` [rows, vocab] (logits after temperature/top-k/top-p), drawn from their
    softmax by inverting its CDF at the row's counter uniform.

    Why not Gumbel-max with per-token counter noise: that hashes rows x vocab integers at every step, about
    2 s per step for 32 rows at a 151,936 vocabulary on CPU (the rollout was 90% of a real-vocabulary
    training step); this needs one uniform per row (~70 ms per step there). The CDF is two-level: float64
    running sums of per-block float32 sums (`SAMPLE_BLOCK` entries each) pick a block, a float64 cumsum
    inside it picks the token, so no sequential scan runs over the whole vocabulary and a token's
    probability is off by ~1e-7 relative at most (float32 block sums). Tokens a warper masked (-inf)
    have zero weight and are never drawn.
    """
    rows, vocab = scores.shape
    weights = torch.softmax(scores.float(), dim=-1)  # -inf -> 0
    pad = (-vocab) % SAMPLE_BLOCK
    if pad:
        weights = torch.nn.functional.pad(weights, (0, pad))
    blocks = weights.view(rows, -1, SAMPLE_BLOCK)
    block_cdf = blocks.sum(dim=-1).to(torch.float64).cumsum_(dim=-1)  # [rows, n_blocks]
    target = counter_uniform(row_seeds, position).to(block_cdf.device)[:, None] * block_cdf[:, -1:]
    b = _search(block_cdf, target)  # [rows, 1]
    before = torch.where(b > 0, block_cdf.gather(-1, (b - 1).clamp_min(0)), torch.zeros_like(target))
    inner = blocks[torch.arange(rows, device=blocks.device), b.squeeze(-1)].to(torch.float64).cumsum_(dim=-1)
    j = _search(inner, target - before)
    return (b * SAMPLE_BLOCK + j).squeeze(-1)


def _search(cdf: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Index of the first entry of each nondecreasing row of `cdf` above `target` [rows, 1], never past the
    row's last entry of positive weight (rounding can put the target at the total)."""
    idx = torch.searchsorted(cdf, target, right=True)
    last = (cdf < cdf[:, -1:]).sum(dim=-1, keepdim=True)  # the first index that reaches the total
    return torch.minimum(idx, last)


class _CounterSampler(LogitsProcessor):
    """Draws each row's token with `sample_tokens` and leaves only it finite, so HF's greedy `generate`
    picks exactly that sample."""

    def __init__(self, seeds: list[int], device: torch.device) -> None:
        self.seeds = torch.tensor(seeds, dtype=torch.int64, device=device)
        self.position = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        tokens = sample_tokens(scores, self.seeds[: scores.shape[0]], self.position)
        self.position += 1
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, tokens[:, None], 0.0)


class _LogprobRecorder(LogitsProcessor):
    """Records each row's log-prob of the token sampled at every step, keeping one step's log-softmax.

    Why not `output_logits`: that keeps [steps, rows, vocab] logits until `generate` returns (tens of
    GB at a 151,936 vocabulary and long answers); the token sampled at step t is visible at step t + 1
    (the last column of `input_ids`), so only the previous step's log-softmax is held. Placed first in
    the processor list, it sees the raw logits: the log-prob is of logits / temperature, as the trainer's.
    """

    def __init__(self, temperature: float) -> None:
        self.temperature = temperature if temperature > 0 else 1.0
        self.previous: torch.Tensor | None = None
        self.steps: list[torch.Tensor] = []

    def _take(self, tokens: torch.Tensor) -> None:
        if self.previous is not None:
            self.steps.append(self.previous.gather(-1, tokens[:, None].to(self.previous.device)).squeeze(-1).cpu())

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.previous is not None:
            self._take(input_ids[:, -1])
        self.previous = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        return scores

    def finish(self, last_tokens: torch.Tensor) -> torch.Tensor:
        """[rows, steps] log-probs, given the tokens sampled at the final step."""
        self._take(last_tokens)
        self.previous = None
        return torch.stack(self.steps, dim=1) if self.steps else torch.zeros((last_tokens.shape[0], 0))


class HFRolloutEngine:
    fast_decode = True
    """Text prompts on one process use `_decode_compacting` (finished rows leave the batch); otherwise HF
    `generate` (vision inputs, or FSDP ranks that must step in lockstep via `synced_gpus`)."""

    def __init__(self, model: Any, pad_token_id: int, eos_token_ids: list[int], micro_batch_size: int = 64,
                 return_logprobs: bool = False) -> None:
        self.model = model
        self.pad_token_id = pad_token_id
        self.eos_token_ids = list(eos_token_ids)
        self.micro_batch_size = micro_batch_size
        self.return_logprobs = return_logprobs

    def sync_weights(self, model: Any) -> None:
        self.model = model  # generation reads the live training weights

    def sleep(self) -> None:
        pass

    def wake_up(self) -> None:
        pass

    @property
    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def generate(self, prompts: list[PromptInput], params: SamplingParams) -> RolloutOutput:
        if any(p.images for p in prompts) and any(p.processor_inputs is None for p in prompts):
            raise ValueError("HF engine: image prompts need processor_inputs (pixel_values, image_grid_thw)")
        seed = params.seed if params.seed is not None else int(torch.randint(0, 2**62, (1,)).item())
        rows = [(p, row_seed(seed, p.uid if p.uid is not None else i, j))
                for i, p in enumerate(prompts) for j in range(params.n)]
        synced = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        was_training = self.model.training
        self.model.eval()
        responses: list[list[int]] = []
        logprobs: list[list[float]] | None = [] if self.return_logprobs else None
        try:
            n_chunks = (len(rows) + self.micro_batch_size - 1) // self.micro_batch_size
            if synced:  # every rank must run the same number of generate calls
                t = torch.tensor([n_chunks], device=self._device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                n_chunks = int(t.item())
            with _root_unit_gathered(self.model):
                for c in range(n_chunks):
                    chunk = rows[c * self.micro_batch_size : (c + 1) * self.micro_batch_size]
                    if not chunk:  # this rank ran out; keep stepping with a dummy prompt to stay in sync
                        self._generate_chunk([(PromptInput(prompt_ids=[self.pad_token_id]), 0)], params, synced)
                        continue
                    ids, lps = self._generate_chunk(chunk, params, synced)
                    responses.extend(ids)
                    if logprobs is not None:
                        logprobs.extend(lps)
        finally:
            if was_training:
                self.model.train()
        return RolloutOutput(response_ids=responses, logprobs=logprobs, n=params.n)

    def _generate_chunk(self, chunk: list[tuple[PromptInput, int]], params: SamplingParams,
                        synced: bool) -> tuple[list[list[int]], list[list[float]]]:
        device = self._device
        prompts = [p for p, _ in chunk]
        width = max(len(p.prompt_ids) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding: every prompt ends at the same column
            input_ids[i, width - len(p.prompt_ids) :] = torch.tensor(p.prompt_ids)
            attention_mask[i, width - len(p.prompt_ids) :] = 1
        extra: dict[str, Any] = {}
        if prompts[0].processor_inputs:
            extra = _stack_processor_inputs([p.processor_inputs or {} for p in prompts], device)
        processors = LogitsProcessorList()
        sampling = params.temperature > 0
        recorder = _LogprobRecorder(params.temperature) if self.return_logprobs else None
        if sampling:
            if params.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k and params.top_k > 0:
                processors.append(TopKLogitsWarper(params.top_k))
            if params.top_p < 1.0:
                processors.append(TopPLogitsWarper(params.top_p))
            processors.append(_CounterSampler([s for _, s in chunk], device))
        if self.fast_decode and not extra and not synced:
            return self._decode_compacting(input_ids.to(device), attention_mask.to(device), params,
                                           [s for _, s in chunk], LogitsProcessorList(processors[:-1] if sampling else processors))
        gen_config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,  # _CounterSampler leaves one finite score per row: argmax == its sample
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            return_dict_in_generate=True,
            use_cache=True,
        )
        if recorder is not None:
            processors.insert(0, recorder)
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=gen_config,
            logits_processor=processors,
            synced_gpus=synced,
            **extra,
        )
        gen = out.sequences[:, width:].cpu()
        token_lps = recorder.finish(gen[:, -1]) if recorder is not None and gen.shape[1] else None
        eos = torch.tensor(self.eos_token_ids)
        ids_out: list[list[int]] = []
        lps_out: list[list[float]] = []
        for i in range(gen.shape[0]):
            row = gen[i]
            is_eos = torch.isin(row, eos)
            length = int(is_eos.nonzero()[0].item()) + 1 if is_eos.any() else row.shape[0]
            ids_out.append(row[:length].tolist())
            if self.return_logprobs:
                lps_out.append(token_lps[i, :length].tolist() if token_lps is not None else [])
        return ids_out, lps_out


    def _decode_compacting(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, params: SamplingParams,
                           seeds: list[int], warpers: LogitsProcessorList) -> tuple[list[list[int]], list[list[float]]]:
        """KV-cached sampling where a row leaves the batch (and its cache) as soon as it emits EOS.

        Why: slow and fast answers differ several-fold in length; HF `generate` keeps
        every finished row in the batch until the longest is done. Same sampler
        (warpers + `sample_tokens`), so results match `generate`'s.
        """
        from transformers import DynamicCache

        device = input_ids.device
        n_rows = input_ids.shape[0]
        row_seeds = torch.tensor(seeds, dtype=torch.int64, device=device)
        eos = torch.tensor(self.eos_token_ids, device=device)
        sampling = params.temperature > 0
        position_ids = (attention_mask.cumsum(-1) - 1).clamp_min(0)
        # The n samples of a prompt share its prefill: run each distinct (prompt, mask) row once, then copy
        # its cache rows to the samples.
        width = input_ids.shape[1]
        distinct, inverse = torch.unique(torch.cat([input_ids, attention_mask], dim=-1), dim=0, return_inverse=True)
        d_mask = distinct[:, width:]
        cache = DynamicCache()
        cache_kw = _cache_kwarg(self.model)
        out = self.model(input_ids=distinct[:, :width], attention_mask=d_mask,
                         position_ids=(d_mask.cumsum(-1) - 1).clamp_min(0), **{cache_kw: cache}, use_cache=True)
        logits = out.logits[inverse, -1, :]
        if distinct.shape[0] < n_rows or not torch.equal(inverse, torch.arange(n_rows, device=inverse.device)):
            # rows back in batch order (and repeated per sample): torch.unique sorted them
            cache.batch_select_indices(inverse)
        active = torch.arange(n_rows, device=device)
        next_pos = position_ids[:, -1] + 1
        rows: list[list[int]] = [[] for _ in range(n_rows)]
        lps: list[list[float]] = [[] for _ in range(n_rows)]
        for step in range(params.max_new_tokens):
            scores = logits.float()
            if sampling:
                scores = warpers(input_ids, scores)
                tokens = sample_tokens(scores, row_seeds[active], step)
            else:
                tokens = scores.argmax(-1)
            if self.return_logprobs:
                base = logits.float() / params.temperature if sampling else logits.float()
                tok_lp = torch.log_softmax(base, -1).gather(-1, tokens[:, None]).squeeze(-1).tolist()
            for j, (r, t) in enumerate(zip(active.tolist(), tokens.tolist(), strict=True)):
                rows[r].append(t)
                if self.return_logprobs:
                    lps[r].append(tok_lp[j])
            keep = ~torch.isin(tokens, eos)
            if step == params.max_new_tokens - 1 or not bool(keep.any()):
                break
            if not bool(keep.all()):
                idx = keep.nonzero().squeeze(-1)
                cache.batch_select_indices(idx)
                active, tokens, next_pos = active[idx], tokens[idx], next_pos[idx]
                attention_mask = attention_mask[idx]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((attention_mask.shape[0], 1))], dim=1)
            out = self.model(input_ids=tokens[:, None], attention_mask=attention_mask, position_ids=next_pos[:, None],
                             **{cache_kw: cache}, use_cache=True)
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        return rows, lps if self.return_logprobs else []

def _cache_kwarg(model: Any) -> str:
    """The forward's name for the KV cache: `cache` from transformers 5.2x, `past_key_values` before (5.16.1,
    the lowest we admit). An unknown keyword vanishes into **kwargs and the model silently runs without its
    cache, so the name is read from the signature rather than guessed."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


@contextlib.contextmanager
def _root_unit_gathered(model: Any) -> Iterator[None]:
    """Keep an FSDP2 root unit's parameters gathered for a whole `generate` call.

    Why: FSDP2 gathers them in the root forward's hook, but HF `generate` runs a VL
    model's vision tower (`get_image_features`, root-unit parameters) before the
    first forward; it would meet sharded weights. A no-op for an unsharded model.
    """
    from torch.distributed.fsdp import FSDPModule

    inner = getattr(model, "module", model)  # the vision engine's generate wrapper holds the model in .module
    if not isinstance(inner, FSDPModule):
        yield
        return
    inner.unshard()
    try:
        yield
    finally:
        inner.reshard()


def _stack_processor_inputs(items: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """Qwen2-VL style inputs concatenate patches along dim 0 across the batch."""
    keys = items[0].keys()
    return {k: torch.cat([it[k] for it in items], dim=0).to(device) for k in keys}
