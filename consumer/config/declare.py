"""How a setting is declared: its `Spec` (variable, flag, help, parser, check), the checks, and
what is generated from declarations (problems, flag names, the README tables)."""

from __future__ import annotations

import importlib.util
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol, Self, TypeVar

from consumer.errors import ConsumerError

if TYPE_CHECKING:
    pass

Guarantee = Literal["at-least-once", "exactly-once"]
GUARANTEES: tuple[Guarantee, ...] = ("at-least-once", "exactly-once")
LogFormat = Literal["auto", "json", "console"]
LOG_FORMATS: tuple[LogFormat, ...] = ("auto", "json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
AvroEngine = Literal["auto", "fastavro", "cavro"]
AVRO_ENGINES: tuple[AvroEngine, ...] = ("auto", "fastavro", "cavro")
OutputFraming = Literal["single-object", "confluent"]
OUTPUT_FRAMINGS: tuple[OutputFraming, ...] = ("single-object", "confluent")
KAFKA_PREFIX = "KAFKA_"


class ConfigError(ConsumerError, ValueError):
    """A bad setting; the message names it and says what is accepted."""


Check = Callable[[Any], str | None]  # the problem with a value, or None


@dataclass(frozen=True, slots=True)
class Spec:
    """How one setting is given and checked."""

    env: str
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    check: Check | None = None
    metavar: str | None = None
    repeat: bool = False  # the flag may be given more than once; `parse` gives a tuple of items

    @property
    def kind(self) -> str:
        if self.parse is int:
            return "an integer"
        return "a number" if self.parse is float else "text"


def setting(default: Any, spec: Spec) -> Any:
    return field(default=default, metadata={"spec": spec})


def _between(lo: float, hi: float) -> Check:
    return lambda v: None if lo <= v <= hi else f"must be {lo}..{hi}"


def _positive(v: float | None) -> str | None:
    return None if v is None or v > 0 else "must be > 0"


def _not_blank(v: str | None) -> str | None:
    return None if v is None or v.strip() else "is empty"


def _engine_installed(engine: str) -> str | None:
    if engine == "cavro" and importlib.util.find_spec("cavro") is None:
        return "cavro is not installed (it has wheels for CPython < 3.13 only); use auto or fastavro"
    return None


def _topic_list(raw: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def _topic_names(topics: tuple[str, ...]) -> str | None:
    bad = [t for t in topics if not re.fullmatch(r"[A-Za-z0-9._-]{1,249}", t)]
    return f"{', '.join(map(repr, bad))} is not a valid Kafka topic name" if bad else None


def specs_of(cls: type[Any]) -> dict[str, Spec]:
    """Field name -> its Spec, in declaration order, for any class of declared settings."""
    return {f.name: f.metadata["spec"] for f in fields(cls) if "spec" in f.metadata}


def field_problems(values: Any, earlier: Iterable[str] = ()) -> list[str]:
    """What each declared field's choices and check say of its value."""
    problems = list(earlier)
    for name, spec in specs_of(type(values)).items():
        value = getattr(values, name)
        if spec.choices is not None and value not in spec.choices:
            problems.append(f"{flag_of(name)} {value!r}: use one of {', '.join(spec.choices)}")
        elif spec.check is not None and value is not None and (problem := spec.check(value)):
            shown = "" if isinstance(value, tuple) else f" {value!r}"  # the problem names the bad items
            problems.append(f"{flag_of(name)}{shown}: {problem}")
    return problems


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def markdown_table(cls: type[Any]) -> str:
    """A README settings table, generated from the declarations of `cls`."""
    flags = getattr(cls, "FLAGS", True)  # False: settings given by a variable only
    rows = ["| flag | environment | default | what |", "|---|---|---|---|"]
    if not flags:
        rows = ["| environment | default | what |", "|---|---|---|"]
    for name, spec in specs_of(cls).items():
        default = cls.__dataclass_fields__[name].default
        shown = "" if default in (None, ()) else f"`{default}`"
        what = spec.help + (f": {', '.join(spec.choices)}" if spec.choices else "")
        flag = f"| `{flag_of(name)}` " if flags else ""
        rows.append(f"{flag}| `{spec.env}` | {shown} | {what} |")
    return "\n".join(rows)


def _pair_problems(entries: tuple[str, ...]) -> str | None:
    """PROJECT:VALUE entries; the problem names positions only (a value may be a secret)."""
    bad = [str(i) for i, e in enumerate(entries, 1) if not all(part.strip() for part in e.partition(":")[::2])]
    return f"entry {', '.join(bad)} is not PROJECT:VALUE" if bad else None


def _pairs(entries: Iterable[str]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        project, _, value = entry.partition(":")
        out[project.strip()] = (*out.get(project.strip(), ()), value.strip())
    return out


def _file_entries(path: str | None) -> tuple[str, ...]:
    """Entries of a secrets file: one a line (or comma-separated); blank lines and # comments skipped."""
    if not path:
        return ()
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")]
    return tuple(e for line in lines for e in _topic_list(line))


def _readable(path: str | None) -> str | None:
    return None if path is None or os.access(path, os.R_OK) else "cannot be read"


class _Validated(Protocol):
    def validate(self, earlier: Iterable[str] = ...) -> Self: ...


_S = TypeVar("_S", bound=_Validated)


def _checked(values: _S, earlier: Iterable[str]) -> _S:
    """`values` when every declared check passes; else ConfigError naming each problem."""
    problems = field_problems(values, earlier)
    if problems:
        raise ConfigError("invalid configuration:\n  - " + "\n  - ".join(problems))
    return values
