"""percentile: clip the rarest values; the range is (lower percentile, upper percentile) of each tensor.

Defaults: percentile=99.99 (upper) and lower = 100 - percentile (0.01). We cannot keep every value, so
the percentiles come from a histogram with `bins` (default 8192) equal bins over [min, max] filled in a
second pass. The bin where the cumulative count reaches q% of all values holds the exact percentile;
the range is rounded outwards to whole bins: the lower end is that bin's lower edge, the upper end its
upper edge. So never more than the asked share is clipped on either side (a ReLU output whose lowest
0.01% are zeros keeps 0 exactly), and each end is within one bin width, (max - min) / bins, of what
np.percentile gives (up to the gap between two adjacent sorted values, from np.percentile's own
interpolation between order statistics).
"""
from __future__ import annotations

import numpy as np

from ..errors import EmcError
from .registry import CalibrationMethod, positive_int, take_options
from .stats import Histogram, TensorStats


def histogram_percentile(hist: Histogram, q: float, rounding: str = "interpolate") -> float:
    """The q-th percentile (0..100) of the values counted in `hist`.

    rounding: "down" -> lower edge of the bin holding it, "up" -> its upper edge, "interpolate" ->
    linear inside that bin (as if the bin's values were spread evenly over it).
    """
    counts = hist.counts.astype(np.float64)
    cum = np.cumsum(counts)
    total = cum[-1]
    if total <= 0:
        raise ValueError("empty histogram")
    target = total * q / 100.0
    k = min(int(np.searchsorted(cum, target, side="left")), hist.bins - 1)
    if rounding == "down":
        inside = 0.0
    elif rounding == "up":
        inside = 1.0
    elif rounding == "interpolate":
        before = cum[k] - counts[k]
        inside = 0.0 if counts[k] == 0 else min(max((target - before) / counts[k], 0.0), 1.0)
    else:
        raise ValueError(f"rounding {rounding!r}")
    return hist.lo + (k + inside) * hist.width


class Percentile(CalibrationMethod):
    name = "percentile"
    two_pass = True

    def __init__(self, percentile: float = 99.99, lower: float | None = None, bins: int = 8192):
        self.upper = float(percentile)
        self.lower = 100.0 - self.upper if lower is None else float(lower)
        self.bins = bins

    def options(self):
        return {"percentile": self.upper, "lower": self.lower, "bins": self.bins}

    def histogram(self, stats: TensorStats) -> Histogram | None:
        if not stats.max > stats.min:
            return None
        return Histogram.empty(stats.min, stats.max, self.bins)

    def range(self, stats: TensorStats) -> tuple[float, float]:
        h = stats.histogram
        if h is None:
            return stats.min, stats.max
        lo = stats.min if self.lower <= 0 else histogram_percentile(h, self.lower, "down")
        hi = stats.max if self.upper >= 100 else histogram_percentile(h, self.upper, "up")
        return max(lo, stats.min), min(hi, stats.max)


def _number(option: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise EmcError(f"calibration method 'percentile': option {option} must be a number, got {value!r}")
    return float(value)


def factory(**options) -> Percentile:
    opts = take_options("percentile", options, {"percentile": 99.99, "lower": None, "bins": 8192})
    upper = _number("percentile", opts["percentile"])
    lower = 100.0 - upper if opts["lower"] is None else _number("lower", opts["lower"])
    if not (50.0 < upper <= 100.0):
        raise EmcError(f"calibration method 'percentile': percentile must be in (50, 100], got {upper}")
    if not (0.0 <= lower < upper):
        raise EmcError(f"calibration method 'percentile': lower must be in [0, percentile), got {lower}")
    bins = positive_int("percentile", "bins", opts["bins"], 2)
    return Percentile(upper, lower, bins)
