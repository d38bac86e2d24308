"""Warm-start: a short supervised phase that teaches the tiny model both thinking modes.

Why: RL can only reinforce what the policy already samples. A random tiny model
never produces a boxed sum, so the demo first fits it on a seeded mix of slow
(running sums) and fast (answer at once) solutions, for just long enough that it
samples both modes and is clearly imperfect, more so on hard k: that gap is what
FAST-GRPO then closes. Plain torch AdamW, loss on response tokens only, on
exactly the prompt the trainer will build (chat template + `data.format_prompt`).

Defaults: a 0.8M-parameter Qwen2 (hidden 128, 4 layers), 1800 AdamW steps of 32
examples, lr 2e-3 with cosine decay, examples packed into rows (same loss as padding,
about half the compute; 282-358 s with 2 threads on the idle demo machine, measured on
different days: the same code, with bitwise-equal weights, varied that much).
On CPUs with native bf16 (`cpu_has_native_bf16`) the demo runs the forward and loss under
bf16 autocast (`compute_dtype`): the step is compute-bound (matmuls and attention, 69% of
its time), weights and AdamW stay fp32, and the sampled modes probe the same as fp32's
(benchmarks/RESULTS.md). The gain is small with 2 threads (1.04x in benchmarks/warmstart_dtype.py;
more with 1 thread). Its weights differ, so it has its own cache and its own multi-seed figures;
elsewhere bf16 is emulated and slower, so fp32 stays.

The loss is averaged per example (`loss_average="example"`), not per token. Why: a
batch's tokens are mostly slow running sums (a slow k=6 solution has ~64 tokens, a fast
one 7; measured before the slow style's check step), so under a token mean the answer digits of fast solutions carried ~3% of the
loss. The fast pathway then stayed a rough estimate (fast k=3 answers off by one,
0.57 greedy accuracy); weighing each example once took it to 0.98 with everything
else unchanged (2026-11-25, benchmarks/RESULTS.md).
The price: the mode choice is learned with the same weights, so the sampled slow
fraction is about p_slow / L_slow against (1 - p_slow) / L_fast, far below `slow_prob`.
The default mix (0.5, 0.3, 0.6, 0.99, 0.995) for k = 2..6 is set with that in mind:
- many fast k=3 and k=4 examples train the fast pathway (fewer, and fast k=3 fell
  back to ~0.6);
- k=5-6 are almost all slow, so the model samples slow thinking there (~0.92) and
  its fast answers there are poor;
- k=2 is half slow, so the base model also thinks on a fifth of the easiest
  sums, as R1-style models overthink easy questions: plain GRPO then grows that
  habit (to ~70%), which is the overthinking FAST-GRPO is meant to remove.
Sampled at temperature 1 (the demo's base eval, bf16 warm-start, slow style "check",
2026-12-04) the base model scores 0.98 / 0.93 / 0.80 / 0.94 / 0.90 for k = 2..6, with
slow fractions 0.20 / 0.07 / 0.18 / 0.93 / 0.95.
Under ~900 steps the model had not yet learned to copy operands and both modes were poor.

The result is cached in a folder named by a hash of every setting, written
atomically, so repeated demos (and concurrent ones) reuse it. Results are
deterministic; on the demo machine 1 and 2 threads gave bitwise-equal weights (2026-12-03),
which other CPUs need not repeat, so the thread count is recorded in warmstart.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import Qwen2ForCausalLM
from transformers.utils import logging as hf_logging

from fastgrpo.data.prompts import load_format_template, render_prompt
from fastgrpo.demo import task
from fastgrpo.models.tiny import build_char_tokenizer, build_tiny_qwen2

WARMSTART_VERSION = 1
"""Bump when the training code changes in a way that changes results: old caches stop matching."""
DONE_FILE = "warmstart.json"
LOSS_AVERAGES = ("token", "example")
COMPUTE_DTYPES = ("float32", "bfloat16")


def cpu_has_native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 matmuls natively (x86 AVX512-BF16 or AMX, Arm's BF16 extension).

    Why it matters: without them torch emulates bf16, and autocast makes the warm-start slower than fp32.
    Read from /proc/cpuinfo (torch has no public query); elsewhere (macOS, Windows) we assume no.
    """
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags = set(value.split())
            return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})
    return False


