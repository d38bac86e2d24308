"""Typed, validated configuration: YAML files plus dotted `key=value` overrides."""

from fastgrpo.config.loader import ConfigError, dump_config, from_dict, load_config, to_dict
from fastgrpo.config.schema import (
    ActorConfig,
    AlgorithmConfig,
    Config,
    DataConfig,
    EvalConfig,
    FilterStage,
    ModelConfig,
    RewardConfig,
    RolloutConfig,
    TrainerConfig,
)

__all__ = [
    "ActorConfig",
    "AlgorithmConfig",
    "Config",
    "ConfigError",
    "DataConfig",
    "EvalConfig",
    "FilterStage",
    "ModelConfig",
    "RewardConfig",
    "RolloutConfig",
    "TrainerConfig",
    "dump_config",
    "from_dict",
    "load_config",
    "to_dict",
]
