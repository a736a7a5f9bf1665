"""minmax: the range is the smallest and largest value seen over the whole calibration set.

One pass, no histogram. This is what the seed (Maix-EMC quant_func='minmax') did, except that it is
the global min/max over all samples (no moving average), so the order of the samples does not matter.
"""
from __future__ import annotations

from .registry import CalibrationMethod, take_options
from .stats import TensorStats


class MinMax(CalibrationMethod):
    name = "minmax"

    def range(self, stats: TensorStats) -> tuple[float, float]:
        return stats.min, stats.max


def factory(**options) -> MinMax:
    take_options("minmax", options, {})
    return MinMax()
