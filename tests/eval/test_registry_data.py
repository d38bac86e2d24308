"""Registry facts (SPEC section 3) and loading every benchmark's fixture rows in its real schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fastgrpo.data.io import DataSourceError
from fastgrpo.eval import (
    BENCHMARKS,
    custom_benchmark,
    get_benchmark,
    load_items,
    parse_options,
    resolve_names,
)
from fastgrpo.eval.registry import UnknownBenchmarkError, check_benchmark_names

from ..data.hub_cache import write_hub_cache

SPEC_TABLE = {  # name: (source, split or data file, rows, modality)
    "geo3k": ("PAPO-Galaxy/PAPO_eval", "hiyouga_geometry3k", 601, "vision"),
    "mathvista": ("PAPO-Galaxy/PAPO_eval", "AI4Math_MathVista", 1000, "vision"),
    "wemath": ("PAPO-Galaxy/PAPO_eval", "We_Math", 1740, "vision"),
    "mmk12": ("PAPO-Galaxy/PAPO_eval", "PAPO_MMK12", 2000, "vision"),
    "mathverse": ("PAPO-Galaxy/PAPO_eval", "AI4Math_MathVerse", 2180, "vision"),
    "mathverse_v": ("PAPO-Galaxy/PAPO_eval", "AI4Math_MathVerse_vision_dependent", 1308, "vision"),
    "logicvista": ("PAPO-Galaxy/PAPO_eval", "lscpku_LogicVista", 447, "vision"),
    "clevr": ("PAPO-Galaxy/PAPO_eval", "BUAADreamer_clevr_count_70k", 200, "vision"),
    "mmmu_pro": ("PAPO-Galaxy/PAPO_eval", "MMMU_MMMU_Pro", 1730, "vision"),
    "dynamath": ("chamber111/VPPO-Eval", "data/vppo/DynaMath_DynaMath_Sample.json", 3666, "vision"),
    "mathvision": ("chamber111/VPPO-Eval", "data/vppo/MathLLMs_MathVision.json", 2907, "vision"),
    "aokvqa": ("HuggingFaceM4/A-OKVQA", "validation", 1145, "vision"),
    "gsm8k": ("openai/gsm8k", "test", 1319, "text"),
    "math500": ("HuggingFaceH4/MATH-500", "test", 500, "text"),
    "aime2024": ("HuggingFaceH4/aime_2024", "train", 30, "text"),
}


def test_registry_matches_spec_table() -> None:
    assert set(BENCHMARKS) == set(SPEC_TABLE)
    for name, (source, where, rows, modality) in SPEC_TABLE.items():
        spec = BENCHMARKS[name]
        assert (spec.source, spec.data_files or spec.split, spec.expected_rows, spec.modality) == (
            source,
            where,
            rows,
            modality,
        ), name
        if modality == "vision":  # the reference evaluation's sampling
            s = spec.sampling
            assert (s.n, s.temperature, s.top_p, s.top_k, s.max_new_tokens) == (8, 1.0, 1.0, 50, 2048)
        else:
            assert (spec.sampling.temperature, spec.sampling.top_p) == (0.6, 0.95)
    assert BENCHMARKS["gsm8k"].subset == "main"


def test_names_aliases_and_groups() -> None:
    assert get_benchmark("MATH-500").name == "math500"
    assert get_benchmark("AIME24").name == "aime2024"
    assert get_benchmark("A-OKVQA").name == "aokvqa"
    assert resolve_names(["gsm8k,math500", "gsm8k"]) == ["gsm8k", "math500"]
    assert resolve_names("text") == ["gsm8k", "math500", "aime2024"]
    assert len(resolve_names("vision")) == 12
    with pytest.raises(UnknownBenchmarkError, match="Did you mean 'mathvista'"):
        get_benchmark("mathvsta")


def test_config_benchmark_names_are_checked_by_the_registry() -> None:
    """eval.benchmarks is checked here (config does not import eval); the error names the entry."""
    assert check_benchmark_names(["text", "gsm8k,mathvista", "AIME24"]) == [
        "gsm8k", "math500", "aime2024", "mathvista"]
    with pytest.raises(UnknownBenchmarkError) as e:
        check_benchmark_names(["gsm8k", "math500,gsm9k"])
    assert str(e.value).startswith("eval.benchmarks[1]: unknown benchmark 'gsm9k'. Did you mean 'gsm8k'? Known: ")


# name: (questions, first prompt id, first gold, first options, images per row)
EXPECTED = {
    "geo3k": (3, "0", "\\frac{8}{3}", [], 1),
    "mathvista": (3, "0", "8/11", ["3/11", "8/11", "6/11", "3/5"], 1),
    "wemath": (2, "0", "B", ["4 cm", "5 cm", "6 cm", "7 cm", "No correct answer"], 1),
    "mmk12": (2, "0", "C", ["x^2", "2x", "x^3", "\\sqrt{x}"], 1),
    "mathverse": (2, "0", "B", ["30°", "40°", "50°", "60°"], 1),
    "logicvista": (2, "0", "C", ["1", "2", "3", "4"], 1),
    "clevr": (2, "0", "3", [], 1),
    "mmmu_pro": (2, "0", "F", [str(v) for v in range(12, 31, 2)], 1),
    "dynamath": (2, "0", "3.5", [], 1),
    "mathvision": (2, "0", "E", ["4", "5", "6", "7", "8"], 1),
    "aokvqa": (3, "q0", "B", ["cat", "dog", "bird", "fish"], 1),
    "gsm8k": (3, "0", "72", [], 0),
    "math500": (3, "test/prealgebra/1.json", "\\frac{1}{2}", [], 0),
    "aime2024": (2, "60", "33", [], 0),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_rows_map_to_items(name: str, data_dir: Path) -> None:
    count, pid, gold, options, n_images = EXPECTED[name]
    items = load_items(get_benchmark(name), data_dir)
    assert len(items) == count
    first = items[0]
    assert (first.prompt_id, first.answer, first.options) == (pid, gold, options)
    assert len(first.images) == n_images
    for im in first.images:  # paths resolved to real files, or decoded images
        assert Path(im).exists() if isinstance(im, str | Path) else im.size[0] > 0
    assert "<image>" in first.question or n_images == 0 or name == "aokvqa"


def test_gold_extraction_rules(data_dir: Path) -> None:
    gsm = load_items(get_benchmark("gsm8k"), data_dir)
    assert [it.answer for it in gsm] == ["72", "1234", "10"]  # after '#### ', thousands commas dropped
    aok = load_items(get_benchmark("aokvqa"), data_dir)
    assert [it.answer for it in aok] == ["B", "C", "A"]  # correct_choice_idx -> letter
    dyn = load_items(get_benchmark("dynamath"), data_dir)
    assert dyn[1].options == ["red", "blue", "green"] and dyn[1].answer == "A"


def test_limit_and_local_formats(data_dir: Path, tmp_path: Path) -> None:
    import datasets

    spec = get_benchmark("math500")
    assert [it.prompt_id for it in load_items(spec, data_dir, limit=2)] == [
        "test/prealgebra/1.json",
        "test/precalculus/807.json",
    ]
    rows = [json.loads(x) for x in (data_dir / "math500.jsonl").read_text().splitlines()]
    ds = datasets.Dataset.from_list(rows)
    for kind in ("parquet", "saved", "dict", "folder"):
        d = tmp_path / kind
        d.mkdir()
        if kind == "parquet":
            ds.to_parquet(str(d / "math500.parquet"))
        elif kind == "saved":
            ds.save_to_disk(str(d / "math500"))
        elif kind == "dict":
            datasets.DatasetDict({"test": ds}).save_to_disk(str(d / "math500"))
        else:  # a folder of split-named files, e.g. the hub repo's data/test-00000-of-00001.parquet
            (d / "math500" / "data").mkdir(parents=True)
            ds.to_parquet(str(d / "math500" / "data" / "test-00000-of-00001.parquet"))
        items = load_items(spec, d)
        assert [it.answer for it in items] == ["\\frac{1}{2}", "\\left( 3, \\frac{\\pi}{2} \\right)", "3"], (
            kind
        )


def test_papo_eval_repo_layout(tmp_path: Path) -> None:
    """PAPO-Eval's own layout: data/papo/<split>.json (a JSON list) with ./data/images/... paths."""
    from PIL import Image

    root = tmp_path / "PAPO-Eval"
    (root / "data" / "papo").mkdir(parents=True)
    (root / "data" / "images" / "AI4Math_MathVerse").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "data" / "images" / "AI4Math_MathVerse" / "7.png")
    rows = [
        {
            "messages": [
                {"role": "user", "content": "<image>Q?\nChoices:\nA:1\nB:2"},
                {"role": "assistant", "content": "A"},
            ],
            "images": ["./data/images/AI4Math_MathVerse/7.png"],
        }
    ]
    (root / "data" / "papo" / "AI4Math_MathVerse.json").write_text(json.dumps(rows))
    items = load_items(get_benchmark("mathverse"), root / "data")
    assert items[0].images[0] == root / "data" / "images" / "AI4Math_MathVerse" / "7.png"
    assert items[0].options == ["1", "2"]


