"""Shared by the benchmarks: wall-clock accounting of the calls an algorithm makes."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable


def timed_into(totals: dict[str, float], name: str, fn: Callable) -> Callable:
    """Wraps ``fn`` so that every call adds its wall-clock seconds to ``totals[name]``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start

    return wrapper
