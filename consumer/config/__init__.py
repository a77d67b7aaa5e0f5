"""The settings of every command, each declared once (flag, variable, help, parser, check).

declare.py says how a setting is declared and what is generated from declarations; worker.py,
gateway.py, backfill.py and tools.py hold each command's settings; commands.py builds them from
flags and the environment. Import from here.
"""

from __future__ import annotations

from consumer.config.backfill import BackfillSettings, iso_instant
from consumer.config.commands import COMMANDS, add_flags, build, gateway_mapping
from consumer.config.declare import (
    AVRO_ENGINES,
    GUARANTEES,
    KAFKA_PREFIX,
    LOG_FORMATS,
    LOG_LEVELS,
    OUTPUT_FRAMINGS,
    AvroEngine,
    Check,
    ConfigError,
    Guarantee,
    LogFormat,
    OutputFraming,
    Spec,
    field_problems,
    flag_of,
    markdown_table,
    setting,
    specs_of,
)
from consumer.config.gateway import GatewaySettings
from consumer.config.tools import CodecSettings, DemoSettings, EnvironmentSettings, ProduceSettings, environment
from consumer.config.worker import RETRY_BUDGET_MS, SPECS, Settings, from_env, kafka_from_env, resolved, shared

__all__ = [
    "AVRO_ENGINES",
    "COMMANDS",
    "GUARANTEES",
    "KAFKA_PREFIX",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "OUTPUT_FRAMINGS",
    "RETRY_BUDGET_MS",
    "SPECS",
    "AvroEngine",
    "BackfillSettings",
    "Check",
    "CodecSettings",
    "ConfigError",
    "DemoSettings",
    "EnvironmentSettings",
    "GatewaySettings",
    "Guarantee",
    "LogFormat",
    "OutputFraming",
    "ProduceSettings",
    "Settings",
    "Spec",
    "add_flags",
    "build",
    "environment",
    "field_problems",
    "flag_of",
    "from_env",
    "gateway_mapping",
    "iso_instant",
    "kafka_from_env",
    "markdown_table",
    "resolved",
    "setting",
    "shared",
    "specs_of",
]
