"""Configuration: pydantic models, a YAML loader with ``BRIDGE_`` environment overrides."""

from bridge.config.durations import Duration, format_duration, parse_duration
from bridge.config.loader import ConfigError, load_config, load_model, resolved_view
from bridge.config.models import (
    BridgeConfig,
    CoordinationConfig,
    MetricsConfig,
    PollingConfig,
    ProcessorConfig,
    SourceConfig,
)

__all__ = [
    "BridgeConfig",
    "ConfigError",
    "CoordinationConfig",
    "Duration",
    "MetricsConfig",
    "PollingConfig",
    "ProcessorConfig",
    "SourceConfig",
    "format_duration",
    "load_config",
    "load_model",
    "parse_duration",
    "resolved_view",
]
