"""Training prompts: load a table, render the format prompt and chat template, tokenize, filter.

Also the sampler whose position is checkpointed, so a resumed run sees exactly
the prompts an uninterrupted run would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import torch

from fastgrpo.config import DataConfig
from fastgrpo.data.io import BadRows, DataSourceError, load_table
from fastgrpo.log import get_logger

log = get_logger(__name__)


@dataclass
class PromptExample:
    uid: int
    """Row index in the source table: stable across runs, ranks and resumes."""
    prompt_ids: list[int]
    prompt_text: str
    answer: str
    images: list[Any] = field(default_factory=list)
    extras: dict[str, Any] = field(default_factory=dict)
    """Other columns (e.g. multiple-choice options, a difficulty label) passed to the reward."""
    complexity: float = 0.0
    """Normalized to [0, 1] over the dataset (SPEC section 1, step 3)."""


def load_format_template(format_prompt: str | None) -> jinja2.Template | None:
    """`format_prompt` is a path to a Jinja file or inline Jinja text using `content`."""
    if not format_prompt:
        return None
    text = format_prompt
    path = Path(format_prompt)
    if len(format_prompt) < 512 and "{{" not in format_prompt and path.suffix in (".jinja", ".j2", ".txt"):
        if not path.exists():
            raise DataSourceError(f"data.format_prompt: template file not found: {path}")
        text = path.read_text()
    return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text)


def render_prompt(tokenizer: Any, content: str, template: jinja2.Template | None, system_prompt: str | None) -> str:
    user = template.render(content=content) if template is not None else content
    messages = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": user})
    if getattr(tokenizer, "chat_template", None):
        from fastgrpo.data.chat_template import render_chat

        return render_chat(tokenizer, messages)
    return (system_prompt + "\n" if system_prompt else "") + user


def row_problem(row: dict[str, Any], cfg: DataConfig) -> str | None:
    """Why a row cannot be a training prompt (None: it can); shared by the text and vision loaders."""
    prompt, answer = row.get(cfg.prompt_key), row.get(cfg.answer_key)
    if prompt is None or not str(prompt).strip():
        return f"the prompt (data.prompt_key={cfg.prompt_key!r}) is {'null' if prompt is None else 'empty'}"
    if answer is None:
        return f"the answer (data.answer_key={cfg.answer_key!r}) is null"
    return None


def load_prompt_table(source: str, cfg: DataConfig, bad_rows: BadRows) -> Any:
    """The training table with its prompt and answer columns checked (shared by the text and vision loaders)."""
    table = load_table(source, bad_rows=bad_rows)
    missing = [k for k in (cfg.prompt_key, cfg.answer_key) if k not in table.column_names]
    if missing:
        raise DataSourceError(
            f"{source}: missing column(s) {missing}; available: {table.column_names}. "
            f"Set data.prompt_key / data.answer_key to the right names."
        )
    return table


def load_prompts(source: str, cfg: DataConfig, tokenizer: Any, bad_rows: BadRows | None = None) -> list[PromptExample]:
    """Read and tokenize every row; overlong prompts are dropped (and counted) when configured.

    A row without a prompt or an answer (or a broken JSON line) is handled per data.on_bad_row;
    pass `bad_rows` to read the count of skipped rows afterwards.
    """
    bad_rows = bad_rows if bad_rows is not None else BadRows(cfg.on_bad_row)
    table = load_prompt_table(source, cfg, bad_rows)
    template = load_format_template(cfg.format_prompt)
    examples: list[PromptExample] = []
    dropped = 0
    skip = {cfg.prompt_key, cfg.answer_key, cfg.image_key}
    for uid, row in enumerate(table):
        problem = row_problem(row, cfg)
        if problem is not None:
            bad_rows.bad(f"{source} row {uid} (counting from 0)", problem)
            continue
        text = render_prompt(tokenizer, str(row[cfg.prompt_key]), template, cfg.system_prompt)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) > cfg.max_prompt_length:
            if cfg.filter_overlong_prompts:
                dropped += 1
                continue
            ids = ids[-cfg.max_prompt_length :]
        images = row.get(cfg.image_key) or []
        if not isinstance(images, list):
            images = [images]
        extras = {k: v for k, v in row.items() if k not in skip}
        examples.append(PromptExample(uid=uid, prompt_ids=ids, prompt_text=text, answer=str(row[cfg.answer_key]),
                                      images=images, extras=extras))
    bad_rows.report(source)
    if dropped:
        log.warning("dropped %d of %d prompts longer than data.max_prompt_length=%d", dropped, len(table),
                    cfg.max_prompt_length)
    if not examples:
        raise DataSourceError(f"{source}: no usable prompts (all {len(table)} rows empty or overlong)")
    _set_text_complexity(examples)
    return examples


def _set_text_complexity(examples: list[PromptExample]) -> None:
    """Prompt token count, min-max normalized over the dataset (our documented default)."""
    from fastgrpo.algo.difficulty import min_max_normalize, text_complexity

    raw = text_complexity([len(e.prompt_ids) for e in examples])
    norm = min_max_normalize(raw)
    for e, c in zip(examples, norm.tolist(), strict=True):
        e.complexity = float(c)


class PromptSampler:
    """Deterministic epoch-wise shuffling; `state_dict` is (epoch, position), nothing else."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        self.size, self.seed, self.shuffle = size, seed, shuffle
        self.epoch, self.position = 0, 0
        self._order = self._make_order()

    def _make_order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.size, generator=g).tolist()

    def next(self, count: int) -> list[int]:
        out: list[int] = []
        while len(out) < count:
            if self.position >= self.size:
                self.epoch += 1
                self.position = 0
                self._order = self._make_order()
            take = min(count - len(out), self.size - self.position)
            out.extend(self._order[self.position : self.position + take])
            self.position += take
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._order = self._make_order()
