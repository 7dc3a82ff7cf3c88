"""Dataclass configs loaded from YAML, with CLI flags as overrides of the same fields.

Every job has one dataclass; a YAML file under version control fills it; a flag given on the command line
overrides the field of the same name (dotted names reach nested dataclasses: ``engine.num_workers``).

A nested dataclass field marked ``flat(...)`` (the engine section of every method config) may also be written
flat: ``num_workers: 2`` at the top level of a YAML file, or ``--num-workers 2`` on the command line, fills
``engine.num_workers``; a plain string for the section fills its ``shorthand`` field (``engine: ddp``).
A nested section given in part keeps the defaults of the field it fills, not of its class.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

T = TypeVar("T")
CONFIG_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A config file or override names a field that does not exist or has the wrong type."""


def flat(factory, shorthand: str | None = None):
    """A nested dataclass field whose own fields may also be given at the top level (see the module docstring)."""
    return dataclasses.field(default_factory=factory, metadata={"flat": True, "shorthand": shorthand})


def _flat_fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("flat")}


def _hoist(cls, data: Mapping[str, Any]) -> dict:
    """Move top-level keys of flat sections into them, and a section's string shorthand into its field."""
    data, own = dict(data), {f.name for f in dataclasses.fields(cls)}
    for name, field in _flat_fields(cls).items():
        hint = _field_types(cls)[name]
        section = data.get(name, {})
        if isinstance(section, str) and field.metadata.get("shorthand"):
            section = {field.metadata["shorthand"]: section}
        section = dict(section) if isinstance(section, Mapping) else section
        for key in [k for k in data if k not in own and k in _field_types(hint)]:
            section[key] = data.pop(key)
        data[name] = section
    return data


def _field_types(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping for {hint.__name__}, got {value!r}")
        return from_dict(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none")):
            return None  # `--pretrained null` on a command line means None, as in YAML
        return _coerce(value, args[0], where) if len(args) == 1 else value
    if hint is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, str):
        return int(value)
    if hint is bool and isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{where}: expected a boolean, got {value!r}")
        return value.lower() in ("true", "1", "yes")
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return origin(_coerce(v, item, where) if item is not Any else v for v in value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a mapping; unknown keys are an error naming the valid ones."""
    types_ = _field_types(cls)
    data = _hoist(cls, data)
    unknown = sorted(set(data) - set(types_))
    if unknown:
        valid = sorted(set(types_) | {k for n in _flat_fields(cls) for k in _field_types(types_[n])})
        raise ConfigError(f"{where}: unknown keys {unknown} for {cls.__name__}; valid keys: {valid}")
    defaults = {f.name: f.default_factory() for f in dataclasses.fields(cls)
                if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(types_[f.name])}
    out = {}
    for key, value in data.items():
        if key in defaults and isinstance(value, Mapping):  # a partial section keeps the field's own defaults
            value = {**dataclasses.asdict(defaults[key]), **value}
        out[key] = _coerce(value, types_[key], f"{where}.{key}")
    return cls(**out)


def replace(cfg: T, **changes) -> T:
    """``dataclasses.replace`` that also takes the fields of flat sections by their own names (``num_workers=2``)."""
    return from_dict(type(cfg), {**to_dict(cfg), **changes}, type(cfg).__name__)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _set_dotted(data: dict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        data = data.setdefault(p, {})
    data[leaf] = value


def load_config(cls: type[T], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> T:
    """Load ``cls`` from YAML at ``path`` (a file, or a name under fas/configs), then apply non-None overrides."""
    data: dict = {}
    if path is not None:
        data = _hoist(cls, yaml.safe_load(resolve_config_path(path).read_text()) or {})
    for key, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(data, key, value)
    return from_dict(cls, data, str(path or cls.__name__))


def resolve_config_path(path: str | Path) -> Path:
    p = Path(path)
    if p.exists():
        return p
    packaged = CONFIG_DIR / p
    if packaged.exists():
        return packaged
    raise ConfigError(f"config file {path} not found (looked in the working directory and in {CONFIG_DIR})")


def save_config(cfg, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _scalar_fields(cls, prefix: str = ""):
    """(dest, flag names, type) of every scalar field; flat sections' fields under their own names."""
    types_ = _field_types(cls)
    for field in dataclasses.fields(cls):
        hint = types_[field.name]
        if field.metadata.get("flat"):
            yield from _scalar_fields(hint, prefix=f"{prefix}{field.name}.")
            shorthand = field.metadata.get("shorthand")
            if shorthand:  # --engine ddp: the section's shorthand, as in YAML
                yield f"{prefix}{field.name}.{shorthand}", (field.name,), str
        elif typing.get_origin(hint) not in (list, dict, tuple) and not dataclasses.is_dataclass(hint):
            yield f"{prefix}{field.name}", (field.name,), hint


def add_config_flags(parser, cls, skip: tuple[str, ...] = ()) -> None:
    """One flag per scalar dataclass field (``--field-name``), defaulting to None so the YAML value stands."""
    import argparse

    parser.add_argument("--config", help="YAML config file (a path, or a name under fas/configs); flags override it")
    for dest, names, hint in _scalar_fields(cls):
        if dest.rsplit(".", 1)[-1] in skip:
            continue
        flags = ["--" + n.replace("_", "-") for n in names]
        if hint is bool:
            parser.add_argument(*flags, dest=dest, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(*flags, dest=dest, default=None, help=f"(config: {dest})")


def config_from_args(cls: type[T], args, positional: Mapping[str, Any] | None = None, default: str | None = None) -> T:
    """The config named by ``--config`` (or ``default``), with every flag given on the command line applied."""
    given = vars(args)
    overrides = {dest: given.get(dest) for dest, _, _ in _scalar_fields(cls)}
    overrides.update({k: v for k, v in (positional or {}).items() if v is not None})
    return load_config(cls, given.get("config") or default, overrides)
