"""Typed parameter sections: a dataclass per section, filled from params.yaml with checks.

Each attack, defense, model and sequela attack declares its knobs as a frozen dataclass with the
defaults of its paper. :func:`parse_section` turns a params.yaml mapping into that dataclass,
rejecting unknown keys and wrong types with an error that names the full key, and then calls the
dataclass's ``check`` method (if any) for range checks. This keeps validation next to the knob.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar

from backdoorlab.errors import ConfigError

S = TypeVar("S")


def require(condition: bool, key: str, message: str) -> None:
    """Raise a ConfigError naming ``key`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, options[0], key)
    if origin in (list, tuple):
        require(isinstance(value, (list, tuple)), key, f"expected a list, got {value!r}")
        (inner, *_) = typing.get_args(annotation) or (Any,)
        items = [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is typing.Literal:
        allowed = typing.get_args(annotation)
        require(value in allowed, key, f"must be one of {list(allowed)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(annotation):
        return parse_section(annotation, value, key)  # type: ignore[arg-type]
    if annotation is bool:
        require(isinstance(value, bool), key, f"expected true/false, got {value!r}")
        return value
    if annotation is int:
        require(isinstance(value, int) and not isinstance(value, bool), key,
                f"expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML reads 5e-4 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        require(isinstance(value, (int, float)) and not isinstance(value, bool), key,
                f"expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        require(isinstance(value, str), key, f"expected a string, got {value!r}")
        return value
    return value


def parse_section(cls: type[S], mapping: Mapping[str, Any] | None, key: str,
                  ignore: tuple[str, ...] = ()) -> S:
    """Build dataclass ``cls`` from ``mapping`` (the params.yaml section at ``key``)."""
    mapping = dict(mapping or {})
    require(isinstance(mapping, dict), key, "expected a mapping")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(mapping) - set(fields) - set(ignore))
    require(not unknown, f"{key}.{unknown[0]}" if unknown else key,
            f"unknown parameter (known: {', '.join(sorted(fields))})")
    values = {}
    for name, field in fields.items():
        if name in mapping:
            values[name] = _coerce(mapping[name], hints[name], f"{key}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{key}.{name}: missing required parameter")
    section = cls(**values)
    check = getattr(section, "check", None)
    if check is not None:
        check(key)
    return section


def check_positive(section: object, key: str, *names: str) -> None:
    """Shared range check: every named field must be > 0."""
    for name in names:
        value = getattr(section, name)
        require(value > 0, f"{key}.{name}", f"must be > 0, got {value!r}")


def check_non_negative(section: object, key: str, *names: str) -> None:
    """Shared range check: every named field must be >= 0."""
    for name in names:
        value = getattr(section, name)
        require(value >= 0, f"{key}.{name}", f"must be >= 0, got {value!r}")
