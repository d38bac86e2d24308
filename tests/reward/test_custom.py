"""Custom reward-function loading (EasyR1-style `file.py:function` specs)."""

import pytest

from fastgrpo.reward import load_reward_function, normalize_reward_output


def test_builtin_math_and_reference():
    fn = load_reward_function("builtin:math", template="think_boxed", format_weight=0.1)
    out = fn([{"response": r"<think>a</think> \boxed{0.5}", "ground_truth": r"\frac{1}{2}"}])
    assert out == [{"overall": 1.0, "accuracy": 1.0, "format": 1.0}]
    ref = load_reward_function("builtin:reference")
    out = ref([{"response": r"<think>a</think> \boxed{(B) 12}", "ground_truth": "B"}])
    assert out[0]["accuracy"] == 0.0
    with pytest.raises(ValueError):
        load_reward_function("builtin:nope")


def test_per_sample_extras_override_defaults():
    fn = load_reward_function("builtin:math")
    out = fn(
        [
            {
                "response": r"<think>a</think> \boxed{12 cm}",
                "ground_truth": "B",
                "choices": ["10 cm", "12 cm"],
            },
            {"response": "a</think> \\boxed{1}", "ground_truth": "1", "think_in_prompt": True},
            {
                "response": "<think>a</think><answer>1</answer>",
                "ground_truth": "1",
                "template": "think_answer",
            },
        ]
    )
    assert [o["accuracy"] for o in out] == [1.0, 1.0, 1.0]
    assert [o["format"] for o in out] == [1.0, 1.0, 1.0]


def test_file_function_spec(custom_reward_file):
    fn = load_reward_function(f"{custom_reward_file}:length_reward", bonus=1.0)
    out = fn([{"response": "7", "ground_truth": "7"}])
    assert out[0]["overall"] == 2.0 and out[0]["length"] == 1.0
    default = load_reward_function(str(custom_reward_file))  # ":compute_score" assumed
    assert default([{"response": "x", "ground_truth": "y"}]) == [{"overall": 0.5, "accuracy": 0.5}]


def test_module_function_spec():
    fn = load_reward_function("fastgrpo.reward.custom:builtin_math_reward")
    assert fn([{"response": r"\boxed{1}", "ground_truth": "1"}])[0]["accuracy"] == 1.0


def test_bad_specs(custom_reward_file, tmp_path):
    with pytest.raises(FileNotFoundError):
        load_reward_function(str(tmp_path / "missing.py") + ":f")
    with pytest.raises(AttributeError):
        load_reward_function(f"{custom_reward_file}:nope")
    with pytest.raises(ValueError):
        load_reward_function("just_a_name")


def test_normalize_reward_output():
    core, extras = normalize_reward_output({"overall": 1, "accuracy": True, "len": 3, "note": "x"})
    assert core == {"overall": 1.0, "accuracy": 1.0, "format": 0.0} and extras == {"len": 3.0}
    assert normalize_reward_output(0.25) == ({"overall": 0.25, "accuracy": 0.25, "format": 0.0}, {})
    assert normalize_reward_output({"overall": float("nan"), "accuracy": 1})[0]["overall"] == 0.0
    with pytest.raises(KeyError):
        normalize_reward_output({"score": 1.0})
