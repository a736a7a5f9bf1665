"""Activation ranges for quantization: run the float model on calibration data, keep statistics, pick ranges.

    ranges = calibrate(graph, data, method="minmax" | "kld" | "percentile", progress=None, batch_size=64,
                       **method_options)
    ranges["conv1_out"] -> (min, max);  ranges.stats["conv1_out"] -> TensorStats (min, max, absmax, mean,
    std, histogram when the method used one)

Methods (registry: register_method(name, factory), method_names(), get_method(name, **options)):
    minmax      global min / max over the dataset (one pass)                     -> calibration/minmax.py
    kld         TensorRT-style entropy threshold on a 2048-bin |x| histogram      -> calibration/kld.py
                options: bins=2048, levels=None (256 one-sided, 128 signed)
    percentile  (lower, upper) percentiles from an 8192-bin histogram             -> calibration/percentile.py
                options: percentile=99.99, lower=100-percentile, bins=8192
kld and percentile run the data twice (min/max first, histograms second). The driver, memory behaviour
and the min < max guarantee are described in calibration/calibrate.py.
"""
from __future__ import annotations

from . import kld, minmax, percentile
from .calibrate import Ranges, calibrate
from .registry import CalibrationMethod, get_method, method_names, register_method
from .stats import Histogram, TensorStats, widen

register_method("minmax", minmax.factory)
register_method("kld", kld.factory)
register_method("percentile", percentile.factory)

__all__ = ["CalibrationMethod", "Histogram", "Ranges", "TensorStats", "calibrate", "get_method",
           "method_names", "register_method", "widen"]
