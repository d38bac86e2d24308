"""The two micro-batch layouts give the same log-probs and gradients; the shared-prompt one is smaller."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from fastgrpo.train.batch import pack, pack_shared_prompt, pack_varlen, response_logprobs

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model(tiny_model: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation="sdpa")


def _groups(seed: int, n_prompts: int = 5, n: int = 4) -> tuple[list[list[int]], list[list[int]]]:
    """Prompts of different lengths, each sampled n times; fast/slow-like response lengths, one empty."""
    rng = random.Random(seed)
    prompts, responses = [], []
    for _ in range(n_prompts):
        p = [rng.randrange(3, 60) for _ in range(rng.randrange(3, 12))]
        for _ in range(n):
            prompts.append(p)
            responses.append([rng.randrange(3, 60) for _ in range(rng.choice([1, 2, 3, 15, 22]))])
    responses[3] = []
    return prompts, responses


@pytest.mark.parametrize("row_length", [0, 40, 1000])
def test_shared_prompt_layout_matches_padded_logprobs_and_grads(model: torch.nn.Module, row_length: int) -> None:
    prompts, responses = _groups(seed=row_length)
    padded = pack(prompts, responses, 0, CPU)
    shared = pack_shared_prompt(prompts, responses, 0, CPU, row_length=row_length)
    assert torch.equal(shared.response_ids, padded.response_ids)
    assert torch.equal(shared.response_mask, padded.response_mask)

    grads = []
    lps = []
    for packed in (padded, shared):
        model.zero_grad()
        lp = response_logprobs(model, packed, temperature=0.7)
        weights = torch.linspace(-1.0, 1.0, lp.numel()).view_as(lp)  # a loss that weights every token differently
        (lp * weights).sum().backward()
        lps.append(lp.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(lps[1], lps[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)
    assert lps[0][3].abs().sum() == 0  # the empty response contributes nothing


def test_shared_prompt_layout_is_smaller_and_never_wider_than_padded() -> None:
    prompts, responses = _groups(seed=1, n_prompts=8, n=8)
    padded = pack(prompts, responses, 0, CPU)
    shared = pack_shared_prompt(prompts, responses, 0, CPU)
    assert shared.input_ids.shape[1] <= padded.input_ids.shape[1]
    assert shared.input_ids.numel() < padded.input_ids.numel()
    # Each row holds each of its prompts once: its real tokens (pad id 0; tokens are >= 3) are its distinct
    # prompts plus its responses.
    real = (shared.input_ids != 0).sum(-1)
    for r in range(shared.input_ids.shape[0]):
        members = (shared.gather_row == r).nonzero().flatten().tolist()
        distinct = {tuple(prompts[i]) for i in members}
        assert int(real[r]) == sum(map(len, distinct)) + sum(len(responses[i]) for i in members)
    assert int(real.sum()) < sum(len(p) + len(r) for p, r in zip(prompts, responses, strict=True))


def test_a_response_never_attends_to_a_sibling() -> None:
    prompts = [[5, 6, 7]] * 2
    responses = [[8, 9], [10, 11, 12]]
    shared = pack_shared_prompt(prompts, responses, 0, CPU, row_length=100)
    assert shared.input_ids.shape[0] == 1
    assert shared.input_ids[0, :8].tolist() == [5, 6, 7, 10, 11, 12, 8, 9]  # longest response first
    assert shared.position_ids[0, :8].tolist() == [0, 1, 2, 3, 4, 5, 3, 4]
    mask = shared.attention_mask[0, 0]
    assert mask[6, :8].tolist() == [True, True, True, False, False, False, True, False]
    assert mask[5, :8].tolist() == [True, True, True, True, True, True, False, False]
    assert shared.gather_index[1, :3].tolist() == [2, 3, 4]
    assert shared.gather_index[0, :2].tolist() == [2, 6]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_varlen_layout_matches_padded(tiny_model: Path, attn: str) -> None:
    """One row, no mask, position ids restarting per sequence: transformers separates the sequences
    (flash-attn varlen on GPU; a block-diagonal mask for sdpa/eager here). Same log-probs and gradients."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32, attn_implementation=attn)
    prompts, responses = _groups(seed=7)
    padded = pack(prompts, responses, 0, CPU)
    varlen = pack_varlen(prompts, responses, 0, CPU)
    assert varlen.input_ids.shape == (1, sum(len(p) + len(r) for p, r in zip(prompts, responses, strict=True)))
    assert varlen.attention_mask is None
    lps, grads = [], []
    for packed in (padded, varlen):
        model.zero_grad()
        lp = response_logprobs(model, packed, temperature=0.7)
        (lp * torch.linspace(-1.0, 1.0, lp.numel()).view_as(lp)).sum().backward()
        lps.append(lp.detach())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(lps[1], lps[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-5)
