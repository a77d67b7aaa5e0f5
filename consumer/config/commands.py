"""Each command's settings class, and how a command builds its settings from flags and the environment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, overload

from consumer.config.backfill import BackfillSettings
from consumer.config.declare import (
    _S,
    flag_of,
    specs_of,
)
from consumer.config.gateway import GatewaySettings
from consumer.config.tools import CodecSettings, DemoSettings, EnvironmentSettings, ProduceSettings
from consumer.config.worker import Settings, from_env

if TYPE_CHECKING:
    import argparse


def add_flags(parser: argparse.ArgumentParser, names: Iterable[str] | None = None, cls: type[Any] = Settings) -> None:
    """One flag per setting of `cls` (all of them, or `names`); an absent flag leaves the value None."""
    specs = specs_of(cls)
    for name in specs if names is None else names:
        spec = specs[name]
        default = cls.__dataclass_fields__[name].default
        shown = f"; default {default!r}" if default not in (None, ()) else ""
        parser.add_argument(
            flag_of(name),
            dest=name,
            type=spec.parse,
            choices=spec.choices,
            metavar=spec.metavar,
            help=f"{spec.help} (env {spec.env}{shown})",
            **({"action": "extend"} if spec.repeat else {}),  # type: ignore[arg-type]
        )


@overload
def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Settings: ...
@overload
def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, cls: type[_S]) -> _S: ...
def build(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None, *, cls: type[Any] = Settings) -> Any:
    """A command's settings (the worker's by default): flags win over the environment, which wins
    over defaults; then `cls.validate` raises ConfigError naming every problem."""
    problems: list[str] = []
    values = _given(cli, environ, problems, cls)
    return cls(**values).validate(problems)


def gateway_mapping(cli: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> GatewaySettings:
    """The gateway's settings for a tool that maps deliveries but serves none: as `build`, no secret needed."""
    problems: list[str] = []
    return GatewaySettings(**_given(cli, environ, problems, GatewaySettings)).checked(problems, serving=False)


def _given(cli: Mapping[str, Any], environ: Mapping[str, str] | None, problems: list[str], cls: type[Any]) -> Any:
    values = from_env(environ, problems, cls)
    specs = specs_of(cls)
    values.update({name: value for name, value in cli.items() if name in specs and value is not None})
    return {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}  # repeated flags


# Each command's settings class, for `make readme` (a table per command between
# `<!-- settings:NAME:begin -->` markers; the worker's table keeps `<!-- settings:begin -->`).
COMMANDS: dict[str, type[Any]] = {
    "run": Settings,
    "ingest": GatewaySettings,
    "backfill": BackfillSettings,
    "produce": ProduceSettings,
    "codec": CodecSettings,
    "demo": DemoSettings,
    "environment": EnvironmentSettings,
}
