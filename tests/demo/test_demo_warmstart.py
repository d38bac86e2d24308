"""Warm-start: the trainer's exact prompt, a loadable model folder, a cache reused by key."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from transformers import AutoTokenizer, Qwen2ForCausalLM

from fastgrpo.demo import task
from fastgrpo.demo.warmstart import (
    DONE_FILE,
    SHIPPED_DIR,
    SHIPPED_FILE,
    WarmStartSettings,
    _copy_shipped,
    _iter_batches,
    cpu_has_native_bf16,
    encode_example,
    file_sha256,
    load_info,
    prompt_text,
    response_loss,
    shipped_warmstart,
    warm_start,
)
from fastgrpo.models.tiny import build_char_tokenizer, build_tiny_qwen2

TINY = WarmStartSettings(
    hidden_size=16,
    num_layers=1,
    num_heads=2,
    num_kv_heads=1,
    intermediate_size=32,
    steps=3,
    batch_size=4,
    warmup_steps=1,
)


def test_prompt_is_chat_template_of_formatted_problem() -> None:
    tok = build_char_tokenizer()
    text = prompt_text(tok, "3+5+2", task.FORMAT_PROMPT)
    assert text == "<|im_start|>user\n3+5+2=<|im_end|>\n<|im_start|>assistant\n"
    ids, plen = encode_example(tok, "3+5", task.fast_solution(task.Problem((3, 5))), task.FORMAT_PROMPT)
    assert tok.decode(ids[:plen]) == prompt_text(tok, "3+5", task.FORMAT_PROMPT)
    assert ids[-1] == tok.eos_token_id
    assert tok.decode(ids[plen:-1]) == "<think></think>\\boxed{8}"


def test_cache_key_tracks_settings() -> None:
    assert TINY.key() == WarmStartSettings(**{**TINY.__dict__}).key()
    assert TINY.key() != WarmStartSettings(**{**TINY.__dict__, "steps": 4}).key()
    assert TINY.key() != WarmStartSettings(**{**TINY.__dict__, "slow_prob": (0.2, 0.8)}).key()


def test_compute_dtype_names_its_own_cache_and_fp32_keeps_the_old_name() -> None:
    bf16 = WarmStartSettings(**{**TINY.__dict__, "compute_dtype": "bfloat16"})
    assert bf16.key() != TINY.key()
    # An fp32 warm-start keeps the cache name it had before compute_dtype existed (no 6-minute retrain for
    # existing users): the pin is the carry-style fp32 cache of 2026-12-03. A deliberate change to the
    # warm-start (WARMSTART_VERSION, tokenizer) updates it.
    carry = WarmStartSettings(data_seed=0, n_test_per_k=task.N_TEST_PER_K, slow_style="carry")
    assert carry.key() == "e1a60f3a64fdf683"
    with pytest.raises(ValueError, match="compute_dtype"):
        WarmStartSettings(compute_dtype="float16")


@pytest.mark.parametrize(
    ("cpuinfo", "native"),
    [
        ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse avx2 amx_bf16 amx_tile\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512bw\n", False),
        ("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd crc32\n", False),
    ],
)
def test_native_bf16_is_read_from_cpu_flags(tmp_path, cpuinfo: str, native: bool) -> None:
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert cpu_has_native_bf16(tmp_path / "cpuinfo") is native
    assert cpu_has_native_bf16(tmp_path / "missing") is False  # no /proc (macOS, Windows): fp32


def test_bf16_warm_start_trains_other_fp32_weights_deterministically(tmp_path) -> None:
    """bf16 autocast is a compute precision only: the saved weights stay fp32, differ from fp32 training's, and
    are the same on a rerun (so its cache, like fp32's, holds what any run of these settings gives)."""
    torch.set_num_threads(1)
    bf16 = WarmStartSettings(**{**TINY.__dict__, "compute_dtype": "bfloat16"})
    a = Qwen2ForCausalLM.from_pretrained(warm_start(bf16, tmp_path / "a"))
    b = Qwen2ForCausalLM.from_pretrained(warm_start(bf16, tmp_path / "b"))
    fp32 = Qwen2ForCausalLM.from_pretrained(warm_start(TINY, tmp_path / "c"))
    assert load_info(tmp_path / "a" / f"warmstart-{bf16.key()}")["settings"]["compute_dtype"] == "bfloat16"
    differ = False
    for (name, pa), (_, pb), (_, pc) in zip(
        a.named_parameters(), b.named_parameters(), fp32.named_parameters(), strict=True
    ):
        assert pa.dtype == torch.float32 and torch.equal(pa, pb), name
        differ = differ or not torch.equal(pa, pc)
    assert differ


def test_warm_start_writes_loadable_model_and_reuses_cache(tmp_path) -> None:
    torch.set_num_threads(1)
    calls: list[int] = []
    dead = tmp_path / f".tmp-warmstart-{TINY.key()}-999999999"  # left by a killed run
    dead.mkdir()
    folder = warm_start(TINY, tmp_path, on_step=lambda i, loss: calls.append(i))
    assert calls == [0, 1, 2]
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temp folder left behind
    info = load_info(folder)
    assert info["key"] == TINY.key() and info["settings"]["steps"] == 3
    model = Qwen2ForCausalLM.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    # The saved tokenizer reloads (AutoTokenizer -> Qwen2Tokenizer) to the very same ids, newlines included.
    text = prompt_text(tok, "1+2", task.FORMAT_PROMPT)
    assert (
        tok(text, add_special_tokens=False)["input_ids"]
        == build_char_tokenizer()(text, add_special_tokens=False)["input_ids"]
    )
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**ids, max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] <= ids["input_ids"].shape[1] + 3
    mtime = (folder / "model.safetensors").stat().st_mtime_ns

    again = warm_start(TINY, tmp_path, on_step=lambda i, loss: calls.append(i))
    assert again == folder and calls == [0, 1, 2]  # cached: no training steps ran
    assert (folder / "model.safetensors").stat().st_mtime_ns == mtime


