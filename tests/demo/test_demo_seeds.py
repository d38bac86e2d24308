"""benchmarks/demo_seeds.py: the multi-seed summary, the per-seed cache, and a quick run of two seeds."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from fastgrpo.demo.__main__ import DemoOptions, KRow

REPO = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("demo_seeds", REPO / "benchmarks" / "demo_seeds.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


demo_seeds = _module()


def _run(fast_tokens: float, fast_acc: float) -> dict[str, dict[int, KRow]]:
    return {
        "grpo": {k: KRow(0.9, 20.0, 0.8, 600) for k in (2, 6)},
        "fast": {2: KRow(fast_acc, fast_tokens, 0.1, 600), 6: KRow(0.9, 20.0, 1.0, 600)},
    }


def test_summary_gives_means_intervals_per_seed_values_and_verdict() -> None:
    text = demo_seeds.summary({1: _run(12.0, 0.90), 2: _run(14.0, 0.88), 3: _run(16.0, 0.89)})
    # k=2 token ratios 0.6 / 0.7 / 0.8: mean 0.70, t-interval 0.70 +- 4.303 * 0.1 / sqrt(3) = +- 0.25
    assert "| tokens FAST / GRPO | 0.70x [0.45x, 0.95x] | 1.00x [1.00x, 1.00x] |" in text
    assert "| accuracy FAST - GRPO (points) | -1.0 [-3.5, +1.5] | +0.0 [+0.0, +0.0] |" in text
    assert "| 2 | 0.70 1.00 | -2.0 +0.0 |" in text  # seed 2's row
    assert "| FAST/GRPO tokens <= 0.7x | 2 | 0.70x | [0.45x, 0.95x] | met (interval crosses the bound) |" in text
    assert "| FAST/GRPO tokens <= 0.7x | 3 | - | - | not measured |" in text  # k=3 not in these runs


def test_saved_result_is_reused_only_with_the_same_settings(tmp_path: Path) -> None:
    base = DemoOptions(out=tmp_path, cache=tmp_path / "cache")
    o = demo_seeds.seed_options(base, tmp_path, 3)
    assert o.out == tmp_path / "seed3" and o.eval_seed == 3
    assert o.extra_overrides[:2] == ["trainer.seed=3", "data.seed=3"]
    assert demo_seeds.load_result(o) is None
    o.out.mkdir(parents=True)
    rows = {"grpo": {"2": {"accuracy": 1.0, "mean_tokens": 9.0, "slow_fraction": 0.5, "samples": 4}},
            "fast": {"2": {"accuracy": 1.0, "mean_tokens": 7.0, "slow_fraction": 0.0, "samples": 4}}}
    (o.out / "result.json").write_text(json.dumps({"fingerprint": demo_seeds.seed_fingerprint(o), "results": rows}))
    assert demo_seeds.load_result(o)["fast"][2] == KRow(1.0, 7.0, 0.0, 4)
    other = demo_seeds.seed_options(DemoOptions(out=tmp_path, cache=tmp_path / "cache",
                                                extra_overrides=["actor.lr=2e-4"]), tmp_path, 3)
    assert demo_seeds.load_result(other) is None  # another override: rerun, never a stale figure
    assert demo_seeds.seed_fingerprint(demo_seeds.seed_options(base, tmp_path, 4)) != demo_seeds.seed_fingerprint(o)


def test_grpo_result_is_reused_by_a_fast_variant_only_when_grpo_settings_match(tmp_path: Path) -> None:
    """--fast-config X --grpo-from DIR: a FAST-GRPO variant reuses each seed's GRPO run from DIR, never when
    anything GRPO's result depends on differs (its config, an override, the warm-start mix)."""
    rows = {"grpo": {"2": {"accuracy": 1.0, "mean_tokens": 9.0, "slow_fraction": 0.5, "samples": 4}},
            "fast": {"2": {"accuracy": 1.0, "mean_tokens": 7.0, "slow_fraction": 0.0, "samples": 4}}}
    first = demo_seeds.seed_options(DemoOptions(out=tmp_path / "a", cache=tmp_path / "cache"), tmp_path / "a", 2)
    first.out.mkdir(parents=True)
    fps = {name: demo_seeds.run_fingerprint(first, name) for name in ("grpo", "fast")}
    (first.out / "result.json").write_text(json.dumps({"fingerprint": "x", "run_fingerprints": fps,
                                                       "results": rows}))
    variant_cfg = tmp_path / "fast_variant.yaml"
    variant_cfg.write_text(DemoOptions().fast_config.read_text().replace("thinking_reward_weight: 0.15",
                                                                         "thinking_reward_weight: 0.05"))
    variant = demo_seeds.seed_options(DemoOptions(out=tmp_path / "b", cache=tmp_path / "cache",
                                                  fast_config=variant_cfg), tmp_path / "b", 2)
    assert demo_seeds.run_fingerprint(variant, "fast") != fps["fast"]
    assert demo_seeds.saved_grpo(variant, 2, tmp_path / "a") == {2: KRow(1.0, 9.0, 0.5, 4)}
    assert demo_seeds.saved_grpo(variant, 2, None) is None  # nothing saved in its own folder
    assert demo_seeds.saved_grpo(variant, 3, tmp_path / "a") is None  # another seed
    for changed in (DemoOptions(out=tmp_path / "b", cache=tmp_path / "cache", fast_config=variant_cfg,
                                extra_overrides=["actor.lr=2e-4"]),
                    DemoOptions(out=tmp_path / "b", cache=tmp_path / "cache", fast_config=variant_cfg,
                                warmstart_slow_prob=(0.5, 0.3, 0.6, 0.999, 0.999))):
        assert demo_seeds.saved_grpo(demo_seeds.seed_options(changed, tmp_path / "b", 2), 2, tmp_path / "a") is None


@pytest.mark.slow
def test_two_quick_seeds_run_side_by_side_then_resume_from_their_results(tmp_path: Path) -> None:
    cmd = [sys.executable, str(REPO / "benchmarks" / "demo_seeds.py"), "--quick", "--seeds", "2", "--jobs", "2",
           "--threads", "1", "--out", str(tmp_path / "seeds"), "--cache", str(tmp_path / "cache")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for s in (1, 2):
        saved = json.loads((tmp_path / "seeds" / f"seed{s}" / "result.json").read_text())
        assert saved["seed"] == s and set(saved["results"]) == {"grpo", "fast"}
        assert (tmp_path / "seeds" / f"seed{s}" / "base").resolve().parent == (tmp_path / "cache").resolve()
    summary = (tmp_path / "seeds" / "summary.md").read_text()
    assert "Verdict on the means" in summary and "95% interval" in summary
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "seed 1: finished earlier" in again.stdout and "seed 2: finished earlier" in again.stdout
    assert "seed 1: running" not in again.stdout