def test_missing_dataset_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError) as e:
        load_items(get_benchmark("math500"), tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "math500.parquet") in msg and "HuggingFaceH4/MATH-500" in msg
    assert "--data-dir" in msg and "--data math500=PATH" in msg


def test_missing_image_and_column_errors(data_dir: Path) -> None:
    (data_dir / "images" / "hiyouga_geometry3k" / "0.png").unlink()
    with pytest.raises(DataSourceError, match=r"image .*0\.png.* not found"):
        load_items(get_benchmark("geo3k"), data_dir)
    spec = custom_benchmark(str(data_dir / "custom_k.jsonl"), prompt_key="question")
    with pytest.raises(DataSourceError, match="column 'question' not in the data"):
        load_items(spec, None)


def test_custom_benchmark_reads_a_source_like_train_files(data_dir: Path, tmp_path: Path) -> None:
    """A hub id `name@split` (offline cache) and a local `folder@split` load as `data.train_files` would."""
    import datasets

    rows = [json.loads(x) for x in (data_dir / "custom_k.jsonl").read_text().splitlines()]
    write_hub_cache(datasets.config.HF_DATASETS_CACHE, "someorg/heldout", "test", rows)
    hub = load_items(custom_benchmark("someorg/heldout@test", name="val", group_key="k"))
    assert [(it.question, it.answer, it.group) for it in hub][:2] == [("Compute 2 + 3.", "5", "1"),
                                                                      ("Compute 4 + 4.", "8", "1")]
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "test.jsonl").write_text((data_dir / "custom_k.jsonl").read_text())
    (tmp_path / "folder" / "train.jsonl").write_text(json.dumps({"problem": "other", "answer": "0"}) + "\n")
    local = load_items(custom_benchmark(f"{tmp_path / 'folder'}@test"))
    assert [it.answer for it in local] == [it.answer for it in hub]
    with pytest.raises(DataSourceError, match=r"val: data file or folder not found: .*nope\.jsonl"):
        load_items(custom_benchmark(str(tmp_path / "nope.jsonl"), name="val"))


