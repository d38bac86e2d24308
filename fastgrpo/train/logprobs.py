"""Response-token log-probs and entropy from the final hidden states, without full-vocabulary logits.

Why: the plain path (`model(...).logits`, then gather, fp32 cast, log-softmax)
materializes several [rows, length, vocab] tensors. At the text preset's
micro-batch (4 x 9,216 tokens, vocabulary 151,936) one fp32 copy is 22 GB and
the pass holds four. Here the language model head runs on the response
positions only, a chunk of tokens at a time (lm_head, fp32 log-softmax, gather,
entropy), and the backward recomputes each chunk's logits instead of keeping
them, so the transient memory is about 3 x chunk x vocab x 4 bytes whatever the
micro-batch and length. verl (fused cross-entropy kernels), TRL (per-row
`selective_log_softmax`) and Liger (fused linear cross-entropy) attack the same
cost; none of them exposes a per-token log-prob *and* entropy with per-token
upstream gradients from the hidden states, which is what the PPO ratio, the KL
term and the entropy metric need, hence the small custom autograd function.

How the hidden states are reached: the model's own forward runs unchanged (so
FSDP2 gathers the root unit, mixed-precision casts apply, Qwen-VL computes its
3-D rope positions), and only the output embedding's `forward` is swapped for
the duration of the call: it receives the normalized hidden states, computes
the statistics and returns them as a [1, M, 2] tensor in place of the [B, L, V]
logits (they must leave through the model's output: see `_captured_head`).

Three methods (`actor.logprob_method`):
- `chunked` (default): the autograd function below, any device;
- `liger`: Liger's fused linear cross-entropy Triton kernel for the passes
  without gradient (reference and old policy); the actor's own pass keeps
  `chunked`, because Liger computes the gradient inside its forward against a
  scalar upstream gradient, and the PPO loss needs per-token upstream gradients;
- `full`: the plain full-logits path (reference for tests and benchmarks).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch

from fastgrpo.log import get_logger
from fastgrpo.utils.optional import require

log = get_logger(__name__)

__all__ = ["HeadOptions", "TokenStats", "chunked_logprobs", "plain_token_stats", "token_stats"]

Method = Literal["chunked", "liger", "full"]


@dataclass(frozen=True)
class HeadOptions:
    """How the log-prob pass turns hidden states into per-token statistics (actor.logprob_*)."""

    method: Method = "chunked"
    chunk_size: int = 1024
    """Tokens per chunk: the transient memory is ~3 x chunk_size x vocab x 4 bytes."""
    entropy: bool = False
    """Also compute the per-token entropy of the sampling distribution (a detached metric)."""


@dataclass
class TokenStats:
    """Per response token, [N, T], zero at masked positions."""

    logp: torch.Tensor
    entropy: torch.Tensor | None = None


# ----------------------------------------------------------------- the kernel
def _chunk_logits(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """fp32 logits / temperature of one chunk, the matmul in the weight's (compute) dtype, like nn.Linear's."""
    z = torch.nn.functional.linear(h.to(weight.dtype), weight, bias).float()
    if temperature != 1.0:
        z.div_(temperature)
    return z


_ENTROPY_ROWS = 64
"""Rows per block of the entropy's e^z temporary (64 x vocab x 4 bytes: 39 MB at vocabulary 151,936)."""


