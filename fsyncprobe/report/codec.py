"""One generic way to turn the report dataclasses into JSON values and back, and to load a saved report.

Every report type is a frozen dataclass whose fields are ints, floats, strings, bools, `None`,
`(str, Enum)` choices, tuples and other such dataclasses. `to_jsonable` walks them; `from_jsonable`
rebuilds them from parsed JSON using the type hints, and says exactly which key is wrong
(`report.benches[0].latency.p99_ns: expected an integer, got 'x'`), so a corrupt report fed to
`model` or `cluster` is a one-line error, not a traceback. Unknown keys are ignored (newer
writers may add fields); missing keys fall back to the field's default when it has one.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from enum import Enum
from typing import Any, TypeVar, get_args, get_origin, get_type_hints

from fsyncprobe.errors import InputError
from fsyncprobe.report.types import Report

T = TypeVar("T")


class DecodeError(ValueError):
    """A JSON document does not have the shape of the dataclass asked for."""


def to_jsonable(obj: Any) -> Any:
    """Dataclasses become dicts (in field order), enums their value, tuples lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, float) and obj != obj:  # NaN is not JSON
        return None
    return obj


_hints_cache: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _hints_cache:
        _hints_cache[cls] = get_type_hints(cls)
    return _hints_cache[cls]


def from_jsonable(cls: type[T], data: Any, where: str = "$") -> T:
    """Rebuild an instance of dataclass `cls` from `data`, or raise DecodeError naming the key."""
    return typing.cast(T, _decode(cls, data, where))


def _decode(tp: Any, data: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if data is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _decode(arg, data, where)
            except DecodeError as exc:
                errors.append(str(exc))
        raise DecodeError(errors[0] if errors else f"{where}: unexpected null")
    if origin is tuple:
        args = get_args(tp)
        if not isinstance(data, list):
            raise DecodeError(f"{where}: expected a list, got {_show(data)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], x, f"{where}[{i}]") for i, x in enumerate(data))
        if len(args) != len(data):
            raise DecodeError(f"{where}: expected {len(args)} items, got {len(data)}")
        return tuple(_decode(a, x, f"{where}[{i}]") for i, (a, x) in enumerate(zip(args, data, strict=True)))
    if origin is dict:
        key_t, val_t = get_args(tp)
        if not isinstance(data, dict):
            raise DecodeError(f"{where}: expected an object, got {_show(data)}")
        return {_decode(key_t, k, where): _decode(val_t, v, f"{where}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise DecodeError(f"{where}: expected an object, got {_show(data)}")
        hints = _hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in data:
                kwargs[f.name] = _decode(hints[f.name], data[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(f"{where}: missing key {f.name!r}")
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(data)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in tp)
            raise DecodeError(f"{where}: {_show(data)} is not one of {allowed}") from None
    if tp is bool:
        if not isinstance(data, bool):
            raise DecodeError(f"{where}: expected true or false, got {_show(data)}")
        return data
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise DecodeError(f"{where}: expected an integer, got {_show(data)}")
        return data
    if tp is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise DecodeError(f"{where}: expected a number, got {_show(data)}")
        return float(data)
    if tp is str:
        if not isinstance(data, str):
            raise DecodeError(f"{where}: expected a string, got {_show(data)}")
        return data
    if tp is type(None):
        if data is not None:
            raise DecodeError(f"{where}: expected null, got {_show(data)}")
        return None
    raise TypeError(f"cannot decode type {tp!r}")  # a programming error, not a user's


def _show(data: Any) -> str:
    text = repr(data)
    return text if len(text) <= 40 else text[:37] + "..."


def load_report(path: str) -> Report:
    """Read a saved report (`model --from-report`, `cluster`); any problem is one InputError line
    naming the file and the key."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a JSON report: {exc}") from None
    try:
        return from_jsonable(Report, data, "report")
    except DecodeError as exc:
        raise InputError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:  # a value the dataclasses reject
        raise InputError(f"{path}: not a valid report: {exc}") from None
