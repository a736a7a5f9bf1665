"""kld: entropy calibration, the threshold that loses the least information (KL divergence).

The method of TensorRT's INT8 calibrator (Migacz, "8-bit Inference with TensorRT", GTC 2017), which
Maix-EMC and NNoM also offer, adapted to the two kinds of ranges our targets quantize:

1. First pass: min and max of every tensor. Second pass: a histogram of |x| with `bins` (default 2048)
   equal bins over [0, max|x|].
   Before the search the count of bin 0 is replaced by the count of bin 1: bin 0 holds the exact zeros
   of ReLU outputs and zero padding, a spike that the merging below smears over a whole group and that
   would otherwise push the search toward small thresholds (NVIDIA's pytorch-quantization does the same;
   a ReLU'd unit Gaussian gets T ~ 3.9 with it and ~ 1.6 without).
2. For each candidate i = levels .. bins (a threshold at the upper edge of bin i-1, T = i * width):
     P = the first i bins, with the counts of every bin beyond added to bin i-1 (clipping saturates);
     Q = the first i bins merged into `levels` nearly equal groups (group k covers bins
         floor(k*i/levels) .. floor((k+1)*i/levels)-1), each group's count spread evenly over the bins
         of the group where P is non-zero (empty bins stay empty);
     KL(P || Q) = sum P log(P / Q) over bins with P > 0, after normalizing both to sum 1. Where Q is 0
     but P is not (only possible in bin i-1 when it holds nothing but clipped outliers), Q is taken as
     1e-12: such thresholds are heavily penalized instead of making the sum infinite.
   The threshold with the smallest divergence wins (ties: the smaller threshold).
3. Levels and the resulting (min, max):
     min >= 0 (ReLU, ReLU6, sigmoid outputs) or max <= 0: one-sided, levels = 256 (uint8 over [0, T])
         and the range is (min, T), respectively (-T, max);
     signed tensors: a symmetric threshold on |x| with levels = 128 (the magnitude levels of int8),
         and the range is (max(min, -T), min(max, T)), i.e. clipped to what was observed.
   `levels=` overrides both defaults. A tensor whose values are all 0 gets (0, 0) (widened later).
"""
from __future__ import annotations

import numpy as np

from ..errors import EmcError
from .registry import CalibrationMethod, positive_int, take_options
from .stats import Histogram, TensorStats

Q_FLOOR = 1e-12


def kl_divergences(counts: np.ndarray, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(candidates i, KL(P_i || Q_i)) for i = levels .. len(counts), as described in the module doc."""
    counts = np.asarray(counts, dtype=np.float64)
    bins = counts.size
    if levels > bins:
        return np.array([bins]), np.array([0.0])
    csum = np.concatenate(([0.0], np.cumsum(counts)))
    total = csum[-1]
    k = np.arange(levels + 1)
    candidates = np.arange(levels, bins + 1)
    divergences = np.empty(candidates.size)
    for j, i in enumerate(candidates):
        p = counts[:i].copy()
        p[-1] += total - csum[i]
        nonzero = p > 0
        edges = (k * i) // levels
        group_total = csum[edges[1:]] - csum[edges[:-1]]
        nz_cum = np.concatenate(([0], np.cumsum(nonzero)))
        group_nonzero = nz_cum[edges[1:]] - nz_cum[edges[:-1]]
        per_bin = np.divide(group_total, group_nonzero, out=np.zeros(levels), where=group_nonzero > 0)
        q = np.repeat(per_bin, np.diff(edges)) * nonzero
        p_sum, q_sum = p.sum(), q.sum()
        if p_sum <= 0 or q_sum <= 0:
            divergences[j] = np.inf
            continue
        pn = p[nonzero] / p_sum
        qn = np.maximum(q[nonzero] / q_sum, Q_FLOOR)
        divergences[j] = float(np.sum(pn * np.log(pn / qn)))
    return candidates, divergences


def kl_threshold_bins(counts: np.ndarray, levels: int) -> int:
    """The number of leading bins i (levels <= i <= bins) whose clipping minimizes KL(P || Q)."""
    candidates, divergences = kl_divergences(counts, levels)
    return int(candidates[int(np.argmin(divergences))])


class KLD(CalibrationMethod):
    name = "kld"
    two_pass = True

    def __init__(self, bins: int = 2048, levels: int | None = None):
        self.bins = bins
        self.levels = levels

    def options(self):
        return {"bins": self.bins, "levels": self.levels}

    def histogram(self, stats: TensorStats) -> Histogram | None:
        if stats.absmax <= 0:
            return None
        return Histogram.empty(0.0, stats.absmax, self.bins, absolute=True)

    def threshold(self, stats: TensorStats) -> float:
        """The |x| threshold T chosen for this tensor (max|x| when there is no histogram)."""
        h = stats.histogram
        if h is None:
            return stats.absmax
        one_sided = stats.min >= 0 or stats.max <= 0
        levels = self.levels or (256 if one_sided else 128)
        counts = h.counts.copy()
        counts[0] = counts[1]
        i = kl_threshold_bins(counts, levels)
        return stats.absmax if i >= h.bins else i * h.width

    def range(self, stats: TensorStats) -> tuple[float, float]:
        t = self.threshold(stats)
        return max(stats.min, -t), min(stats.max, t)


def factory(**options) -> KLD:
    opts = take_options("kld", options, {"bins": 2048, "levels": None})
    bins = positive_int("kld", "bins", opts["bins"], 2)
    levels = opts["levels"]
    if levels is not None:
        levels = positive_int("kld", "levels", levels, 2)
        if levels > bins:
            raise EmcError(f"calibration method 'kld': levels ({levels}) must not exceed bins ({bins})")
    elif bins < 256:
        raise EmcError(f"calibration method 'kld': bins must be >= 256 for the default levels, got {bins}")
    return KLD(bins, levels)
