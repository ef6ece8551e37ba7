"""The one clock seam: every timestamp in jupyter-mlops comes from :func:`now`.

Tests move time with :func:`set_clock` instead of sleeping.
"""
from __future__ import annotations

import time
from typing import Callable

_clock: Callable[[], float] = time.time


def now() -> float:
    """Seconds since the epoch, from the current clock."""
    return _clock()


def set_clock(clock: Callable[[], float] | None) -> None:
    """Replace the clock (``None`` restores the system clock)."""
    global _clock
    _clock = clock or time.time


class ManualClock:
    """A clock that only moves when told to: ``clock.advance(3600)``."""

    def __init__(self, start: float = 1_700_000_000.0):
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds
