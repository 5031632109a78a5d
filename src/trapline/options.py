"""Options declared once: default, help, check and command-line flag in one field.

A settings dataclass declares each option with :func:`option`::

    @dataclass
    class Section:
        grid: int = option(32, "background and rms cell size (pixels)", check=at_least(4))

The type is the field's annotation and its default's type (what values are coerced to);
the help, the check and, for options that are also flags, the flag's name, group and
metavar live in the field's metadata. Everything else is derived from there: the
pipeline's ``trapline config --defaults`` and validation (:mod:`trapline.pipeline.config`),
the ``trapline simulate`` and ``trapline listen`` flags (:func:`add_flags`,
:func:`flag_values`). Rules between two options stay in the dataclass's own validation.

A check is a small named predicate that returns what is wrong with a value (a phrase
such as ``"must be > 0"``), or ``None`` when the value is good; ``None`` values (an
option left to be worked out) are never checked.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
from collections.abc import Callable
from typing import Any

from trapline.errors import ConfigError

Check = Callable[[Any], "str | None"]


def rule(ok: Callable[[Any], bool], problem: str) -> Check:
    """A check from a predicate and the phrase that says what a failing value must be."""

    def check(value: Any) -> str | None:
        return None if ok(value) else problem

    return check


positive = rule(lambda v: v > 0, "must be > 0")
non_negative = rule(lambda v: v >= 0, "must be >= 0")


def at_least(n: float, unit: str = "") -> Check:
    """Values of ``n`` (in ``unit``, for the message) or more."""
    return rule(lambda v: v >= n, f"must be at least {n}" + (f" {unit}" if unit else ""))


def power_of_two_or_zero(maximum: int) -> Check:
    """0 or a power of two up to ``maximum`` (HEALPix nside values)."""
    return rule(lambda v: v == 0 or (v > 0 and v & (v - 1) == 0 and v <= maximum),
                f"must be 0 or a power of two up to {maximum}")


def one_of(*choices: Any) -> Check:
    """One of ``choices``."""
    names = [repr(c) for c in choices]
    text = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return rule(lambda v: v in choices, f"must be {text}")


def option(default: Any, help: str, check: Check | None = None,
           choices: tuple | None = None, *, group: str | None = None,
           flag: str | None = None, metavar: str | tuple[str, ...] | None = None,
           type: Callable[[str], Any] | None = None, nargs: int | str | None = None,
           scale: float = 1.0, zero: str | None = None, unset: str | None = None) -> Any:
    """A dataclass field: the option's default (copied for each instance when it is a
    list or dict), its help and its check; ``choices`` adds a :func:`one_of` check.

    Options with a ``group`` are also command-line flags (:func:`add_flags`):
    ``--flag`` (default: the name with dashes) takes the value in units of ``scale``
    (e.g. MHz for a field in Hz: ``scale=1e6``); ``metavar``, ``type`` (default: the
    default's type, or its items' for a tuple) and ``nargs`` (default: one value, or
    ``+`` for a tuple) are argparse's. The help tells what 0 means (``zero``) and, for
    a ``None`` default, what is done instead (``unset``).
    """
    if choices is not None:
        check = one_of(*choices)
    metadata = {
        "help": help, "check": check, "choices": choices, "group": group, "flag": flag,
        "metavar": metavar, "type": type, "nargs": nargs, "scale": scale, "zero": zero,
        "unset": unset,
    }
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def options(cls: Any) -> list[dataclasses.Field]:
    """The fields of a settings dataclass (or instance) declared with :func:`option`."""
    return [f for f in dataclasses.fields(cls) if "help" in f.metadata]


def check_options(obj: Any, where: Callable[[str], str]) -> None:
    """Run every option's check on ``obj``; the first failure raises
    ``ConfigError(f"{where(name)} {problem}")``."""
    for f in options(obj):
        check = f.metadata["check"]
        value = getattr(obj, f.name)
        if check is not None and value is not None:
            problem = check(value)
            if problem:
                raise ConfigError(f"{where(f.name)} {problem}")


def need(ok: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``ok``: a rule between options."""
    if not ok:
        raise ConfigError(message)


def _flag(f: dataclasses.Field) -> str:
    return f.metadata["flag"] or f.name.replace("_", "-")


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: Any,
              group: str) -> None:
    """The options of ``cls`` in ``group`` as flags, with their defaults and help."""
    for f in options(cls):
        m = f.metadata
        if m["group"] != group:
            continue
        name = "--" + _flag(f)
        if isinstance(f.default, bool):
            parser.add_argument(name, action="store_true", help=m["help"])
            continue
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        items = isinstance(default, tuple)
        if items:
            default = [v / m["scale"] if m["scale"] != 1.0 else v for v in default]
        elif default is not None and m["scale"] != 1.0:
            default = default / m["scale"]
        sample = default[0] if items else default
        kind = m["type"] or (None if isinstance(sample, str) else type(sample))
        if m["unset"] is not None and default is None:
            shown = f"default {m['unset']}"
        else:
            shown = "default %(default)s" + (f"; 0: {m['zero']}" if m["zero"] else "")
        parser.add_argument(
            name, type=kind, default=default, metavar=m["metavar"],
            nargs=m["nargs"] or ("+" if items else None), choices=m["choices"],
            help=f"{m['help']} ({shown})",
        )


def flag_values(args: argparse.Namespace, cls: Any, group: str | None = None) -> dict:
    """The options parsed by :func:`add_flags` (of one ``group``, or of all), in the
    field's units and type, as keywords for ``cls``."""
    values = {}
    for f in options(cls):
        m = f.metadata
        if m["group"] is None or group not in (None, m["group"]):
            continue
        value = getattr(args, _flag(f).replace("-", "_"))
        if isinstance(value, list):
            value = tuple(v * m["scale"] if m["scale"] != 1.0 else v for v in value)
        elif value is not None and m["scale"] != 1.0:
            value = value * m["scale"]
        values[f.name] = value
    return values