@dataclass(frozen=True)
class WarmStartSettings:
    """Everything the warm-started weights depend on; its hash names the cache folder."""

    seed: int = 0
    # Model (build_tiny_qwen2): ~0.8M parameters.
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 384
    # Data: a slow/fast mix; a float, or one probability per k from task.K_MIN.
    slow_prob: float | tuple[float, ...] = task.WARMSTART_SLOW_PROB
    slow_style: str = task.DEFAULT_SLOW_STYLE
    format_prompt: str = task.FORMAT_PROMPT
    system_prompt: str | None = None
    data_seed: int = 0
    """Seed of the demo data; its test split (k >= task.HOLDOUT_MIN_K) is held out of the warm-start."""
    n_test_per_k: int = task.N_TEST_PER_K
    # Optimisation.
    steps: int = 1800
    batch_size: int = 32
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 20
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    pack_len: int = 256
    """Tokens per packed row (0: one padded row per example); same loss, about half the compute."""
    loss_average: str = "example"
    """Loss average: "token" (one mean over every response token of the batch) or "example" (the mean of
    per-example means; see the module docstring for why)."""
    compute_dtype: str = "float32"
    """"bfloat16": forward and loss under CPU autocast (weights and AdamW stay fp32). Other weights than
    fp32's, so another cache; worth it only on CPUs with native bf16 (`cpu_has_native_bf16`)."""

    def __post_init__(self) -> None:  # fail before minutes of training, not at step 0
        if self.loss_average not in LOSS_AVERAGES:
            raise ValueError(f"loss_average must be one of {LOSS_AVERAGES}, got {self.loss_average!r}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}")

    def key(self) -> str:
        d = dataclasses.asdict(self)
        if self.compute_dtype == "float32":  # the setting came later: fp32 caches keep their old names
            del d["compute_dtype"]
        d["slow_prob"] = list(self.slow_prob) if isinstance(self.slow_prob, tuple) else self.slow_prob
        d["_version"] = WARMSTART_VERSION
        d["_tokenizer"] = _tokenizer_fingerprint()
        d["_holdout_min_k"] = task.HOLDOUT_MIN_K
        blob = json.dumps(d, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _tokenizer_fingerprint() -> str:
    """The tokenizer's full pipeline + chat template: a change to either invalidates old caches."""
    tok = build_char_tokenizer()
    blob = tok.backend_tokenizer.to_str() + str(tok.chat_template)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prompt_text(
    tokenizer: Any, problem: str, format_prompt: str | None, system_prompt: str | None = None
) -> str:
    """The exact prompt string the trainer samples from: the trainer's own renderer, so they cannot drift."""
    return render_prompt(tokenizer, problem, load_format_template(format_prompt), system_prompt)


def prompt_ids(
    tokenizer: Any, problem: str, format_prompt: str | None, system_prompt: str | None = None
) -> list[int]:
    return tokenizer(prompt_text(tokenizer, problem, format_prompt, system_prompt), add_special_tokens=False)[
        "input_ids"
    ]


def encode_example(
    tokenizer: Any, problem: str, response: str, format_prompt: str | None, system_prompt: str | None = None
) -> tuple[list[int], int]:
    """(prompt + response + EOS ids, prompt length): the response part is what the loss sees."""
    p = prompt_ids(tokenizer, problem, format_prompt, system_prompt)
    r = [*tokenizer.encode(response, add_special_tokens=False), tokenizer.eos_token_id]
    return p + r, len(p)


def _batch(
    examples: Sequence[tuple[list[int], int]], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids, attention mask, labels (-100 on prompt and padding), and each position's example."""
    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    for i, (seq, plen) in enumerate(examples):
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
        labels[i, plen : len(seq)] = ids[i, plen : len(seq)]
    return ids, mask, labels, torch.arange(len(examples))[:, None].expand(-1, width)


def _pack(
    examples: Sequence[tuple[list[int], int]], pad_id: int, row_len: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Several examples per row, each with its own positions from 0: ids, position_ids, labels, and
    each position's example index (0 on padding, which has no label).

    Why: padding every row of a random batch to its longest (slow, k=6) example
    wastes ~45% of the compute. Packed rows with restarting position ids make
    transformers build a block-diagonal causal mask (no attention across examples;
    only without a KV cache, hence use_cache=False), so the loss is the padded
    batch's loss at about half the cost, while every batch stays a random slow/fast mix. Labels are per example, so no
    token is ever predicted from its neighbour in the row. First-fit decreasing.
    """
    row_len = max(row_len, max(len(seq) for seq, _ in examples))
    rows: list[list[int]] = []
    room: list[int] = []
    for e in sorted(range(len(examples)), key=lambda j: -len(examples[j][0])):
        n = len(examples[e][0])
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(e)
                room[r] -= n
                break
        else:
            rows.append([e])
            room.append(row_len - n)
    width = max(row_len - free for free in room)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    owner = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for e in row:
            seq, plen = examples[e]
            n = len(seq)
            ids[r, at : at + n] = torch.tensor(seq)
            pos[r, at : at + n] = torch.arange(n)
            labels[r, at + plen : at + n] = ids[r, at + plen : at + n]
            owner[r, at : at + n] = e
            at += n
        pos[r, at:] = torch.arange(width - at)  # the padding tail is a block of its own
    return ids, pos, labels, owner


def response_loss(
    model: Any,
    examples: Sequence[tuple[list[int], int]],
    pad_id: int,
    pack_len: int = 0,
    average: str = "token",
) -> torch.Tensor:
    """Next-token cross-entropy on response tokens (EOS included), packed or padded.

    `average="token"` weighs every response token alike, so a 60-token slow answer
    outweighs a 6-token fast one tenfold; "example" weighs every example alike.
    """
    if average not in LOSS_AVERAGES:
        raise ValueError(f"loss_average must be one of {LOSS_AVERAGES}, got {average!r}")
    if pack_len > 0:
        ids, pos, labels, example = _pack(examples, pad_id, pack_len)
        logits = model(input_ids=ids, position_ids=pos, use_cache=False).logits
    else:
        ids, mask, labels, example = _batch(examples, pad_id)
        logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    targets, owner = labels[:, 1:].reshape(-1), example[:, 1:].reshape(-1)
    ce = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets, ignore_index=-100, reduction="none"
    )
    scored = targets != -100
    if average == "token":
        return ce[scored].sum() / scored.sum().clamp_min(1)
    counts = torch.bincount(owner[scored], minlength=len(examples)).clamp_min(1)
    return (ce[scored] / counts[owner[scored]]).sum() / len(examples)


def _lr_at(step: int, s: WarmStartSettings) -> float:
    """Linear warmup, then cosine down to min_lr_ratio * lr."""
    if step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    progress = (step - s.warmup_steps) / max(1, s.steps - s.warmup_steps)
    return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _iter_batches(
    s: WarmStartSettings, tokenizer: Any, exclude: list[task.Problem]
) -> Iterator[tuple[list[tuple[list[int], int]], int]]:
    """Encoded batches of the seeded slow/fast mix, and how many of each batch are slow.

    Batches are drawn at random, not bucketed by length: sorting pools by length
    saved ~35% of the padding compute but left batches all-fast or all-slow, and
    the model then learned far less in the same steps (measured).
    """
    examples = task.iter_sft_examples(s.seed, s.slow_prob, exclude=exclude, slow_style=s.slow_style)
    template = load_format_template(s.format_prompt)
    # Rendering the chat template per example costs more than the model step: cache by problem.
    prompt_cache: dict[str, list[int]] = {}

    def encode(problem: str, response: str) -> tuple[list[int], int]:
        p = prompt_cache.get(problem)
        if p is None:
            text = render_prompt(tokenizer, problem, template, s.system_prompt)
            p = prompt_cache[problem] = tokenizer(text, add_special_tokens=False)["input_ids"]
        r = [*tokenizer(response, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
        return p + r, len(p)

    while True:
        batch = [next(examples) for _ in range(s.batch_size)]
        yield [encode(p.text, response) for p, response, _ in batch], sum(slow for _, _, slow in batch)


def train_warmstart(
    s: WarmStartSettings, out_dir: str | Path, on_step: Callable[[int, float], None] | None = None
) -> dict[str, Any]:
    """Build the tiny model in `out_dir`, fit it on the slow/fast mix, save it back there."""
    out = Path(out_dir)
    hf_logging.disable_progress_bar()  # our own progress is the one to watch
    build_tiny_qwen2(
        out,
        seed=s.seed,
        hidden_size=s.hidden_size,
        num_layers=s.num_layers,
        num_heads=s.num_heads,
        num_kv_heads=s.num_kv_heads,
        intermediate_size=s.intermediate_size,
    )
    tokenizer = build_char_tokenizer()
    model = Qwen2ForCausalLM.from_pretrained(out, dtype=torch.float32)
    model.train()
    torch.manual_seed(s.seed)
    test = task.make_test_split(s.data_seed, s.n_test_per_k)
    batches = _iter_batches(s, tokenizer, test)
    decay = [p for p in model.parameters() if p.ndim >= 2]  # no weight decay on norms
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": s.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=s.lr,
        betas=(0.9, 0.98),
    )
    losses: list[float] = []
    n_slow = 0
    t0 = time.perf_counter()
    for step in range(s.steps):
        batch, slow_count = next(batches)
        n_slow += slow_count
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, s)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s.compute_dtype == "bfloat16"):
            loss = response_loss(model, batch, tokenizer.pad_token_id, s.pack_len, s.loss_average).float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), s.max_grad_norm)
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step, losses[-1])
    seconds = time.perf_counter() - t0
    model.eval()
    model.save_pretrained(out)
    info = {
        "key": s.key(),
        "settings": dataclasses.asdict(s),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seconds": round(seconds, 2),
        "threads": torch.get_num_threads(),
        "slow_fraction_seen": n_slow / max(1, s.steps * s.batch_size),
        "final_loss": sum(losses[-20:]) / max(1, len(losses[-20:])),
        "loss_curve": [round(x, 4) for x in losses[:: max(1, len(losses) // 50)]],
    }
    return info


def _remove_dead_temps(final: Path) -> None:
    """Delete temp folders that killed warm-starts left behind (their pid no longer runs)."""
    for tmp in final.parent.glob(f".tmp-{final.name}-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def cache_dir(s: WarmStartSettings, cache_root: str | Path) -> Path:
    return Path(cache_root) / f"warmstart-{s.key()}"


SHIPPED_DIR = Path(__file__).with_name("base")
"""The warm-start that the default recipe trained with bf16 autocast on the project's CPU machine (2026-12-04,
2 threads, 287 s; the same weights, bit for bit, from two trainings there), shipped with the package
(3.3 MB). Why: the recipe's weights depend on the CPU's float arithmetic (fp32 on CPUs without native
bf16 trains another draw, which gave 8 of 9 demo targets over five seeds where this one gave 9 of 9;
benchmarks/RESULTS.md), so a demo that trains its own warm-start makes a claim about whichever draw the
machine happens to produce. With the weights shipped, every machine starts the RL from the same model,
and `make demo` skips the 5-minute supervised phase. `python -m fastgrpo.demo --train-warmstart`
trains it again from the same recipe; SHIPPED_FILE records how it was made and its checksum."""
SHIPPED_FILE = "shipped.json"


def shipped_warmstart(s: WarmStartSettings) -> Path | None:
    """The shipped warm-start folder when it was trained with exactly `s` (the same cache key), else None."""
    info = SHIPPED_DIR / DONE_FILE
    if not info.is_file():
        return None
    return SHIPPED_DIR if json.loads(info.read_text())["key"] == s.key() else None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _copy_shipped(src: Path, dest: Path) -> None:
    """Copy the shipped folder to `dest`, checking the weights against the recorded checksum."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", SHIPPED_FILE))
    expected = json.loads((src / SHIPPED_FILE).read_text())["sha256"]
    for name, digest in expected.items():
        if file_sha256(dest / name) != digest:
            raise RuntimeError(f"the shipped warm-start's {src / name} does not match its checksum in "
                               f"{src / SHIPPED_FILE}; reinstall fastgrpo, or train it: --train-warmstart")


def warm_start(
    s: WarmStartSettings | None = None,
    cache_root: str | Path = "runs/demo/cache",
    on_step: Callable[[int, float], None] | None = None,
    force: bool = False,
    use_shipped: bool = True,
) -> Path:
    """Return the warm-started model folder for `s`: a finished cache, else a copy of the shipped model when
    it was trained with `s` (and `use_shipped`), else trained now.

    Training happens in a private temp folder that is renamed into place only when
    complete, so an interrupted run never leaves a half-written model that a later
    demo would pick up, and two concurrent demos do not corrupt each other.
    """
    s = s or WarmStartSettings()
    final = cache_dir(s, cache_root)
    if not force and (final / DONE_FILE).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_temps(final)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    shipped = shipped_warmstart(s) if use_shipped else None
    try:
        if shipped is not None:
            _copy_shipped(shipped, tmp)
        else:
            info = train_warmstart(s, tmp, on_step=on_step)
            (tmp / DONE_FILE).write_text(json.dumps(info, indent=2, default=str) + "\n")
        if final.exists():
            if not force and (final / DONE_FILE).exists():  # another process finished first: keep theirs
                shutil.rmtree(tmp, ignore_errors=True)
                return final
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_info(model_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(model_dir) / DONE_FILE).read_text())
