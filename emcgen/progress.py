"""Progress reporting as a plain callback, so library code never decides how progress looks.

Library stages (dataset loading, calibration, KLD search, emulation) accept
`progress: Callable[[float], None] | None` and call it with the fraction done, 0.0 .. 1.0. The caller
picks the rendering: `make_progress(label)` gives a redrawn bar on an interactive terminal and a few
plain lines otherwise (logs and CI output stay short), and `None` means silence.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[float], None]

BAR_WIDTH = 30
LINE_STEP = 0.25  # non-interactive streams get a line each time another quarter is done


def report(progress: Progress | None, fraction: float) -> None:
    """Call `progress(fraction)` when there is a callback; the fraction is clamped to [0, 1]."""
    if progress is not None:
        progress(min(max(float(fraction), 0.0), 1.0))


def scaled(progress: Progress | None, start: float, end: float) -> Progress | None:
    """A callback that maps a sub-stage's 0..1 onto [start, end] of `progress` (None stays None)."""
    if progress is None:
        return None

    def sub(fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        progress(start + (end - start) * fraction)

    return sub


class _Bar:
    """Redraws `label [#####-----]  42%` in place; ends the line once at 100%."""

    def __init__(self, label: str, stream: TextIO):
        self.label, self.stream = label, stream
        self.shown: int | None = None
        self.finished = False

    def __call__(self, fraction: float) -> None:
        if self.finished:
            return
        fraction = min(max(float(fraction), 0.0), 1.0)
        percent = int(fraction * 100)
        if percent == self.shown:
            return
        self.shown = percent
        filled = int(round(fraction * BAR_WIDTH))
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {percent:3d}%")
        if percent >= 100:
            self.stream.write("\n")
            self.finished = True
        self.stream.flush()


class _Lines:
    """Writes `label: 50%` each time another LINE_STEP is completed (at most 1/LINE_STEP + 1 lines)."""

    def __init__(self, label: str, stream: TextIO):
        self.label, self.stream = label, stream
        self.next_step = 0.0

    def __call__(self, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if fraction + 1e-12 < self.next_step:
            return
        reached = int(fraction / LINE_STEP + 1e-9) * LINE_STEP
        self.stream.write(f"{self.label}: {int(round(reached * 100))}%\n")
        self.stream.flush()
        self.next_step = reached + LINE_STEP


def make_progress(label: str, stream: TextIO | None = None) -> Progress:
    """A progress callback for `label`, drawn on `stream` (default: sys.stderr at call time).

    An interactive terminal (stream.isatty()) gets a bar redrawn in place; anything else (a pipe, a log
    file, CI) gets a plain line at 0%, 25%, 50%, 75% and 100% as those points are passed.
    """
    stream = sys.stderr if stream is None else stream
    try:
        interactive = bool(stream.isatty())
    except (AttributeError, ValueError):
        interactive = False
    return _Bar(label, stream) if interactive else _Lines(label, stream)