class _ChunkedLogProbs(torch.autograd.Function):
    """(hidden [M, H], weight [V, H], bias [V] | None, targets [M]) -> (log p(target) [M], entropy [M]), fp32.

    The forward keeps only the hidden states (already alive in the graph), the weight and two [M] vectors;
    the backward recomputes each chunk's logits. Gradient of a chunk's logits z (after temperature):
    d logp_y / dz = onehot(y) - p, and d entropy / dz = -p * (log p + entropy).
    """

    @staticmethod
    def forward(ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                targets: torch.Tensor, temperature: float, chunk_size: int, with_entropy: bool
                ) -> tuple[torch.Tensor, torch.Tensor]:
        m = hidden.shape[0]
        logp = torch.empty(m, dtype=torch.float32, device=hidden.device)
        lse = torch.empty_like(logp)
        ent = torch.zeros_like(logp)
        for s in range(0, m, chunk_size):
            e = min(m, s + chunk_size)
            # One [chunk, V] fp32 buffer: shifted by the row max in place, so no logsumexp temporary.
            z = _chunk_logits(hidden[s:e], weight, bias, temperature)
            zmax = z.amax(dim=-1, keepdim=True)
            z.sub_(zmax)
            picked = z.gather(-1, targets[s:e, None]).squeeze(-1)
            if with_entropy:
                # entropy = log S - sum_v e^z_v z_v / S (z shifted, S = sum e^z), in row blocks so the e^z
                # temporary stays small.
                sum_exp = torch.empty(e - s, dtype=torch.float32, device=z.device)
                dot = torch.empty_like(sum_exp)
                for r in range(0, e - s, _ENTROPY_ROWS):
                    zb = z[r : r + _ENTROPY_ROWS]
                    pb = zb.exp()
                    sum_exp[r : r + _ENTROPY_ROWS] = pb.sum(-1)
                    dot[r : r + _ENTROPY_ROWS] = torch.bmm(pb[:, None, :], zb[:, :, None]).view(-1)
                    del pb
                log_s = sum_exp.log()
                ent[s:e] = log_s - dot / sum_exp
            else:
                log_s = z.exp_().sum(-1).log()  # z is not needed any more
            lse[s:e] = zmax.squeeze(-1) + log_s
            logp[s:e] = picked - log_s
            del z
        ctx.save_for_backward(hidden, weight, bias, targets, lse, ent)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return logp, ent

    @staticmethod
    def backward(ctx: Any, g_logp: torch.Tensor | None, g_ent: torch.Tensor | None) -> tuple[Any, ...]:
        hidden, weight, bias, targets, lse, ent = ctx.saved_tensors
        t, chunk = ctx.temperature, ctx.chunk_size
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        grad_b = torch.zeros(weight.shape[0], dtype=torch.float32, device=weight.device) if need_b else None
        use_ent = g_ent is not None and bool(g_ent.ne(0).any())
        m = hidden.shape[0]
        for s in range(0, m, chunk):
            e = min(m, s + chunk)
            h = hidden[s:e].to(weight.dtype)
            z = _chunk_logits(h, weight, bias, t)
            z.sub_(lse[s:e, None])  # log p
            if use_ent:
                p = torch.exp(z)
                # -g_ent * p * (log p + H), written into z's buffer
                gz = z.add_(ent[s:e, None]).mul_(p).mul_(-g_ent[s:e, None])
                if g_logp is not None:
                    gz.sub_(p.mul_(g_logp[s:e, None]))
                del p
            else:
                gz = z.exp_()  # p, in place
                if g_logp is not None:
                    gz.mul_(-g_logp[s:e, None])
                else:
                    gz.zero_()
            if g_logp is not None:
                gz.scatter_add_(-1, targets[s:e, None], g_logp[s:e, None].float())
            if t != 1.0:
                gz.div_(t)
            gz_c = gz.to(weight.dtype)
            del gz, z
            if need_h:
                grad_h[s:e] = (gz_c @ weight).to(hidden.dtype)
            if need_w:
                if gz_c.dtype == grad_w.dtype:
                    grad_w.addmm_(gz_c.t(), h)  # no [V, H] temporary
                else:
                    grad_w.add_(gz_c.t() @ h)
            if need_b:
                grad_b.add_(gz_c.float().sum(0))
            del gz_c
        return (grad_h, grad_w.to(weight.dtype) if need_w else None, grad_b.to(bias.dtype) if need_b else None,
                None, None, None, None)


