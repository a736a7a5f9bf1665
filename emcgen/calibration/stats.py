"""Per-tensor running statistics that calibration keeps instead of the activations themselves.

A calibration set of a few hundred images produces gigabytes of activations; we keep, per tensor, a
handful of running numbers (count, min, max, sum, sum of squares) and, for methods that need a
distribution, one fixed-range histogram. Both are updated batch by batch and never hold a batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Histogram:
    """Counts of values (or of |values| when `absolute`) in `bins` equal bins over [lo, hi].

    Values outside [lo, hi] land in the first or last bin; a value equal to hi is in the last bin.
    """

    lo: float
    hi: float
    counts: np.ndarray
    absolute: bool = False

    @classmethod
    def empty(cls, lo: float, hi: float, bins: int, absolute: bool = False) -> Histogram:
        if not hi > lo:
            raise ValueError(f"histogram range [{lo}, {hi}] is empty")
        return cls(float(lo), float(hi), np.zeros(int(bins), np.int64), absolute)

    @property
    def bins(self) -> int:
        return int(self.counts.size)

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.bins

    @property
    def edges(self) -> np.ndarray:
        return self.lo + self.width * np.arange(self.bins + 1, dtype=np.float64)

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def add(self, values: np.ndarray) -> None:
        per_unit = self.bins / (self.hi - self.lo)
        for v in _chunks(values):
            v = v.astype(np.float64)
            if self.absolute:
                v = np.abs(v)
            idx = np.floor((v - self.lo) * per_unit)
            idx = np.clip(idx, 0, self.bins - 1).astype(np.intp)
            self.counts += np.bincount(idx, minlength=self.bins)


CHUNK = 1 << 20  # elements converted to float64 at a time: bounds the temporary memory per tensor


def _chunks(values: np.ndarray):
    flat = np.asarray(values).reshape(-1)
    for start in range(0, flat.size, CHUNK):
        yield flat[start:start + CHUNK]


@dataclass
class TensorStats:
    """Running statistics of one activation tensor over the calibration set.

    count/min/max/total/total_sq come from the first pass; `histogram` is filled by a second pass when
    the calibration method asked for one (its range was chosen from the first pass's min/max).
    """

    name: str
    count: int = 0
    min: float = math.inf
    max: float = -math.inf
    total: float = 0.0
    total_sq: float = 0.0
    finite: bool = True
    histogram: Histogram | None = field(default=None, repr=False)

    def update(self, value: np.ndarray) -> None:
        v = np.asarray(value)
        if v.size == 0:
            return
        lo, hi = float(v.min()), float(v.max())
        if not (math.isfinite(lo) and math.isfinite(hi)):
            self.finite = False
            return
        self.count += int(v.size)
        self.min = min(self.min, lo)
        self.max = max(self.max, hi)
        for chunk in _chunks(v):
            c64 = chunk.astype(np.float64)
            self.total += float(c64.sum())
            self.total_sq += float(np.dot(c64, c64))

    @property
    def absmax(self) -> float:
        return max(abs(self.min), abs(self.max))

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def std(self) -> float:
        if not self.count:
            return math.nan
        return math.sqrt(max(self.total_sq / self.count - self.mean ** 2, 0.0))

    def to_json(self) -> dict:
        out = {"count": self.count, "min": self.min, "max": self.max, "mean": self.mean, "std": self.std}
        if self.histogram is not None:
            h = self.histogram
            out["histogram"] = {"lo": h.lo, "hi": h.hi, "absolute": h.absolute, "counts": h.counts.tolist()}
        return out


def widen(lo: float, hi: float) -> tuple[float, float]:
    """Guarantee lo < hi: a degenerate range [v, v] (or reversed) becomes [v, v + 1e-6 * max(1, |v|)].

    Only the upper end moves, so a range that started at 0 (a ReLU that never fired) still starts at 0;
    the step is far above float32 resolution at v and far below any useful quantization step.
    """
    lo, hi = float(lo), float(hi)
    if hi > lo:
        return lo, hi
    return lo, lo + 1e-6 * max(1.0, abs(lo))
