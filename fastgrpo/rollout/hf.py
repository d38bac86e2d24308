"""HF `generate` rollout engine: the embedded default that runs anywhere, CPU included.

Batched, left-padded, KV-cached sampling straight from the training model, so
there are no weights to sync. Under FSDP with several ranks, `synced_gpus`
keeps every rank stepping the model until all ranks are done, which keeps the
per-layer all-gathers matched even when ranks finish at different lengths.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from fastgrpo.rollout.base import PromptInput, RolloutOutput, SamplingParams


class HFRolloutEngine:
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
        expanded = [p for p in prompts for _ in range(params.n)]
        generator_state = None
        if params.seed is not None:
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(params.seed)
        synced = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        was_training = self.model.training
        self.model.eval()
        responses: list[list[int]] = []
        logprobs: list[list[float]] | None = [] if self.return_logprobs else None
        try:
            n_chunks = (len(expanded) + self.micro_batch_size - 1) // self.micro_batch_size
            if synced:  # every rank must run the same number of generate calls
                t = torch.tensor([n_chunks], device=self._device)
                dist.all_reduce(t, op=dist.ReduceOp.MAX)
                n_chunks = int(t.item())
            for c in range(n_chunks):
                chunk = expanded[c * self.micro_batch_size : (c + 1) * self.micro_batch_size]
                if not chunk:  # this rank ran out; keep stepping with a dummy prompt to stay in sync
                    chunk = [PromptInput(prompt_ids=[self.pad_token_id if self.pad_token_id is not None else 0])]
                    self._generate_chunk(chunk, params, synced)
                    continue
                ids, lps = self._generate_chunk(chunk, params, synced)
                responses.extend(ids)
                if logprobs is not None:
                    logprobs.extend(lps)
        finally:
            if was_training:
                self.model.train()
            if generator_state is not None:
                torch.random.set_rng_state(generator_state)
        return RolloutOutput(response_ids=responses, logprobs=logprobs, n=params.n)

    def _generate_chunk(self, chunk: list[PromptInput], params: SamplingParams,
                        synced: bool) -> tuple[list[list[int]], list[list[float]]]:
        device = self._device
        width = max(len(p.prompt_ids) for p in chunk)
        input_ids = torch.full((len(chunk), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, p in enumerate(chunk):  # left padding: every prompt ends at the same column
            input_ids[i, width - len(p.prompt_ids) :] = torch.tensor(p.prompt_ids)
            attention_mask[i, width - len(p.prompt_ids) :] = 1
        extra: dict[str, Any] = {}
        if chunk[0].processor_inputs:
            extra = _stack_processor_inputs([p.processor_inputs or {} for p in chunk], device)
        do_sample = params.temperature > 0
        sampling: dict[str, Any] = {"do_sample": do_sample}
        if do_sample:
            sampling.update(temperature=params.temperature, top_p=params.top_p,
                            top_k=params.top_k if params.top_k and params.top_k > 0 else 0)
        out = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=params.max_new_tokens,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.pad_token_id,
            synced_gpus=synced,
            return_dict_in_generate=True,
            output_logits=self.return_logprobs,
            use_cache=True,
            **sampling,
            **extra,
        )
        gen = out.sequences[:, width:].cpu()
        eos = torch.tensor(self.eos_token_ids)
        ids_out: list[list[int]] = []
        lps_out: list[list[float]] = []
        for i in range(gen.shape[0]):
            row = gen[i]
            is_eos = torch.isin(row, eos)
            length = int(is_eos.nonzero()[0].item()) + 1 if is_eos.any() else row.shape[0]
            ids_out.append(row[:length].tolist())
            if self.return_logprobs:
                logits = torch.stack([step[i] for step in out.logits[:length]]).float().cpu()
                if do_sample:
                    logits = logits / params.temperature
                lp = torch.log_softmax(logits, dim=-1).gather(-1, row[:length, None]).squeeze(-1)
                lps_out.append(lp.tolist())
        return ids_out, lps_out


def _stack_processor_inputs(items: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """Qwen2-VL style inputs concatenate patches along dim 0 across the batch."""
    keys = items[0].keys()
    return {k: torch.cat([it[k] for it in items], dim=0).to(device) for k in keys}
