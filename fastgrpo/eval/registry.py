"""The benchmark registry: where each benchmark's data lives, how its rows map to a question, and how to ask it.

Why one table: the CLI, the trainer's validation and the docs must agree on every
benchmark's dataset id, split, prompt and sampling defaults; a spec is plain data
so a run's results.json can record exactly what was asked.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal

Modality = Literal["vision", "text"]
QuestionType = Literal["multiple_choice", "free_form", "mixed"]

VISION_SYSTEM_PROMPT = "You are a helpful assistant."
VISION_FORMAT = (
    "You first think through the reasoning process as an internal monologue, enclosed within <think> </think> "
    "tags. Then, provide your final answer enclosed within \\boxed{}."
)
TEXT_FORMAT = "Please reason step by step, and put your final answer within \\boxed{}."
TEXT_TEMPLATE = "{question} " + TEXT_FORMAT

PAPO_EVAL = "PAPO-Galaxy/PAPO_eval"
VPPO_EVAL = "chamber111/VPPO-Eval"


@dataclass(frozen=True)
class FieldMap:
    """How a dataset row becomes a question: column names, or the ShareGPT `messages` layout."""

    format: Literal["columns", "sharegpt"] = "columns"
    question: str = "question"
    answer: str = "answer"
    images: str | None = None
    """Column with an image, a list of images, or (relative) image paths."""
    images_optional: bool = False
    """A table without the `images` column holds text-only questions (training's `data.image_key` rule)
    instead of being an error."""
    options: str | None = None
    """Column with the list of option texts (letters A, B, ... are implied by position)."""
    answer_index: str | None = None
    """Column with the index of the correct option (A-OKVQA's `correct_choice_idx`)."""
    id: str | None = None
    """Column with a stable question id; the row index is used when absent or not unique."""
    group: str | None = None
    """Column whose value splits the results into groups (e.g. the demo's difficulty `k`)."""
    messages: str = "messages"


@dataclass(frozen=True)
class SamplingDefaults:
    """Per-benchmark generation defaults (the reference evaluation's), overridden by flags or config."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 2048


VISION_SAMPLING = SamplingDefaults(n=8, temperature=1.0, top_p=1.0, top_k=50, max_new_tokens=2048)
TEXT_SAMPLING = SamplingDefaults(n=1, temperature=0.6, top_p=0.95, top_k=-1, max_new_tokens=16384)


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    """Registry key, used on the command line and in results (e.g. `mathvista`)."""
    title: str
    modality: Modality
    question_type: QuestionType
    source: str
    """Hub dataset id (or a local file/folder for custom benchmarks)."""
    split: str = "test"
    subset: str | None = None
    data_files: str | None = None
    """A file inside the hub repo, for repos that are folders of JSON files (VPPO-Eval)."""
    fields: FieldMap = field(default_factory=FieldMap)
    answer_format: Literal["plain", "gsm8k"] = "plain"
    """`gsm8k`: the gold number follows `#### ` at the end of the solution."""
    prompt: str = "{question}"
    """User turn; `{question}` and `{options}` are replaced (or a Jinja template using `content`)."""
    system_prompt: str | None = None
    scorer: str = "boxed"
    """How answers are read: the last `\\boxed{}`, graded by the chosen scorer (see docs/eval.md)."""
    sampling: SamplingDefaults = TEXT_SAMPLING
    expected_rows: int | None = None
    image_archive: str | None = None
    """Image zip at the hub repo root (PAPO_eval), fetched when loading from the hub."""
    image_glob: str | None = None
    """Hub repo folder holding the images (VPPO-Eval)."""
    local_names: tuple[str, ...] = ()
    """File or folder stems to look for under a data dir, besides `name`."""
    path: str | None = None
    """Explicit local file or folder; when set, nothing else is tried."""
    aliases: tuple[str, ...] = ()

    def with_overrides(self, **changes: object) -> BenchmarkSpec:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def source_label(self) -> str:
        if self.path:
            return self.path
        where = self.data_files or (f"{self.subset}@{self.split}" if self.subset else self.split)
        return f"{self.source} ({where})"


_SHAREGPT = FieldMap(format="sharegpt", images="images", id="id")


def _papo(
    name: str,
    title: str,
    split: str,
    rows: int,
    qtype: QuestionType,
    archive: str,
    aliases: tuple[str, ...] = (),
    local: tuple[str, ...] = (),
) -> BenchmarkSpec:
    """A PAPO_eval split; `local`: other file stems for it (PAPO-Eval's own `data/papo/<stem>.json` names)."""
    return BenchmarkSpec(
        name=name,
        title=title,
        modality="vision",
        question_type=qtype,
        source=PAPO_EVAL,
        split=split,
        fields=_SHAREGPT,
        system_prompt=VISION_SYSTEM_PROMPT,
        sampling=VISION_SAMPLING,
        expected_rows=rows,
        image_archive=archive,
        local_names=(split, *local),
        aliases=aliases,
    )


def _vppo(name: str, title: str, stem: str, rows: int, aliases: tuple[str, ...] = ()) -> BenchmarkSpec:
    return BenchmarkSpec(
        name=name,
        title=title,
        modality="vision",
        question_type="mixed",
        source=VPPO_EVAL,
        split="train",
        data_files=f"data/vppo/{stem}.json",
        fields=_SHAREGPT,
        system_prompt=VISION_SYSTEM_PROMPT,
        sampling=VISION_SAMPLING,
        expected_rows=rows,
        image_glob=f"data/images/{stem}/*",
        local_names=(stem,),
        aliases=aliases,
    )


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in [
        _papo(
            "mathverse",
            "MathVerse",
            "AI4Math_MathVerse",
            2180,
            "multiple_choice",
            "AI4Math_MathVerse_images.zip",
        ),
        _papo(
            "mathverse_v",
            "MathVerse (vision-dependent)",
            "AI4Math_MathVerse_vision_dependent",
            1308,
            "multiple_choice",
            "AI4Math_MathVerse_vision_dependent_images.zip",
            aliases=("mathverse_vision_dependent",),
            local=("AI4Math_MathVerse-vision-dependent",),
        ),
        _papo("mathvista", "MathVista", "AI4Math_MathVista", 1000, "mixed", "AI4Math_MathVista_images.zip"),
        _papo(
            "clevr",
            "CLEVR (counting)",
            "BUAADreamer_clevr_count_70k",
            200,
            "free_form",
            "BUAADreamer_clevr_count_70k_images.zip",
            aliases=("clevr_count",),
        ),
        _vppo("dynamath", "DynaMath", "DynaMath_DynaMath_Sample", 3666),
        _papo(
            "geo3k",
            "Geo3k",
            "hiyouga_geometry3k",
            601,
            "free_form",
            "hiyouga_geometry3k_images.zip",
            aliases=("geometry3k",),
        ),
        _papo(
            "logicvista",
            "LogicVista",
            "lscpku_LogicVista",
            447,
            "multiple_choice",
            "lscpku_LogicVista_images.zip",
        ),
        _vppo("mathvision", "MathVision", "MathLLMs_MathVision", 2907, aliases=("math_vision", "math-v")),
        _papo("mmmu_pro", "MMMU-Pro", "MMMU_MMMU_Pro", 1730, "multiple_choice", "MMMU_MMMU_Pro_images.zip"),
        _papo("mmk12", "MMK12", "PAPO_MMK12", 2000, "mixed", "PAPO_MMK12_test_images.zip"),
        _papo(
            "wemath",
            "WeMath",
            "We_Math",
            1740,
            "multiple_choice",
            "We-Math_We-Math_images.zip",
            aliases=("we_math",),
            local=("We-Math_We-Math",),
        ),
        BenchmarkSpec(
            name="aokvqa",
            title="A-OKVQA",
            modality="vision",
            question_type="multiple_choice",
            source="HuggingFaceM4/A-OKVQA",
            split="validation",
            fields=FieldMap(
                question="question",
                answer="",
                images="image",
                options="choices",
                answer_index="correct_choice_idx",
                id="question_id",
            ),
            prompt="<image>{question}\nChoices:\n{options}\n" + VISION_FORMAT,
            system_prompt=VISION_SYSTEM_PROMPT,
            sampling=VISION_SAMPLING,
            expected_rows=1145,
            aliases=("a-okvqa",),
        ),
        BenchmarkSpec(
            name="gsm8k",
            title="GSM8K",
            modality="text",
            question_type="free_form",
            source="openai/gsm8k",
            subset="main",
            split="test",
            fields=FieldMap(question="question", answer="answer"),
            answer_format="gsm8k",
            prompt=TEXT_TEMPLATE,
            expected_rows=1319,
        ),
        BenchmarkSpec(
            name="math500",
            title="MATH-500",
            modality="text",
            question_type="free_form",
            source="HuggingFaceH4/MATH-500",
            split="test",
            fields=FieldMap(question="problem", answer="answer", id="unique_id"),
            prompt=TEXT_TEMPLATE,
            expected_rows=500,
            aliases=("math-500", "math_500"),
        ),
        BenchmarkSpec(
            name="aime2024",
            title="AIME 2024",
            modality="text",
            question_type="free_form",
            source="HuggingFaceH4/aime_2024",
            split="train",
            fields=FieldMap(question="problem", answer="answer", id="id"),
            prompt=TEXT_TEMPLATE,
            sampling=dataclasses.replace(TEXT_SAMPLING, n=8),
            expected_rows=30,
            aliases=("aime24", "aime"),
        ),
    ]
}

GROUPS: dict[str, list[str]] = {
    "all": list(BENCHMARKS),
    "vision": [k for k, s in BENCHMARKS.items() if s.modality == "vision"],
    "text": [k for k, s in BENCHMARKS.items() if s.modality == "text"],
}


POOLS: dict[str, tuple[str, ...]] = {
    "vision_dependent": ("clevr", "mmmu_pro", "mathverse_v"),
}
"""Pooled accuracies reported when every member was evaluated: the mean over all their questions (not over
the benchmarks), as PAPO-Eval's `run_eval` computes its vision-dependent number from the concatenated files."""


class UnknownBenchmarkError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.lower())


_LOOKUP: dict[str, str] = {}
for _spec in BENCHMARKS.values():
    for _alias in (_spec.name, _spec.title, *_spec.aliases):
        _LOOKUP.setdefault(_norm(_alias), _spec.name)


def get_benchmark(name: str) -> BenchmarkSpec:
    """Look a benchmark up by key, title or alias (case, `-` and `_` ignored)."""
    key = _LOOKUP.get(_norm(name))
    if key is None:
        import difflib

        close = difflib.get_close_matches(_norm(name), list(_LOOKUP), n=1, cutoff=0.6)
        hint = f" Did you mean {_LOOKUP[close[0]]!r}?" if close else ""
        raise UnknownBenchmarkError(
            f"unknown benchmark {name!r}.{hint} Known: {', '.join(BENCHMARKS)} "
            "(or all, vision, text, custom); `fastgrpo eval --list` shows them."
        )
    return BENCHMARKS[key]


def resolve_names(names: list[str] | str) -> list[str]:
    """Expand a comma list / groups (`all`, `vision`, `text`) into registry keys, keeping order, no repeats."""
    if isinstance(names, str):
        names = [names]
    out: list[str] = []
    for chunk in names:
        for raw in str(chunk).split(","):
            raw = raw.strip()
            if not raw:
                continue
            keys = GROUPS.get(raw.lower()) or (
                ["custom"] if raw.lower() == "custom" else [get_benchmark(raw).name]
            )
            out.extend(k for k in keys if k not in out)
    return out


def check_benchmark_names(names: list[str], key: str = "eval.benchmarks") -> list[str]:
    """`resolve_names`, with a failure naming the config entry (`eval.benchmarks[1]: unknown benchmark ...`).

    Why here and not in `fastgrpo.config`: the names are the registry's; config stays below eval.
    """
    for i, name in enumerate(names):
        try:
            resolve_names(name)
        except UnknownBenchmarkError as e:
            raise UnknownBenchmarkError(f"{key}[{i}]: {e}") from None
    return resolve_names(names)


def custom_benchmark(
    path: str,
    *,
    name: str = "custom",
    prompt_key: str = "problem",
    answer_key: str = "answer",
    group_key: str | None = None,
    image_key: str | None = None,
    images_optional: bool = False,
    options_key: str | None = None,
    id_key: str | None = None,
    split: str = "train",
    prompt: str | None = None,
    system_prompt: str | None = None,
    question_type: QuestionType = "free_form",
    sampling: SamplingDefaults | None = None,
) -> BenchmarkSpec:
    """A benchmark from a table (e.g. the demo's held-out split with `problem`, `answer`, `k`).

    `path` is read like `data.train_files`: a local file or folder, or a hub id `name[:subset][@split]`.
    `prompt` is a template with `{question}` (or Jinja with `content`, as `data.format_prompt`);
    the default is the text benchmarks' "reason step by step ... \\boxed{}" instruction.
    `images_optional`: a table without `image_key` gives text-only questions instead of an error.
    """
    vision = image_key is not None
    return BenchmarkSpec(
        name=name,
        title=name,
        modality="vision" if vision else "text",
        question_type=question_type,
        source=path,
        split=split,
        path=path,
        fields=FieldMap(
            question=prompt_key,
            answer=answer_key,
            images=image_key,
            images_optional=images_optional,
            options=options_key,
            id=id_key,
            group=group_key,
        ),
        prompt=prompt or (("<image>{question}\n" + VISION_FORMAT) if vision else TEXT_TEMPLATE),
        system_prompt=system_prompt
        if system_prompt is not None
        else (VISION_SYSTEM_PROMPT if vision else None),
        sampling=sampling or (VISION_SAMPLING if vision else TEXT_SAMPLING),
    )
