"""Serialisation of the pipeline's records for a broker: msgpack with numpy columns.

Records are dataclasses of scalars and numpy columns (:mod:`trapline.records`,
:class:`trapline.alerts.Alert`). They are encoded as msgpack with extension types:

- a numeric (or fixed-width string) array is ``(dtype.str, shape, raw bytes)``: no
  per-element work, byte order kept in the dtype string;
- an object array (e.g. the ``kind``/``level`` text columns of candidates) is
  ``(shape, list of items)``, items being str, int, float, bool or None;
- a dataclass is ``(type name, {field: value})``; only registered types are decoded
  (:func:`register`), so a message can never name an arbitrary class to import;
- a tuple stays a tuple (e.g. ``ImageRecord.shape``); numpy scalars become Python ones.

``decode(encode(record))`` equals ``record`` field by field, dtypes included.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import numpy as np

from trapline import records

__all__ = ["CodecError", "decode", "encode", "register", "registered"]

_NDARRAY, _OBJARRAY, _DATACLASS, _TUPLE = 1, 2, 3, 4
_TYPES: dict[str, type] = {}


class CodecError(ValueError):
    """A message that cannot be encoded or decoded."""


def register(cls: type) -> type:
    """Allow a dataclass type on the channels (usable as a class decorator)."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    _TYPES[cls.__name__] = cls
    return cls


def registered() -> dict[str, type]:
    """The dataclass types that can travel on the channels, by name."""
    return dict(_TYPES)


for _cls in (records.ImageRecord, records.Measurements, records.SourceStates,
             records.BandStatistics, records.Candidates, records.DepthUpdates,
             records.Forks, records.PrecoveryPoints, records.Stamps,
             records.ImageResult):
    register(_cls)


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            items = [_plain(v) for v in obj.ravel().tolist()]
            return msgpack.ExtType(_OBJARRAY, _pack([list(obj.shape), items]))
        data = np.ascontiguousarray(obj)
        return msgpack.ExtType(_NDARRAY, _pack([data.dtype.str, list(data.shape),
                                                data.tobytes()]))
    if isinstance(obj, np.generic):
        return obj.item()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        name = type(obj).__name__
        if _TYPES.get(name) is not type(obj):
            raise CodecError(f"type {name} is not registered for the channels")
        values = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return msgpack.ExtType(_DATACLASS, _pack([name, values]))
    if isinstance(obj, tuple):
        return msgpack.ExtType(_TUPLE, _pack(list(obj)))
    raise CodecError(f"cannot encode {type(obj).__name__}")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return value
    raise CodecError(f"cannot encode {type(value).__name__} inside an object array")


def _pack(obj: Any) -> bytes:
    # strict_types: tuples reach _default (and stay tuples) instead of becoming lists.
    return msgpack.packb(obj, default=_default, use_bin_type=True, strict_types=True)


def _ext_hook(code: int, data: bytes) -> Any:
    value = _unpack(data)
    if code == _NDARRAY:
        dtype, shape, raw = value
        return np.frombuffer(raw, dtype=np.dtype(dtype)).reshape(shape).copy()
    if code == _OBJARRAY:
        shape, items = value
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out.reshape(shape)
    if code == _DATACLASS:
        name, values = value
        cls = _TYPES.get(name)
        if cls is None:
            raise CodecError(f"unknown record type {name!r}")
        return cls(**values)
    if code == _TUPLE:
        return tuple(value)
    raise CodecError(f"unknown extension type {code}")


def _unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)


def encode(record: Any) -> bytes:
    """Serialise a record (registered dataclass, array, or plain data) to bytes."""
    try:
        return _pack(record)
    except CodecError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise CodecError(f"cannot encode {type(record).__name__}: {exc}") from exc


def decode(data: bytes) -> Any:
    """The record that :func:`encode` serialised."""
    try:
        return _unpack(data)
    except CodecError:
        raise
    except (TypeError, ValueError, msgpack.UnpackException) as exc:
        raise CodecError(f"cannot decode message: {exc}") from exc
