"""Config loading: every shipped config, defaults, overrides, and one test per error class.

Every error must name the exact key path, so the message alone tells the user what to fix.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from fastgrpo.config import Config, ConfigError, FilterStage, dump_config, from_dict, load_config, to_dict
from fastgrpo.config.loader import apply_overrides, read_yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "configs").glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str | None = None, overrides: list[str] | None = None) -> str:
    """The ConfigError message for a YAML text (or no file) plus overrides; fails if it loads."""
    path = write(tmp_path, text) if text is not None else None
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides or [])
    return str(info.value)


# --- every shipped config ------------------------------------------------------------------------


def test_configs_are_found() -> None:
    assert len(CONFIGS) >= 2, "configs/*.yaml not found"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_with_its_values(path: Path) -> None:
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    raw = read_yaml(path)
    resolved = to_dict(cfg)
    for section, values in raw.items():  # every value written in the file is the value used
        for key, value in (values or {}).items():
            got = resolved[section][key]
            assert got == value or (isinstance(value, str) and got == float(value)), f"{section}.{key}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_round_trips_through_dump(path: Path) -> None:
    cfg = load_config(path)
    again = from_dict(Config, yaml.safe_load(dump_config(cfg)))
    assert again == cfg


# --- defaults ------------------------------------------------------------------------------------


def test_no_file_gives_schema_defaults() -> None:
    cfg = load_config(None)
    assert cfg == Config()
    assert cfg.algorithm.dynamic_filter_schedule == [
        FilterStage(epoch_ratio=0.5, filter_low=0.3, filter_high=0.99),
        FilterStage(epoch_ratio=1.0, filter_low=0.01, filter_high=0.7),
    ]
    assert cfg.trainer.logger == ["console", "jsonl"]


def test_defaults_are_not_shared_between_instances() -> None:
    a, b = Config(), Config()
    a.trainer.logger.append("wandb")
    a.algorithm.dynamic_filter_schedule[0].filter_low = 0.0
    assert b.trainer.logger == ["console", "jsonl"]
    assert b.algorithm.dynamic_filter_schedule[0].filter_low == 0.3


def test_partial_file_keeps_defaults_elsewhere(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "trainer:\n  max_steps: 5\n"))
    assert cfg.trainer.max_steps == 5
    assert cfg.trainer.save_freq == Config().trainer.save_freq
    assert cfg.algorithm == Config().algorithm


@pytest.mark.parametrize("text", ["", "# only a comment\n", "trainer:\n", "trainer:\n  # max_steps: 3\n"])
def test_empty_file_or_section_means_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text)) == Config()


def test_yaml_scalars_are_coerced(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "actor:\n  lr: 1e-6\n  max_grad_norm: 2\ndata:\n  seed: 3.0\n"))
    assert cfg.actor.lr == 1e-6 and isinstance(cfg.actor.lr, float)  # YAML 1.1 reads 1e-6 as a string
    assert cfg.actor.max_grad_norm == 2.0 and isinstance(cfg.actor.max_grad_norm, float)
    assert cfg.data.seed == 3 and isinstance(cfg.data.seed, int)


def test_yaml_anchors_and_merge_keys_work(tmp_path: Path) -> None:
    text = "x_common: &c {filter_low: 0.2, filter_high: 0.9}\n"
    cfg_text = (
        "algorithm:\n  dynamic_filter_schedule:\n"
        "    - {<<: *c, epoch_ratio: 0.5}\n    - {<<: *c, epoch_ratio: 1.0, filter_low: 0.1}\n"
    )
    data = read_yaml(write(tmp_path, text + cfg_text))
    del data["x_common"]
    cfg = from_dict(Config, data)
    assert cfg.algorithm.dynamic_filter_schedule[1] == FilterStage(1.0, 0.1, 0.9)


# --- overrides -----------------------------------------------------------------------------------


def test_overrides_nested_and_typed(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, "algorithm:\n  kl_coef: 0.01\n"),
        [
            "algorithm.kl_coef=0.02",
            "trainer.max_steps=10",
            "algorithm.thinking_reward=false",
            "actor.lr=2e-6",
            "trainer.logger=[jsonl, tensorboard]",
            "actor.betas=[0.8, 0.9]",
            "algorithm.dynamic_filter_schedule=[{epoch_ratio: 1.0, filter_low: 0.1, filter_high: 0.9}]",
            "data.val_files=null",
        ],
    )
    assert cfg.algorithm.kl_coef == 0.02
    assert cfg.trainer.max_steps == 10
    assert cfg.algorithm.thinking_reward is False
    assert cfg.actor.lr == 2e-6
    assert cfg.trainer.logger == ["jsonl", "tensorboard"]
    assert cfg.actor.betas == [0.8, 0.9]
    assert cfg.algorithm.dynamic_filter_schedule == [FilterStage(1.0, 0.1, 0.9)]
    assert cfg.data.val_files is None


def test_later_override_wins_and_file_is_overridden(tmp_path: Path) -> None:
    path = write(tmp_path, "trainer:\n  max_steps: 3\n")
    assert load_config(path, ["trainer.max_steps=4", "trainer.max_steps=5"]).trainer.max_steps == 5


def test_override_creates_missing_sections() -> None:
    data = apply_overrides({}, ["trainer.max_steps=2", "algorithm.kl_coef=0.5"])
    assert data == {"trainer": {"max_steps": 2}, "algorithm": {"kl_coef": 0.5}}
    data = apply_overrides({"trainer": None}, ["trainer.seed=7"])  # `trainer:` left empty in the file
    assert data == {"trainer": {"seed": 7}}


def test_override_empty_value_is_empty_string() -> None:
    cfg = load_config(None, ["model.path=", "data.format_prompt="])
    assert cfg.model.path == "" and cfg.data.format_prompt == ""


def test_override_text_fields_keep_the_text_as_typed() -> None:
    cfg = load_config(
        None,
        [
            "trainer.experiment_name=1.10",  # YAML alone would give the float 1.1
            "data.system_prompt=Note: answer briefly.",  # YAML alone would give a mapping
            "data.format_prompt={{ content | trim }} Put the answer in \\boxed{}.",
            "reward.reward_function=my_reward.py:score",
            "trainer.resume=2024-01-01",  # YAML alone would give a date
            "model.path= ./models/tiny ",
        ],
    )
    assert cfg.trainer.experiment_name == "1.10"
    assert cfg.data.system_prompt == "Note: answer briefly."
    assert cfg.data.format_prompt == "{{ content | trim }} Put the answer in \\boxed{}."
    assert cfg.reward.reward_function == "my_reward.py:score"
    assert cfg.trainer.resume == "2024-01-01"
    assert cfg.model.path == "./models/tiny"


def test_override_value_may_contain_equals_sign() -> None:
    assert load_config(None, ["data.system_prompt=a=b"]).data.system_prompt == "a=b"


@pytest.mark.parametrize("item", ["trainer.max_steps", "max_steps 10"])
def test_override_without_equals_is_rejected(item: str) -> None:
    with pytest.raises(ConfigError, match=r"must look like key\.path=value"):
        load_config(None, [item])


@pytest.mark.parametrize("item", ["=3", "trainer..max_steps=3", ".max_steps=3", "trainer.=3"])
def test_override_with_empty_key_part_is_rejected(item: str) -> None:
    with pytest.raises(ConfigError, match="empty key path"):
        load_config(None, [item])


def test_override_into_a_value_is_rejected(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "trainer:\n  max_steps: 3\n", ["trainer.max_steps.x=1"])
    assert "'max_steps' is not a section" in msg


# --- errors: unknown keys ------------------------------------------------------------------------


def test_unknown_top_level_key_suggests_section(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "traner:\n  max_steps: 3\n")
    assert "unknown key 'traner'" in msg
    assert "Did you mean 'trainer'?" in msg


def test_unknown_nested_key_suggests_full_path(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "algorithm:\n  kl_cof: 0.1\n")
    assert "unknown key 'algorithm.kl_cof'" in msg
    assert "Did you mean 'algorithm.kl_coef'?" in msg
    assert "Valid keys here:" in msg and "kl_min_coef" in msg


def test_unknown_key_inside_list_item(tmp_path: Path) -> None:
    text = "algorithm:\n  dynamic_filter_schedule:\n    - {epoch_ratio: 1.0, filter_lo: 0.1}\n"
    msg = error_of(tmp_path, text)
    assert "unknown key 'algorithm.dynamic_filter_schedule[0].filter_lo'" in msg
    assert "Did you mean 'algorithm.dynamic_filter_schedule[0].filter_low'?" in msg


def test_unknown_key_from_override() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown key 'trainer\.max_step'\. Did you mean 'trainer\.max_steps'\?"
    ):
        load_config(None, ["trainer.max_step=3"])


def test_unknown_key_without_close_match_has_no_suggestion(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "trainer:\n  zzzzzz: 1\n")
    assert "unknown key 'trainer.zzzzzz'" in msg and "Did you mean" not in msg


# --- errors: wrong types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("trainer.save_freq=often", "trainer.save_freq: expected an integer, got str 'often'"),
        ("trainer.save_freq=2.5", "trainer.save_freq: expected an integer, got float 2.5"),
        ("trainer.save_freq=true", "trainer.save_freq: expected an integer, got bool True"),
        ("trainer.max_steps=ten", "trainer.max_steps: expected int or null, got 'ten'"),
        ("actor.lr=fast", "actor.lr: expected a number, got str 'fast'"),
        ("actor.lr=true", "actor.lr: expected a number, got bool True"),
        ("algorithm.thinking_reward=1", "algorithm.thinking_reward: expected true or false, got 1"),
        ("algorithm.thinking_reward=maybe", "algorithm.thinking_reward: expected true or false, got 'maybe'"),
        ("model.path=null", "model.path: expected a string, got NoneType None"),
        ("trainer.logger=jsonl", "trainer.logger: expected list of str, got str 'jsonl'"),
        ("actor.betas=[0.9, high]", "actor.betas[1]: expected a number, got str 'high'"),
        ("algorithm=3", "algorithm: expected a mapping (AlgorithmConfig), got int 3"),
        (
            "algorithm.dynamic_filter_schedule=[0.5]",
            "algorithm.dynamic_filter_schedule[0]: expected a mapping (FilterStage), got float 0.5",
        ),
    ],
)
def test_wrong_type_names_key_and_expectation(override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, [override])
    assert str(info.value) == expected


def test_wrong_type_in_file_names_key(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "data:\n  prompt_key: [a, b]\n")
    assert msg == "data.prompt_key: expected a string, got list ['a', 'b']"


def test_section_that_is_not_a_mapping(tmp_path: Path) -> None:
    assert (
        error_of(tmp_path, "trainer: fast\n") == "trainer: expected a mapping (TrainerConfig), got str 'fast'"
    )


# --- errors: enums -------------------------------------------------------------------------------


def test_bad_enum_lists_choices_and_suggests(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "model:\n  dtype: bfloat\n")
    assert msg.startswith("model.dtype: 'bfloat' is not allowed; choose one of 'auto', 'float32', 'bfloat16'")
    assert "(did you mean 'bfloat16'?)" in msg


def test_bad_enum_from_override() -> None:
    with pytest.raises(ConfigError, match=r"algorithm\.kl_penalty: 'low_var' is not allowed.*'low_var_kl'\?"):
        load_config(None, ["algorithm.kl_penalty=low_var"])


# --- errors: the file itself ---------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file not found: .*nope\.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config path is a directory"):
        load_config(tmp_path)


def test_bad_yaml_reports_line(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "trainer:\n  max_steps: 3\n  seed: [1, 2\ndata:\n  seed: 1\n")
    assert "invalid YAML at line 4" in msg and "c.yaml" in msg


def test_bad_indentation_reports_line(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "trainer:\n  max_steps: 3\n    seed: 1\n")
    assert "invalid YAML at line 3" in msg


def test_duplicate_key_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "algorithm:\n  kl_coef: 0.1\n  kl_coef: 0.2\n")
    assert "invalid YAML at line 3" in msg and "duplicate key 'kl_coef'" in msg
    msg = error_of(tmp_path, "trainer:\n  seed: 1\ndata:\n  seed: 2\ntrainer:\n  max_steps: 2\n")
    assert "line 5" in msg and "duplicate key 'trainer'" in msg


@pytest.mark.parametrize(
    ("text", "kind"), [("- data\n- model\n", "list"), ("just text\n", "str"), ("3\n", "int")]
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    msg = error_of(tmp_path, text)
    assert "top level must be a mapping" in msg and f"got {kind}" in msg


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        load_config(path)


# --- errors: cross-field checks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            ["algorithm.kl_min_coef=0.1", "algorithm.kl_max_coef=0.01"],
            "algorithm.kl_min_coef (0.1) must be >= 0 and <= algorithm.kl_max_coef (0.01)",
        ),
        (["algorithm.kl_min_coef=-0.1"], "algorithm.kl_min_coef (-0.1) must be >= 0"),
        (
            ["algorithm.filter_low=0.9", "algorithm.filter_high=0.1"],
            "algorithm.filter_low (0.9) must be <= algorithm.filter_high (0.1)",
        ),
        (
            ["algorithm.dynamic_filter_schedule=[{epoch_ratio: 0.5, filter_low: 0.8, filter_high: 0.2}]"],
            "algorithm.dynamic_filter_schedule[0]: filter_low (0.8) must be <= filter_high (0.2)",
        ),
        (
            ["algorithm.dynamic_filter_schedule=[{epoch_ratio: 0.6}, {epoch_ratio: 0.4}]"],
            "algorithm.dynamic_filter_schedule[1].epoch_ratio must increase",
        ),
        (["algorithm.dynamic_filter_schedule=[{epoch_ratio: 1.5}]"], "schedule[0].epoch_ratio must increase"),
        (["algorithm.dynamic_filter_schedule=[{epoch_ratio: 0}]"], "schedule[0].epoch_ratio must increase"),
        (
            ["actor.global_batch_size=10", "actor.micro_batch_size=4"],
            "actor.global_batch_size (10) must be a multiple of actor.micro_batch_size (4)",
        ),
        (["actor.micro_batch_size=0"], "actor.micro_batch_size must be >= 1, got 0"),
        (["actor.ppo_epochs=0"], "actor.ppo_epochs must be >= 1, got 0"),
        (["algorithm.difficulty_window=-5"], "algorithm.difficulty_window must be >= 1, got -5"),
        (["actor.betas=[0.9]"], "actor.betas must be two numbers [beta1, beta2], each in [0, 1), got [0.9]"),
        (["actor.betas=[0.9, 0.99, 0.999]"], "actor.betas must be two numbers"),
        (["actor.betas=[0.9, 1.0]"], "each in [0, 1), got [0.9, 1.0]"),
        (["algorithm.easy_percentile=101"], "algorithm.easy_percentile must be in [0, 100]"),
        (["algorithm.max_try_make_batch=0"], "algorithm.max_try_make_batch must be >= 1"),
        (["data.rollout_batch_size=16", "algorithm.max_prompts_per_round=8"],
         "algorithm.max_prompts_per_round (8) must be >= data.rollout_batch_size (16)"),
        (["algorithm.filter_key=reward"], "algorithm.filter_key: 'reward' is not a per-sample score"),
        (["data.rollout_batch_size=0"], "data.rollout_batch_size must be >= 1"),
        (["data.max_response_length=0"], "data.max_response_length must be >= 1"),
        (["rollout.n=0"], "rollout.n must be >= 1"),
        (["rollout.top_p=0"], "rollout.top_p must be in (0, 1]"),
        (["rollout.temperature=-1"], "rollout.temperature must be >= 0"),
        (["trainer.logger=[console, neptune]"], "trainer.logger[1]: unknown logger 'neptune'"),
        (["reward.overlong_buffer_len=4096", "data.max_response_length=2048"],
         "reward.overlong_buffer_len must be 0 (off) or in [1, data.max_response_length=2048], got 4096"),
        (["reward.overlong_buffer_len=-1"], "reward.overlong_buffer_len must be 0 (off)"),
        (["reward.overlong_penalty_factor=-0.5"], "reward.overlong_penalty_factor must be >= 0"),
        (["algorithm.policy_loss=gpso"], "algorithm.policy_loss: 'gpso' is not allowed; choose one of 'ppo', "
         "'gspo' (did you mean 'gspo'?)"),
        (["trainer.max_steps=0"], "trainer.max_steps must be >= 1"),
    ],
)
def test_cross_field_checks_name_the_key(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert expected in str(info.value)


def test_cross_field_checks_see_the_file_too(tmp_path: Path) -> None:
    msg = error_of(tmp_path, "algorithm:\n  kl_min_coef: 0.5\n", [])
    assert "algorithm.kl_min_coef (0.5)" in msg
    msg = error_of(tmp_path, "actor:\n  global_batch_size: 10\n", ["actor.micro_batch_size=3"])
    assert "actor.global_batch_size (10) must be a multiple of actor.micro_batch_size (3)" in msg


def test_eval_benchmarks_take_what_fastgrpo_eval_bench_takes() -> None:
    cfg = load_config(None, ["eval.benchmarks=[text, 'gsm8k,mathvista', AIME24]"])
    assert cfg.eval.benchmarks == ["text", "gsm8k,mathvista", "AIME24"]  # kept as written; expanded when used


def test_valid_edge_values_pass() -> None:
    cfg = load_config(
        None,
        [
            "algorithm.kl_min_coef=0.01",  # == kl_max_coef
            "algorithm.filter_low=0.5",
            "algorithm.filter_high=0.5",
            "algorithm.dynamic_filter_schedule=[{epoch_ratio: 1.0}]",
            "algorithm.dynamic_filter_schedule=[]",
            "actor.global_batch_size=8",
            "actor.micro_batch_size=8",
            "rollout.temperature=0",
        ],
    )
    assert cfg.algorithm.dynamic_filter_schedule == []


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_to_dict_is_plain_data() -> None:
    d = to_dict(Config())
    assert d["algorithm"]["dynamic_filter_schedule"][0] == dataclasses.asdict(FilterStage(0.5, 0.3, 0.99))
    assert yaml.safe_load(yaml.safe_dump(d)) == d
