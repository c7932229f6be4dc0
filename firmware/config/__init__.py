"""deskphone's configuration: one YAML file checked against a schema declared in code.

`load_config()` gives a typed, frozen `Config` or raises `ConfigError` listing every problem
as `FILE:LINE: key.path: message`. The schema lives in `schema.py`; `config/default.yaml` is
generated from it.
"""

from firmware.config.checks import split_host_port
from firmware.config.errors import ConfigError, Issue
from firmware.config.fields import Secret
from firmware.config.load import (
    DEFAULT_PATH,
    ENVIRONMENT_VARIABLE,
    default_config_path,
    load_config,
)
from firmware.config.render import render_default
from firmware.config.schema import (
    AccountConfig,
    AudioConfig,
    Config,
    ControlConfig,
    LogConfig,
    SipConfig,
    TimersConfig,
)

__all__ = [
    "DEFAULT_PATH",
    "ENVIRONMENT_VARIABLE",
    "AccountConfig",
    "AudioConfig",
    "Config",
    "ConfigError",
    "ControlConfig",
    "Issue",
    "LogConfig",
    "Secret",
    "SipConfig",
    "TimersConfig",
    "default_config_path",
    "load_config",
    "render_default",
    "split_host_port",
]