def test_warm_start_is_deterministic(tmp_path) -> None:
    torch.set_num_threads(1)
    a = Qwen2ForCausalLM.from_pretrained(warm_start(TINY, tmp_path / "a"))
    b = Qwen2ForCausalLM.from_pretrained(warm_start(TINY, tmp_path / "b"))
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), na


def test_packed_loss_equals_padded_loss_and_batches_use_the_trainer_prompt(tmp_path) -> None:
    """Packing is a speed-up only: same loss as one padded row per example, prompts as the trainer builds them."""
    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    model = Qwen2ForCausalLM.from_pretrained(
        build_tiny_qwen2(
            tmp_path / "m", hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=32
        )
    )
    settings = WarmStartSettings(batch_size=12)
    batch, n_slow = next(_iter_batches(settings, tok, task.make_test_split(0, 5)))
    assert len(batch) == 12 and 0 < n_slow < 12
    stream = task.iter_sft_examples(settings.seed, settings.slow_prob, exclude=task.make_test_split(0, 5))
    expected = [
        encode_example(tok, p.text, r, settings.format_prompt)
        for p, r, _ in (next(stream) for _ in range(12))
    ]
    assert batch == expected
    for average in ("token", "example"):
        padded = response_loss(model, batch, tok.pad_token_id, pack_len=0, average=average)
        packed = response_loss(model, batch, tok.pad_token_id, pack_len=128, average=average)
        assert torch.allclose(padded, packed, atol=1e-5), average


