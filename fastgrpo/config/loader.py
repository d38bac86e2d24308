"""YAML + dotted overrides -> validated `Config`, with errors that name the key path.

Why hand-rolled: the schema is plain dataclasses, and every error must say which
key is wrong, what was expected, and suggest the closest valid key. That is a
hundred lines here, and one fewer dependency.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from fastgrpo.config.schema import Config

T = TypeVar("T")


class ConfigError(ValueError):
    """A config problem a user can fix; the message names the key and the fix."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        return f"list of {_type_name(get_args(tp)[0])}"
    if origin is dict:
        return "mapping"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return f"mapping ({tp.__name__})"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{path}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(
                f"{path}: {value!r} is not allowed; choose one of {', '.join(repr(c) for c in choices)}{extra}"
            )
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
        (item_tp,) = get_args(tp)
        return [_coerce(v, item_tp, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:  # free-form (data.chat_template_kwargs): string keys, values as YAML gives them
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{path}: expected a mapping with text keys, got {type(value).__name__} {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if value is None:  # `trainer:` with every key commented out: all defaults
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping ({tp.__name__}), got {type(value).__name__} {value!r}")
        return from_dict(tp, value, path)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-6" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
    raise ConfigError(f"{path}: unsupported schema type {tp!r}")  # pragma: no cover - schema bug


def from_dict(cls: type[T], data: dict[str, Any], path: str = "") -> T:
    """Build dataclass `cls` from `data`, rejecting unknown keys with a did-you-mean."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_path = f"{path}.{key}" if path else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.5)
            hint = f" Did you mean '{(path + '.') if path else ''}{close[0]}'?" if close else ""
            raise ConfigError(
                f"unknown key '{key_path}'.{hint} Valid keys here: {', '.join(fields)}"
            )
        kwargs[key] = _coerce(value, hints[key], key_path)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def _parse_override(item: str) -> tuple[list[str], Any, str]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value (e.g. trainer.max_steps=10)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r}: empty key path")
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value, raw


def _schema_type(parts: list[str]) -> Any:
    """The schema type at a dotted key path, or None where the path leaves the schema."""
    tp: Any = Config
    for part in parts:
        if not dataclasses.is_dataclass(tp):
            return None
        tp = typing.get_type_hints(tp).get(part)
    return tp


def _is_text(tp: Any) -> bool:
    if get_origin(tp) in (Union, types.UnionType):
        return set(get_args(tp)) == {str, type(None)}
    return tp is str


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set `a.b.c=value` items (values parsed as YAML) into a nested dict.

    A text field takes the text as typed: `trainer.experiment_name=1.10` stays "1.10"
    (YAML would read 1.1) and `data.system_prompt=Note: be brief` is not a mapping.
    """
    for item in overrides:
        parts, value, raw = _parse_override(item)
        if value is not None and not isinstance(value, str) and _is_text(_schema_type(parts)):
            value = raw
        node = data
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` may be overridden by explicit keys
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if isinstance(key, typing.Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"config file not found: {p} (give a path to a YAML file, e.g. configs/demo.yaml)")
    if p.is_dir():
        raise ConfigError(f"config path is a directory, not a YAML file: {p}")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # a SafeLoader
    except UnicodeDecodeError as e:
        raise ConfigError(f"{p}: not a UTF-8 text file ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: invalid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping of sections (data, model, ...), got {type(data).__name__}")
    return data


# Integer keys that count something (steps, rounds, samples, tokens) and must be >= 1.
POSITIVE_INTS = (
    "data.rollout_batch_size",
    "data.max_prompt_length",
    "data.max_response_length",
    "rollout.n",
    "actor.global_batch_size",
    "actor.micro_batch_size",
    "actor.ppo_epochs",
    "actor.logprob_chunk_size",
    "algorithm.max_try_make_batch",
    "algorithm.difficulty_window",
)


def _get(cfg: Config, path: str) -> Any:
    node: Any = cfg
    for part in path.split("."):
        node = getattr(node, part)
    return node


def validate(cfg: Config) -> Config:
    """Cross-field checks the types alone cannot express."""
    for path in POSITIVE_INTS:
        value = _get(cfg, path)
        if value < 1:
            raise ConfigError(f"{path} must be >= 1, got {value!r}")
    a = cfg.algorithm
    if not 0 <= a.kl_min_coef <= a.kl_max_coef:
        raise ConfigError(
            f"algorithm.kl_min_coef ({a.kl_min_coef}) must be >= 0 and <= algorithm.kl_max_coef ({a.kl_max_coef})"
        )
    if not 0 <= a.easy_percentile <= 100:
        raise ConfigError(f"algorithm.easy_percentile must be in [0, 100], got {a.easy_percentile}")
    if a.filter_low > a.filter_high:
        raise ConfigError(f"algorithm.filter_low ({a.filter_low}) must be <= algorithm.filter_high ({a.filter_high})")
    prev = 0.0
    for i, stage in enumerate(a.dynamic_filter_schedule):
        key = f"algorithm.dynamic_filter_schedule[{i}]"
        if stage.filter_low > stage.filter_high:
            raise ConfigError(f"{key}: filter_low ({stage.filter_low}) must be <= filter_high ({stage.filter_high})")
        if not prev < stage.epoch_ratio <= 1.0:
            raise ConfigError(f"{key}.epoch_ratio must increase and lie in (0, 1], got {stage.epoch_ratio}")
        prev = stage.epoch_ratio
    if a.max_prompts_per_round is not None and a.max_prompts_per_round < cfg.data.rollout_batch_size:
        raise ConfigError(f"algorithm.max_prompts_per_round ({a.max_prompts_per_round}) must be >= "
                          f"data.rollout_batch_size ({cfg.data.rollout_batch_size}), or null (one batch per round)")
    if a.filter_key not in ("accuracy", "overall", "format"):
        raise ConfigError(f"algorithm.filter_key: {a.filter_key!r} is not a per-sample score; choose accuracy, overall or format")
    betas = cfg.actor.betas
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ConfigError(f"actor.betas must be two numbers [beta1, beta2], each in [0, 1), got {betas!r}")
    if cfg.actor.global_batch_size % cfg.actor.micro_batch_size:
        raise ConfigError(
            f"actor.global_batch_size ({cfg.actor.global_batch_size}) must be a multiple of "
            f"actor.micro_batch_size ({cfg.actor.micro_batch_size})"
        )
    lora = cfg.actor.lora
    if lora.rank < 0:
        raise ConfigError(f"actor.lora.rank must be >= 0 (0: no LoRA, full fine-tuning), got {lora.rank}")
    if lora.rank and not lora.alpha > 0:
        raise ConfigError(f"actor.lora.alpha must be > 0, got {lora.alpha}")
    if not 0 <= lora.dropout < 1:
        raise ConfigError(f"actor.lora.dropout must be in [0, 1), got {lora.dropout}")
    if not 0 < cfg.rollout.top_p <= 1:
        raise ConfigError(f"rollout.top_p must be in (0, 1], got {cfg.rollout.top_p}")
    if cfg.rollout.temperature < 0:
        raise ConfigError("rollout.temperature must be >= 0")
    if not 0 <= cfg.reward.max_error_fraction <= 1:
        raise ConfigError(f"reward.max_error_fraction must be in [0, 1], got {cfg.reward.max_error_fraction}")
    if cfg.rollout.sleep_level not in (1, 2):
        raise ConfigError(f"rollout.sleep_level must be 1 or 2, got {cfg.rollout.sleep_level}")
    if cfg.rollout.kv_cache_memory_mb < 0:
        raise ConfigError(f"rollout.kv_cache_memory_mb must be >= 0 (0: vLLM's default), got {cfg.rollout.kv_cache_memory_mb}")
    if not cfg.algorithm.rollout_is_cap > 0:
        raise ConfigError(f"algorithm.rollout_is_cap must be > 0, got {cfg.algorithm.rollout_is_cap}")
    if cfg.reward.overlong_buffer_len and not 0 < cfg.reward.overlong_buffer_len <= cfg.data.max_response_length:
        raise ConfigError(f"reward.overlong_buffer_len must be 0 (off) or in [1, data.max_response_length="
                          f"{cfg.data.max_response_length}], got {cfg.reward.overlong_buffer_len}")
    if cfg.reward.overlong_penalty_factor < 0:
        raise ConfigError(f"reward.overlong_penalty_factor must be >= 0, got {cfg.reward.overlong_penalty_factor}")
    loggers = {"console", "jsonl", "tensorboard", "wandb", "mlflow"}
    for i, name in enumerate(cfg.trainer.logger):
        if name not in loggers:
            raise ConfigError(f"trainer.logger[{i}]: unknown logger {name!r}; choose from {', '.join(sorted(loggers))}")
    if cfg.trainer.max_steps is not None and cfg.trainer.max_steps < 1:
        raise ConfigError("trainer.max_steps must be >= 1 (or null for one pass per epoch)")
    validating = cfg.trainer.val_freq > 0 or cfg.trainer.val_before_train
    if validating and cfg.eval.max_new_tokens > cfg.data.max_response_length:
        # Validation generates with the training engine, whose model length (vLLM's max_model_len) is
        # max_prompt_length + max_response_length: longer answers would be cut there without a word.
        raise ConfigError(
            f"eval.max_new_tokens ({cfg.eval.max_new_tokens}) is above data.max_response_length "
            f"({cfg.data.max_response_length}): validation (trainer.val_freq) generates with the training engine, "
            f"whose model length is data.max_prompt_length + data.max_response_length = "
            f"{cfg.data.max_prompt_length + cfg.data.max_response_length} tokens, so its responses would be cut "
            f"silently. Set eval.max_new_tokens <= {cfg.data.max_response_length} (for longer answers run "
            "`fastgrpo eval --max-new-tokens N` on the checkpoint) or raise data.max_response_length"
        )
    return cfg


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """Load a YAML config, apply `key=value` overrides, type-check and validate."""
    data = read_yaml(path) if path is not None else {}
    data = apply_overrides(data, list(overrides or []))
    return validate(from_dict(Config, data))


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