def test_custom_image_key_may_be_optional(data_dir: Path) -> None:
    """Training's data.image_key rule: a table without the column is text-only, when the spec allows it."""
    path = str(data_dir / "custom_k.jsonl")
    items = load_items(custom_benchmark(path, image_key="images", images_optional=True))
    assert len(items) == 4 and all(it.images == [] for it in items)
    with pytest.raises(DataSourceError, match="column 'images' not in the data"):
        load_items(custom_benchmark(path, image_key="images"))


def test_custom_benchmark_groups(data_dir: Path) -> None:
    spec = custom_benchmark(str(data_dir / "custom_k.jsonl"), group_key="k")
    items = load_items(spec)
    assert [(it.prompt_id, it.answer, it.group) for it in items] == [
        ("0", "5", "1"),
        ("1", "8", "1"),
        ("2", "36", "2"),
        ("3", "50", "3"),
    ]
    assert spec.modality == "text" and "\\boxed{}" in spec.prompt


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("Q\nChoices:\nA:30°\nB:40°\nC:50°", ["30°", "40°", "50°"]),
        ("Q\nChoices:\n(A) 3/11\n(B) 8/11 You first think through it", ["3/11", "8/11"]),
        ("Q? A. 4 cm B. 5 cm C. No correct answer You first think", ["4 cm", "5 cm", "No correct answer"]),
        ("Q\nA) yes\nB) no", ["yes", "no"]),
        ("Point A. lies on line B. Find x.", []),  # letters not starting a consecutive option list
        ("Find the area of triangle ABC.", []),
    ],
)
def test_parse_options(text: str, options: list[str]) -> None:
    assert parse_options(text) == options
