"""Reading a built-in env's ``config`` (RLlib's ``env_config``): one checked value per key.

Every built-in env declares its keys with the small constructors below (:func:`integer`,
:func:`number`, :func:`flag`, :func:`one_of`, :func:`interval`, :func:`anything`) and reads its
config with :func:`read_env_config`. That way a wrong value (``horizon: ten``, ``dt: -1``,
``observe_landmarks: "yes"``) or a misspelt key (``horizn``) fails when the env is created, with
a message that names the env, the key, the value and what is allowed, instead of a bare
``int()`` error or a key that is silently ignored.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


class EnvConfigError(ValueError):
    """A built-in env's config holds an unknown key or a value outside the allowed ones."""


class _Invalid(Exception):
    """Raised by a key's check; :func:`read_env_config` turns it into an ``EnvConfigError``."""


@dataclass(frozen=True)
class Key:
    """One config key: its default, what is allowed (for messages) and the check.

    ``check`` returns the value normalised to its type (``int``, ``float``, ...) or raises
    ``_Invalid``. ``None`` is allowed only when ``optional`` is set; it then stands for "not
    given" and is passed to the env as is.
    """

    default: Any
    allowed: str
    check: Callable[[Any], Any]
    optional: bool = False


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _as_int(value: Any) -> int:
    """An integer; a float only if it is whole (Tune's ``quniform`` samples 10.0, not 10)."""
    if _is_bool(value):
        raise _Invalid
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise _Invalid


def _as_float(value: Any) -> float:
    """A finite real number (``int`` or ``float``, numpy scalars included)."""
    if _is_bool(value) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _Invalid
    return float(value)


def _bounds_text(minimum: float | None, maximum: float | None, exclusive_minimum: bool) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum:g}, {maximum:g}]"
    if minimum is not None:
        return f" {'>' if exclusive_minimum else '>='} {minimum:g}"
    if maximum is not None:
        return f" <= {maximum:g}"
    return ""


def _in_bounds(
    value: float, minimum: float | None, maximum: float | None, exclusive_minimum: bool
) -> bool:
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        return False
    return maximum is None or value <= maximum


def integer(
    default: int | None,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    optional: bool = False,
) -> Key:
    """An integer key (not a bool; a whole float such as 10.0 counts), in ``[minimum, maximum]``."""

    def check(value: Any) -> int:
        number = _as_int(value)
        if not _in_bounds(number, minimum, maximum, False):
            raise _Invalid
        return number

    return Key(default, "an integer" + _bounds_text(minimum, maximum, False), check, optional)


def number(
    default: float | None,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive_minimum: bool = False,
    optional: bool = False,
) -> Key:
    """A finite real key (not a bool) in ``[minimum, maximum]`` (``> minimum`` if exclusive)."""

    def check(value: Any) -> float:
        real = _as_float(value)
        if not _in_bounds(real, minimum, maximum, exclusive_minimum):
            raise _Invalid
        return real

    allowed = "a finite number" + _bounds_text(minimum, maximum, exclusive_minimum)
    return Key(default, allowed, check, optional)


def flag(default: bool) -> Key:
    """A boolean key: ``true`` or ``false`` only (no 0/1, no strings)."""

    def check(value: Any) -> bool:
        if not _is_bool(value):
            raise _Invalid
        return bool(value)

    return Key(default, "true or false", check)


def one_of(default: Any, choices: Sequence[Any], *, optional: bool = False) -> Key:
    """A key that takes one of ``choices`` (e.g. a render mode)."""
    choices = tuple(choices)

    def check(value: Any) -> Any:
        if _is_bool(value) or not isinstance(value, (str, numbers.Number)) or value not in choices:
            raise _Invalid
        return value

    allowed = "one of " + ", ".join(repr(c) for c in choices)
    return Key(default, allowed + (" or null" if optional else ""), check, optional)


def interval(
    default: tuple[float, float],
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    exclusive_minimum: bool = False,
) -> Key:
    """A ``[low, high]`` pair of finite numbers, ``low <= high``, both within the bounds."""

    def check(value: Any) -> tuple[float, float]:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(
            value, (Sequence, np.ndarray)
        ):
            raise _Invalid
        if len(value) != 2:
            raise _Invalid
        low, high = _as_float(value[0]), _as_float(value[1])
        if low > high or not all(
            _in_bounds(v, minimum, maximum, exclusive_minimum) for v in (low, high)
        ):
            raise _Invalid
        return low, high

    bounds = _bounds_text(minimum, maximum, exclusive_minimum)
    allowed = f"a pair [low, high] of numbers{bounds} with low <= high"
    return Key(default, allowed, check)


def anything(default: Any = None, allowed: str = "any value") -> Key:
    """A key checked elsewhere (e.g. ``task``, which the env's task space validates)."""
    return Key(default, allowed, lambda value: value, optional=True)


def seed_key() -> Key:
    """The ``seed`` of an env's own random generator: a non-negative integer or null."""
    return integer(None, minimum=0, optional=True)


def task_key() -> Key:
    """The initial ``task`` (a mapping of task fields), validated by the env's task space."""
    return anything(None, "a task mapping such as {goal: [0.1, 0.2]}")


def read_env_config(
    env_name: str, config: Mapping[str, Any] | None, keys: Mapping[str, Key]
) -> dict[str, Any]:
    """Checks ``config`` against ``keys``; returns every key's value (its default if not given).

    Raises ``EnvConfigError`` (a ``ValueError``) naming the env, the key, the value and the
    allowed values; an unknown key gets the nearest known key as a hint and the list of known
    keys, so a typo never silently falls back to a default.
    """
    given = dict(config or {})  # RLlib passes an EnvContext, a dict subclass.
    known = sorted(keys)
    for key in given:
        if key not in keys:
            close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise EnvConfigError(
                f"{env_name}: unknown env_config key {key!r}.{hint} Known keys: {', '.join(known)}."
            )
    values: dict[str, Any] = {}
    for key, spec in keys.items():
        if key not in given:
            values[key] = spec.default
            continue
        value = given[key]
        if value is None and spec.optional:
            values[key] = None
            continue
        try:
            values[key] = spec.check(value)
        except _Invalid:
            raise EnvConfigError(
                f"{env_name}: env_config key {key!r} must be {spec.allowed}, got {value!r}."
            ) from None
    return values


def task_range(values: Mapping[str, Any], key: str) -> tuple[float, float]:
    """The task range of ``key``: ``values[key]`` fixes it (low = high), else ``key + "_range"``."""
    if values[key] is not None:
        return values[key], values[key]
    return values[f"{key}_range"]