def chunked_logprobs(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                     temperature: float = 1.0, chunk_size: int = 1024, with_entropy: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log p(targets) [M] and (optionally) entropy [M] of softmax(hidden @ weight.T + bias) / temperature."""
    if chunk_size < 1:
        raise ValueError(f"actor.logprob_chunk_size={chunk_size}: must be >= 1")
    t = temperature if temperature > 0 else 1.0
    logp, ent = _ChunkedLogProbs.apply(hidden, weight, bias, targets, t, chunk_size, with_entropy)
    return logp, (ent if with_entropy else None)


def liger_logprobs(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor,
                   temperature: float = 1.0) -> torch.Tensor:
    """log p(targets) [M] by Liger's fused linear cross-entropy (values only: call it without gradients).

    Liger's kernel takes no temperature. Folding 1/T into its bf16 input rounds every hidden state once more:
    on an H200 at the real vocabulary that moved log-probs by up to 0.07 nats at T=0.6 from the chunked
    kernel, which agrees with an all-fp32 computation as closely as full bf16 logits do (at T=1 Liger and
    the chunked kernel agreed to 2e-6; benchmarks/RESULTS.md, "On a GPU"). So at T != 1 the chunked kernel
    computes these values (logged once), and Liger runs only where it is exact.
    """
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        raise RuntimeError("liger_logprobs gives values only; the actor's gradient pass uses the chunked kernel")
    if hidden.device.type != "cuda":
        raise RuntimeError("actor.logprob_method=liger needs a CUDA device (Triton kernels); use `chunked` on CPU")
    require("liger_kernel", extra="gpu", what="actor.logprob_method=liger")
    t = temperature if temperature > 0 else 1.0
    if t != 1.0:
        if not _LIGER_TEMPERATURE_WARNED:
            _LIGER_TEMPERATURE_WARNED.append(t)
            log.warning("actor.logprob_method=liger at temperature %g: Liger's kernel has no temperature, so the "
                        "chunked kernel computes the no-grad log-probs (Liger runs at temperature 1 only)", t)
        return chunked_logprobs(hidden, weight, bias, targets, t)[0]
    from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction

    out = LigerFusedLinearCrossEntropyFunction.apply(hidden.to(weight.dtype), weight, targets, bias, None, -100,
                                                     0.0, 0.0, "none")
    loss = out[0] if isinstance(out, tuple) else out
    return -loss.float()


_LIGER_TEMPERATURE_WARNED: list[float] = []


# ------------------------------------------------------------- model plumbing
def _scatter(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    out = torch.zeros(mask.shape, dtype=values.dtype, device=values.device)
    return out.masked_scatter(mask, values)


def plain_token_stats(logits: torch.Tensor, packed: Any, temperature: float = 1.0, entropy: bool = False) -> TokenStats:
    """The full-logits reference: pick the response positions, fp32 log-softmax over the vocabulary."""
    picked = logits[packed.gather_row[:, None], packed.gather_index].float()
    if temperature > 0 and temperature != 1.0:
        picked = picked / temperature
    logsm = torch.log_softmax(picked, dim=-1)
    logp = logsm.gather(-1, packed.response_ids.unsqueeze(-1)).squeeze(-1).masked_fill(~packed.response_mask, 0.0)
    ent = None
    if entropy:
        ent = -(logsm.exp() * logsm).sum(-1).masked_fill(~packed.response_mask, 0.0)
    return TokenStats(logp, ent)


def _check_head(model: Any) -> torch.nn.Module:
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear) and not (head is not None and hasattr(head, "weight")):
        raise RuntimeError(f"{type(model).__name__} has no output embedding (lm_head) to compute log-probs from; "
                           "set actor.logprob_method=full")
    cfg = getattr(model, "config", None)
    text = getattr(cfg, "text_config", None) or cfg
    for attr in ("final_logit_softcapping", "logit_scale"):
        if getattr(text, attr, None) not in (None, 1.0, 0.0):
            raise RuntimeError(f"{type(model).__name__} transforms its logits after lm_head ({attr}); "
                               "set actor.logprob_method=full")
    return head


@contextmanager
def _captured_head(head: torch.nn.Module, compute: Any) -> Iterator[dict[str, bool]]:
    """Swap `head.forward` for `compute(hidden)` during the block (an instance attribute shadows the method).

    `compute` returns what the model then returns as its `logits`: the statistics must leave through the
    model's own output, because FSDP2 re-gathers the root unit's parameters (lm_head among them) for the
    backward from a hook on that output; a side channel would meet freed weights in the backward.
    """
    called = {"head": False}

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        called["head"] = True
        return compute(hidden, head)

    head.forward = forward
    try:
        yield called
    finally:
        del head.forward


def token_stats(model: Any, forward_kwargs: dict[str, Any], packed: Any, temperature: float = 1.0,
                opts: HeadOptions | None = None) -> TokenStats:
    """Run `model(**forward_kwargs)` and return the response tokens' log-probs (and entropy) per `opts`."""
    opts = opts or HeadOptions()
    if opts.method == "full":
        return plain_token_stats(model(**forward_kwargs).logits, packed, temperature, opts.entropy)
    head = _check_head(model)
    mask = packed.response_mask
    targets = packed.response_ids[mask]
    rows = packed.gather_row[:, None].expand_as(packed.gather_index)[mask]
    cols = packed.gather_index[mask]
    use_liger = opts.method == "liger" and not torch.is_grad_enabled()

    def compute(hidden: torch.Tensor, head: torch.nn.Module) -> torch.Tensor:
        h = hidden[rows, cols]  # [M, H]: only the positions that predict a response token
        bias = getattr(head, "bias", None)
        if use_liger:
            logp, ent = liger_logprobs(h, head.weight, bias, targets, temperature), None
        else:
            logp, ent = chunked_logprobs(h, head.weight, bias, targets, temperature, opts.chunk_size, opts.entropy)
        # [1, M, 2] in place of [R, L, V] logits (not scattered back to [R, L]: in the shared-prompt layout
        # the first tokens of sibling responses are predicted from one shared position).
        return torch.stack([logp, ent if ent is not None else torch.zeros_like(logp)], dim=-1)[None]

    with _captured_head(head, compute) as called:
        packed_stats = model(**forward_kwargs).logits
    if not called["head"] or tuple(packed_stats.shape) != (1, len(targets), 2):
        raise RuntimeError(f"{type(model).__name__}'s forward did not call its lm_head module; "
                           "set actor.logprob_method=full")
    vals = packed_stats[0]
    logp = _scatter(vals[:, 0], mask)
    return TokenStats(logp, _scatter(vals[:, 1], mask) if opts.entropy and not use_liger else None)
