"""Dataclass configs loaded from YAML, with CLI flags as overrides of the same fields.

Every job has one dataclass; a YAML file under version control fills it; a flag given on the command line
overrides the field of the same name (dotted names reach nested dataclasses: ``train.lr``).
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
    unknown = sorted(set(data) - set(types_))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} for {cls.__name__}; valid keys: {sorted(types_)}")
    return cls(**{k: _coerce(v, types_[k], f"{where}.{k}") for k, v in data.items()})


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
        data = yaml.safe_load(resolve_config_path(path).read_text()) or {}
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


def add_config_flags(parser, cls, skip: tuple[str, ...] = ()) -> None:
    """One flag per scalar dataclass field (``--field-name``), defaulting to None so the YAML value stands."""
    import argparse

    parser.add_argument("--config", help="YAML config file (a path, or a name under fas/configs); flags override it")
    types_ = _field_types(cls)
    for field in dataclasses.fields(cls):
        if field.name in skip or typing.get_origin(types_[field.name]) in (list, dict, tuple):
            continue
        flag = "--" + field.name.replace("_", "-")
        if types_[field.name] is bool:
            parser.add_argument(flag, dest=field.name, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, dest=field.name, default=None, help=f"(config: {field.name})")


def config_from_args(cls: type[T], args, positional: Mapping[str, Any] | None = None, default: str | None = None) -> T:
    """The config named by ``--config`` (or ``default``), with every flag given on the command line applied."""
    overrides = {f.name: getattr(args, f.name, None) for f in dataclasses.fields(cls)}
    overrides.update({k: v for k, v in (positional or {}).items() if v is not None})
    return load_config(cls, getattr(args, "config", None) or default, overrides)
