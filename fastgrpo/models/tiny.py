"""Tiny Qwen2-family models and a byte-level tokenizer, built locally with no downloads.

Why: the demo and every test need a real `transformers` model folder (config,
safetensors, tokenizer with a chat template) that loads with `from_pretrained`,
and nothing can come from a hub here. The tokenizer is byte-level with no
merges (one token per ASCII character) so any text round-trips, with the chat
and thinking markers as single tokens.

It is built exactly the way transformers' `Qwen2Tokenizer` rebuilds a tokenizer
(NFC, Qwen2 split regex, ByteLevel): `AutoTokenizer` on a saved qwen2 folder
returns a `Qwen2Tokenizer` whatever `tokenizer_class` says, and a tokenizer
with any other pipeline would silently drop spaces and newlines after reloading.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<unk>"]
MARKER_TOKENS = ["<think>", "</think>", "\\boxed{", "<answer>", "</answer>", "<image>"]

# ChatML, as Qwen2 uses; `add_generation_prompt` opens the assistant turn.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


# transformers' Qwen2Tokenizer pre-tokenizer regex (GPT-4 style), kept identical on purpose.
QWEN2_SPLIT_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)


def _byte_alphabet() -> list[str]:
    """GPT-2's byte -> printable unicode map, in byte order (token id = offset + byte value)."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]  # "!".."~", "¡".."¬", "®".."ÿ"
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def build_char_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level fast tokenizer without merges, ChatML specials and thinking markers.

    Every ASCII character is one token; any other text is encoded as its UTF-8 bytes.
    """
    vocab: dict[str, int] = {}
    for tok_str in SPECIAL_TOKENS + MARKER_TOKENS + _byte_alphabet():
        vocab.setdefault(tok_str, len(vocab))
    tok = Tokenizer(
        models.BPE(vocab=vocab, merges=[], unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                   fuse_unk=False, byte_fallback=False)
    )
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL_TOKENS)
    tok.add_tokens(MARKER_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        bos_token=None,
        padding_side="left",  # a constructor argument, so it is saved and survives from_pretrained
    )
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_qwen2_config(
    vocab_size: int,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 256,
    max_position_embeddings: int = 1024,
    eos_token_id: int | None = None,
    pad_token_id: int | None = None,
) -> Qwen2Config:
    return Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        bos_token_id=None,
        rope_theta=10000.0,
        use_sliding_window=False,
    )


def build_tiny_qwen2(out_dir: str | Path, seed: int = 0, **config_kwargs: int) -> Path:
    """Write a randomly initialised tiny Qwen2 + char tokenizer as a loadable HF folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_char_tokenizer()
    config = tiny_qwen2_config(
        vocab_size=len(tokenizer),
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config_kwargs,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=True
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