def test_example_average_weighs_each_example_once(tmp_path) -> None:
    """The "example" average is the mean of per-example token means, so a 6-token fast answer counts as much as a
    60-token slow one; "token": one mean over every response token of the batch."""
    torch.set_num_threads(1)
    tok = build_char_tokenizer()
    model = Qwen2ForCausalLM.from_pretrained(
        build_tiny_qwen2(
            tmp_path / "m", hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=32
        )
    )
    fast = task.Problem((3, 5))
    slow = task.Problem((9, 8, 7, 6, 5, 4))
    batch = [
        encode_example(tok, fast.text, task.fast_solution(fast), task.FORMAT_PROMPT),
        encode_example(tok, slow.text, task.slow_solution(slow), task.FORMAT_PROMPT),
    ]
    each = [response_loss(model, [ex], tok.pad_token_id) for ex in batch]  # one example: both averages agree
    n = torch.tensor([len(ids) - plen for ids, plen in batch], dtype=torch.float)
    assert n[1] > 5 * n[0]
    by_example = response_loss(model, batch, tok.pad_token_id, pack_len=256, average="example")
    by_token = response_loss(model, batch, tok.pad_token_id, pack_len=256, average="token")
    assert torch.allclose(by_example, (each[0] + each[1]) / 2, atol=1e-5)
    assert torch.allclose(by_token, (each[0] * n[0] + each[1] * n[1]) / n.sum(), atol=1e-5)
    with pytest.raises(ValueError, match="loss_average"):
        response_loss(model, batch, tok.pad_token_id, average="sequence")
    with pytest.raises(ValueError, match="loss_average"):
        WarmStartSettings(loss_average="sequence")


def test_the_shipped_warm_start_is_the_default_recipes_model() -> None:
    """Changing the recipe (settings, training code version, tokenizer, held-out split) without training and
    shipping its model again fails here, not as a silent 5-minute training in every `make demo`."""
    default = WarmStartSettings(compute_dtype="bfloat16")
    info = load_info(SHIPPED_DIR)
    assert info["key"] == default.key(), (
        "fastgrpo/demo/base was trained by another recipe than WarmStartSettings' defaults; retrain it with "
        "`python -m fastgrpo.demo --train-warmstart` on a CPU with native bf16 and copy its cache folder there "
        "(then rewrite shipped.json's checksums)")
    assert info["settings"] == json.loads(json.dumps(dataclasses.asdict(default)))
    recorded = json.loads((SHIPPED_DIR / SHIPPED_FILE).read_text())["sha256"]
    on_disk = {f.name for f in SHIPPED_DIR.iterdir() if f.is_file() and f.name != SHIPPED_FILE}
    assert set(recorded) == on_disk and all(file_sha256(SHIPPED_DIR / n) == d for n, d in recorded.items())
    assert shipped_warmstart(default) == SHIPPED_DIR
    assert shipped_warmstart(WarmStartSettings()) is None  # fp32 is another draw, trained when asked for


def test_default_warm_start_copies_the_shipped_model_without_training(tmp_path, monkeypatch) -> None:
    import fastgrpo.demo.warmstart as ws

    def no_training(*a, **k):
        raise AssertionError("trained although the shipped model matches")

    monkeypatch.setattr(ws, "train_warmstart", no_training)
    folder = warm_start(WarmStartSettings(compute_dtype="bfloat16"), tmp_path / "cache")
    assert (folder / DONE_FILE).exists() and not (folder / SHIPPED_FILE).exists()
    assert file_sha256(folder / "model.safetensors") == file_sha256(SHIPPED_DIR / "model.safetensors")
    model = Qwen2ForCausalLM.from_pretrained(folder)
    assert sum(p.numel() for p in model.parameters()) == load_info(folder)["parameters"]
    tok, ref = AutoTokenizer.from_pretrained(folder), build_char_tokenizer()
    text = prompt_text(ref, "12+34+5", task.FORMAT_PROMPT)
    assert tok(text)["input_ids"] == ref(text)["input_ids"] and tok.chat_template == ref.chat_template


def test_a_damaged_shipped_model_is_refused(tmp_path) -> None:
    src = tmp_path / "base"
    shutil.copytree(SHIPPED_DIR, src, ignore=shutil.ignore_patterns("__pycache__"))
    with open(src / "model.safetensors", "r+b") as f:
        f.seek(4096)
        f.write(b"\x00\x01")
    with pytest.raises(RuntimeError, match="checksum"):
        _copy_shipped(src, tmp_path / "copy")
