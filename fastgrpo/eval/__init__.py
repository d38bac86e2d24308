"""Evaluation harness: benchmark registry, generation through the rollout engines, grading, reports.

Trainer validation and `fastgrpo eval` share `evaluate()`::

    from fastgrpo.eval import EvalParams, custom_benchmark, evaluate, flat_metrics

    results = evaluate(model, tokenizer, ["gsm8k", "math500"], EvalParams(n=1), out_dir="runs/x/eval/step_50",
                       engine=hf_engine, limit=cfg.eval.limit)
    logger.log(flat_metrics(results, prefix="val"), step)

    # the demo's held-out split, broken down by its difficulty column `k`
    spec = custom_benchmark("data/heldout.jsonl", prompt_key="problem", answer_key="answer", group_key="k")
    results = evaluate(model, tokenizer, [spec], out_dir="runs/demo/eval")
    results["benchmarks"]["custom"]["groups"]["3"]["accuracy"]
"""

from fastgrpo.data.io import DataSourceError
from fastgrpo.eval.choices import format_options, parse_options
from fastgrpo.eval.data import EvalItem, load_items
from fastgrpo.eval.engine import EngineUnavailableError, LoadedModel, ModelLoadError, load_model, make_engine
from fastgrpo.eval.metrics import maj_at_k, pass_at_k
from fastgrpo.eval.prompts import (
    EvalSetupError,
    ProcessorPromptBuilder,
    VisionProcessorBuilder,
    build_prompt,
    default_vision_builder,
)
from fastgrpo.eval.registry import (
    BENCHMARKS,
    BenchmarkSpec,
    FieldMap,
    SamplingDefaults,
    UnknownBenchmarkError,
    custom_benchmark,
    get_benchmark,
    resolve_names,
)
from fastgrpo.eval.report import compare, load_results, plot_accuracy_vs_length, print_results, write_reports
from fastgrpo.eval.runner import EvalParams, evaluate, flat_metrics, summarize_benchmark
from fastgrpo.eval.scoring import EvalScorer, SampleScore
from fastgrpo.eval.store import GenerationStore

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "DataSourceError",
    "EngineUnavailableError",
    "EvalItem",
    "EvalParams",
    "EvalScorer",
    "EvalSetupError",
    "FieldMap",
    "GenerationStore",
    "LoadedModel",
    "ModelLoadError",
    "ProcessorPromptBuilder",
    "SampleScore",
    "SamplingDefaults",
    "UnknownBenchmarkError",
    "VisionProcessorBuilder",
    "build_prompt",
    "compare",
    "custom_benchmark",
    "default_vision_builder",
    "evaluate",
    "flat_metrics",
    "format_options",
    "get_benchmark",
    "load_items",
    "load_model",
    "load_results",
    "maj_at_k",
    "make_engine",
    "parse_options",
    "pass_at_k",
    "plot_accuracy_vs_length",
    "print_results",
    "resolve_names",
    "summarize_benchmark",
    "write_reports",
]
