"""The config: frozen dataclasses, from TOML and --set, checked as they are built.

Flow: dataclass defaults -> --config FILE.toml -> shortcuts (--epochs ...) -> --set key=value.
Every value is checked in __post_init__ (each section its own fields, Config the rules that
span sections), so a Config that exists is a valid Config. What needs the machine (the device,
the DDP world, an import, the run that loss.teacher names) is checked when training starts, in
training/setup.py check_runtime.

    sections.py  the dataclasses (defaults, meanings, checks): DataConfig ... Config
    loading.py   TOML files, --set and shortcuts -> Config; Config -> TOML and dicts
    checks.py    the shared checks and bounds (finite numbers, names, model size)
"""

from digitlab.config.checks import conv_parameters, mlp_parameters
from digitlab.config.loading import (
    SHORTCUTS,
    apply_overrides,
    build_config,
    check_teacher,
    collect_overrides,
    from_dict,
    load_run_config,
    load_toml,
    parse_set,
    read_toml,
    to_dict,
    to_toml,
    toml_value,
)
from digitlab.config.sections import (
    SECTIONS,
    Config,
    DataConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SchedConfig,
    TrainConfig,
)

__all__ = [
    "Config",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "SECTIONS",
    "SHORTCUTS",
    "SchedConfig",
    "TrainConfig",
    "apply_overrides",
    "build_config",
    "check_teacher",
    "collect_overrides",
    "conv_parameters",
    "from_dict",
    "load_run_config",
    "load_toml",
    "mlp_parameters",
    "parse_set",
    "read_toml",
    "to_dict",
    "to_toml",
    "toml_value",
]
