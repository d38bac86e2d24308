"""`evaluate()` with a scripted engine: avg@n, lengths, groups, resume, re-scoring, reports, plot, vision path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fastgrpo.config.schema import EvalConfig
from fastgrpo.eval import (
    EngineUnavailableError,
    EvalParams,
    EvalSetupError,
    compare,
    custom_benchmark,
    evaluate,
    flat_metrics,
    get_benchmark,
)
from fastgrpo.eval.engine import LoadedModel, make_engine, resolve_engine_kind
from fastgrpo.rollout.base import PromptInput
from tests.eval.conftest import TRUNCATE

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# custom_k.jsonl: (question, answer, k) = (2+3, 5, 1), (4+4, 8, 1), (12*3, 36, 2), (7*8-6, 50, 3)
SCRIPT = {
    "Compute 2 + 3.": [
        "<think>a</think> \\boxed{5}",
        "<think>b</think> \\boxed{5}",
        "\\boxed{6}",
        "\\boxed{4}",
    ],
    "Compute 4 + 4.": ["\\boxed{8}"] * 4,
    "Compute 12 * 3.": ["\\boxed{35}", "\\boxed{37}", "no idea", "\\boxed{3}"],
    "Compute 7 * 8 - 6.": ["\\boxed{50}", "long" + TRUNCATE, "longer thinking" + TRUNCATE, "x" + TRUNCATE],
}


def script(prompt: str, j: int) -> str:
    for q, answers in SCRIPT.items():
        if q in prompt:
            return answers[j % len(answers)]
    raise AssertionError(f"unexpected prompt {prompt!r}")


def _custom(data_dir: Path) -> Any:
    return custom_benchmark(
        str(data_dir / "custom_k.jsonl"), prompt_key="problem", answer_key="answer", group_key="k"
    )


def _run(tokenizer: Any, engine: Any, spec: Any, out: Path | None, n: int = 4, **kw: Any) -> dict[str, Any]:
    kw.setdefault("num_workers", 0)
    kw.setdefault("progress", False)
    return evaluate(
        None,
        tokenizer,
        [spec],
        EvalParams(n=n, max_new_tokens=64),
        out,
        engine=engine,
        model_name=kw.pop("model_name", "scripted"),
        **kw,
    )


def test_avg_at_n_lengths_groups_and_reports(
    tokenizer: Any, scripted: Any, data_dir: Path, tmp_path: Path
) -> None:
    engine = scripted(script)
    out = tmp_path / "out"
    res = _run(tokenizer, engine, _custom(data_dir), out)
    b = res["benchmarks"]["custom"]
    # per question 2/4, 4/4, 0/4, 1/4 -> avg@4 over questions
    assert b["accuracy"] == pytest.approx(100 * (0.5 + 1 + 0 + 0.25) / 4)
    assert (b["questions"], b["samples"], b["sampling"]["n"]) == (4, 16, 4)
    assert b["groups"]["1"]["accuracy"] == pytest.approx(75.0)
    assert b["groups"]["2"]["accuracy"] == 0.0 and b["groups"]["3"]["accuracy"] == 25.0
    assert b["truncated_pct"] == pytest.approx(100 * 3 / 16)

    # length = response tokens (+ EOS when the model stopped), never the prompt or padding
    recs = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(recs) == 16
    for r in recs:
        stopped = r["finish"] == "stop"
        assert r["tokens"] == len(tokenizer(r["response"], add_special_tokens=False)["input_ids"]) + int(
            stopped
        )
        assert set(r) >= {
            "benchmark",
            "prompt_id",
            "sample_idx",
            "response",
            "extracted",
            "correct",
            "tokens",
        }
    trunc = [r for r in recs if r["finish"] == "length"]
    assert {r["response"] for r in trunc} == {"long", "longer thinking", "x"}
    expected_mean = sum(r["tokens"] for r in recs) / 16
    assert b["mean_tokens"] == pytest.approx(expected_mean, abs=0.01)
    k1 = [r for r in recs if r["group"] == "1"]
    assert b["groups"]["1"]["mean_tokens"] == pytest.approx(sum(r["tokens"] for r in k1) / len(k1), abs=0.01)
    assert next(r for r in recs if r["prompt_id"] == "0" and r["sample_idx"] == 0)["extracted"] == "5"

    # the prompt went through the chat template with the text instruction
    assert engine.prompts[0].startswith("<|im_start|>user\nCompute 2 + 3. Please reason step by step")
    assert engine.prompts[0].endswith("<|im_start|>assistant\n")

    # reports: results.json (atomic, same as returned), results.md, plot + sidecar matching results
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["benchmarks"] == res["benchmarks"] and on_disk["average"]["accuracy"] == b["accuracy"]
    assert not list(out.glob(".*tmp*"))
    md = (out / "results.md").read_text()
    assert "| custom | 43.75 |" in md and "## custom by `k`" in md
    assert (out / "accuracy_vs_length.png").read_bytes()[:8] == PNG_MAGIC
    side = json.loads((out / "accuracy_vs_length.json").read_text())
    assert side["points"] == [
        {
            "model": "scripted",
            "benchmark": "custom",
            "title": "custom",
            "mean_tokens": b["mean_tokens"],
            "accuracy": b["accuracy"],
        }
    ]
    from PIL import Image

    with Image.open(out / "accuracy_vs_length.png") as im:
        assert im.format == "PNG" and im.size[0] > 100

    m = flat_metrics(res)
    assert m["val/custom/accuracy"] == b["accuracy"] and m["val/custom/k=1/accuracy"] == 75.0
    assert "val/average/mean_tokens" in m


def test_resume_skips_prepopulated_samples(
    tokenizer: Any, scripted: Any, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pre = [
        {
            "benchmark": "custom",
            "prompt_id": str(q),
            "sample_idx": i,
            "response": "PRE \\boxed{5}",
            "extracted": "5",
            "correct": q == 0,
            "tokens": 7,
            "finish": "stop",
            "scorer": "mathverify",
        }
        for q in range(4)
        for i in range(2)
    ]
    (out / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pre))
    engine = scripted(script)
    res = _run(tokenizer, engine, _custom(data_dir), out, n=3)
    assert engine.generated == 4  # only sample idx 2 of each question
    assert all(p.n == 1 for p in engine.params)
    recs = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(recs) == 12 and sum(r["response"].startswith("PRE") for r in recs) == 8
    assert {r["sample_idx"] for r in recs if not r["response"].startswith("PRE")} == {2}
    assert res["benchmarks"]["custom"]["samples"] == 12


def test_resume_after_kill(tokenizer: Any, scripted: Any, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = _custom(data_dir)
    killed = scripted(script, fail_after_calls=1)
    with pytest.raises(KeyboardInterrupt):
        _run(tokenizer, killed, spec, out, n=2, batch_size=2)
    lines = (out / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 4 and not (out / "results.json").exists()  # first batch (2 questions x 2) durable
    with open(out / "generations.jsonl", "a") as fh:  # a line cut short by the kill
        fh.write('{"benchmark": "custom", "prompt_id": "2", "sam')
    engine = scripted(script)
    res = _run(tokenizer, engine, spec, out, n=2, batch_size=2)
    assert engine.generated == 4  # questions 2 and 3 only
    assert res["benchmarks"]["custom"]["samples"] == 8
    assert len((out / "generations.jsonl").read_text().splitlines()) == 8


def test_scorer_change_rescores_without_generating(
    tokenizer: Any, scripted: Any, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    spec = _custom(data_dir)
    plain = scripted(lambda p, j: "<think>t</think> The answer is 5" if "2 + 3" in p else "\\boxed{0}")
    first = _run(tokenizer, plain, spec, out, n=1)
    assert first["benchmarks"]["custom"]["accuracy"] == 25.0  # math-verify reads the unboxed "5"
    never = scripted(script, fail_after_calls=0)
    second = _run(tokenizer, never, spec, out, n=1, scorer="reference")
    assert never.generated == 0
    assert second["benchmarks"]["custom"]["accuracy"] == 0.0  # the reference rule needs a box
    assert {json.loads(x)["scorer"] for x in (out / "generations.jsonl").read_text().splitlines()} == {
        "reference"
    }


def test_sampling_defaults_and_overrides(tokenizer: Any, scripted: Any, data_dir: Path) -> None:
    sp = EvalParams().resolve(get_benchmark("mathvista"))
    assert (sp.n, sp.temperature, sp.top_p, sp.top_k, sp.max_new_tokens) == (8, 1.0, 1.0, 50, 2048)
    sp = EvalParams().resolve(get_benchmark("gsm8k"))
    assert (sp.n, sp.temperature, sp.top_p) == (1, 0.6, 0.95)
    from_yaml = EvalParams.from_eval_config(EvalConfig(n=2, temperature=0.3), explicit=["n"])
    assert (from_yaml.n, from_yaml.temperature) == (2, None)
    trainer = EvalParams.from_eval_config(EvalConfig(n=2, temperature=0.3))
    assert (trainer.n, trainer.temperature, trainer.top_k) == (2, 0.3, 50)
    engine = scripted(lambda p, j: "\\boxed{72}")
    res = evaluate(
        None,
        tokenizer,
        ["gsm8k"],
        EvalParams(temperature=0.2, seed=7),
        None,
        engine=engine,
        data_dir=data_dir,
        limit=2,
        num_workers=0,
        progress=False,
    )
    assert (
        engine.params[0].temperature == 0.2
        and engine.params[0].top_p == 0.95
        and engine.params[0].seed is not None
    )
    assert res["benchmarks"]["gsm8k"]["accuracy"] == 50.0 and res["limit"] == 2


def test_vision_needs_a_processor(tokenizer: Any, scripted: Any, data_dir: Path) -> None:
    with pytest.raises(EvalSetupError, match="no vision processor"):
        evaluate(
            None,
            tokenizer,
            ["mathvista"],
            None,
            None,
            engine=scripted(script),
            data_dir=data_dir,
            num_workers=0,
            progress=False,
        )


def test_vision_prompts_reach_the_engine_with_images(
    tokenizer: Any, scripted: Any, data_dir: Path, tmp_path: Path
) -> None:
    seen: list[tuple[list[dict[str, Any]], list[Any]]] = []

    def builder(messages: list[dict[str, Any]], images: list[Any]) -> PromptInput:
        seen.append((messages, images))
        ids = tokenizer(messages[-1]["content"], add_special_tokens=False)["input_ids"]
        return PromptInput(prompt_ids=ids, images=images)

    engine = scripted(lambda p, j: "<think>x</think> \\boxed{B}" if "angle 2" in p else "\\boxed{D}")
    res = evaluate(
        None,
        tokenizer,
        ["mathverse"],
        EvalParams(n=2),
        tmp_path / "v",
        engine=engine,
        data_dir=data_dir,
        vision_builder=builder,
        num_workers=0,
        progress=False,
    )
    assert res["benchmarks"]["mathverse"]["accuracy"] == 50.0
    messages, images = seen[0]
    assert messages[0] == {"role": "system", "content": "You are a helpful assistant."}
    assert messages[1]["content"].startswith("<image>") and len(images) == 1
    assert Path(images[0]).name == "0.png" and len(engine.images[0]) == 1


def test_engine_choice(tokenizer: Any) -> None:
    assert resolve_engine_kind("auto") == "hf"  # no vLLM + CUDA on this machine
    with pytest.raises(EngineUnavailableError, match="needs the 'vllm' package"):
        make_engine("vllm", LoadedModel(object(), tokenizer, None, "m"))
    with pytest.raises(EngineUnavailableError, match="unknown engine"):
        resolve_engine_kind("tgi")


def test_compare_plots_every_model(tmp_path: Path) -> None:
    from fastgrpo.eval.report import write_reports

    def results(model: str, acc: float, tok: float) -> dict[str, Any]:
        bench = {
            "title": "GSM8K",
            "accuracy": acc,
            "mean_tokens": tok,
            "questions": 2,
            "samples": 2,
            "sampling": {"n": 1},
        }
        return {
            "model": model,
            "scorer": "mathverify",
            "benchmarks": {"gsm8k": bench, "math500": {**bench, "title": "MATH-500", "accuracy": acc / 2}},
            "average": {"accuracy": acc * 0.75, "mean_tokens": tok},
        }

    write_reports(results("fast", 80.0, 300.0), tmp_path / "a", plot=False)
    write_reports(results("grpo", 78.0, 900.0), tmp_path / "b", plot=False)
    data = compare([tmp_path / "a" / "results.json", tmp_path / "b"], tmp_path / "cmp")
    assert data["models"] == ["fast", "grpo"]
    assert {(p["model"], p["benchmark"], p["accuracy"], p["mean_tokens"]) for p in data["points"]} == {
        ("fast", "gsm8k", 80.0, 300.0),
        ("fast", "math500", 40.0, 300.0),
        ("grpo", "gsm8k", 78.0, 900.0),
        ("grpo", "math500", 39.0, 900.0),
    }
    assert (tmp_path / "cmp" / "accuracy_vs_length.png").read_bytes()[:8] == PNG_MAGIC
    assert json.loads((tmp_path / "cmp" / "accuracy_vs_length.json").read_text())["points"] == data["points"]
    assert "| gsm8k | 80.00 | 300.0 | 78.00 | 900.0 |" in (tmp_path / "cmp" / "comparison.md").read_text()


class _FakeProcessor:
    """Stands in for a Qwen2-VL processor: records the structured chat it is given, returns tensors."""

    image_processor = object()

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.chats: list[Any] = []

    def apply_chat_template(
        self, messages: list[dict[str, Any]], add_generation_prompt: bool, tokenize: bool
    ) -> str:
        self.chats.append(messages)
        parts = [
            "".join("<image>" if c["type"] == "image" else c["text"] for c in m["content"]) for m in messages
        ]
        return "\n".join(parts) + "\n"

    def __call__(self, text: list[str], images: list[Any], return_tensors: str) -> dict[str, Any]:
        import torch

        ids = self.tokenizer(text[0], add_special_tokens=False)["input_ids"]
        return {
            "input_ids": torch.tensor([ids]),
            "pixel_values": torch.zeros(len(images) * 4, 3),
            "image_grid_thw": torch.tensor([[1, 2, 2]] * len(images)),
        }


def test_processor_prompt_builder_structures_images(tokenizer: Any, scripted: Any, data_dir: Path) -> None:
    proc = _FakeProcessor(tokenizer)
    engine = scripted(lambda p, j: "\\boxed{A}")
    res = evaluate(
        None,
        tokenizer,
        ["aokvqa"],
        EvalParams(n=1),
        None,
        engine=engine,
        data_dir=data_dir,
        processor=proc,
        num_workers=0,
        progress=False,
        limit=1,
    )
    system, user = proc.chats[0]
    assert system["content"] == [{"type": "text", "text": "You are a helpful assistant."}]
    assert user["content"][0] == {"type": "image"}  # `<image>` placeholder -> an image slot, in place
    text = user["content"][1]["text"]
    assert text.startswith("What animal is shown?\nChoices:\n(A) cat\n(B) dog") and "\\boxed{}" in text
    assert engine.images[0][0].mode == "RGB"  # decoded from the parquet's embedded image
    assert res["benchmarks"]["aokvqa"]["accuracy"] == 0.0  # gold is B (correct_choice_idx 1)


def test_hf_engine_samples_do_not_depend_on_batching(data_dir: Path, tmp_path: Path) -> None:
    """Default engine (HF generate on the live model, as the trainer passes it): with a seed, a response
    depends on (seed, question, sample index) only, not on --batch-size."""
    from fastgrpo.eval import load_model
    from fastgrpo.models.tiny import build_tiny_qwen2

    m = load_model(str(build_tiny_qwen2(tmp_path / "m", num_layers=1)))
    runs = []
    for bs in (1, 3):
        evaluate(
            m.model,
            m.tokenizer,
            [_custom(data_dir)],
            EvalParams(n=2, max_new_tokens=8, seed=5),
            tmp_path / f"bs{bs}",
            batch_size=bs,
            num_workers=0,
            progress=False,
        )
        recs = [json.loads(x) for x in (tmp_path / f"bs{bs}" / "generations.jsonl").read_text().splitlines()]
        runs.append({(r["prompt_id"], r["sample_idx"]): (r["response"], r["tokens"]) for r in recs})
    assert runs[0] == runs[1] and len(runs[0]) == 8
    assert all(t <= 8 for _, t in runs[0].values())
