"""int8 pooling and reductions: MAX_POOL_2D, AVERAGE_POOL_2D, MEAN (TFLite reference semantics).

Pools never requantize (TFLite requires equal input/output parameters); cells outside the input are
skipped, which the code expresses by padding and counting only real cells. MEAN follows TFLM's
QuantizedMeanOrSum: an int32 sum, the 1/count folded into the multiplier, then one requantization.
"""
from __future__ import annotations

import numpy as np

from ...ops._common import pad_nhwc, windows
from ..fixedpoint import wrap32
from ..quant import QMAX, QMIN, multiply_by_quantized_multiplier


def max_pool2d(x, kernel, stride, pads=(0, 0, 0, 0), act_min: int = QMIN, act_max: int = QMAX) -> np.ndarray:
    xp = pad_nhwc(x.astype(np.int16), pads, -32768)
    out = windows(xp, kernel, stride).max(axis=(3, 4))
    return np.clip(out, act_min, act_max).astype(np.int8)


def _window_sums(x, kernel, stride, pads):
    total = windows(pad_nhwc(x.astype(np.int32), pads, 0), kernel, stride).sum(axis=(3, 4), dtype=np.int64)
    ones = np.ones((1,) + x.shape[1:3] + (1,), np.int32)
    count = windows(pad_nhwc(ones, pads, 0), kernel, stride).sum(axis=(3, 4), dtype=np.int64)
    return total, count


def avg_pool2d(x, kernel, stride, pads=(0, 0, 0, 0), act_min: int = QMIN, act_max: int = QMAX) -> np.ndarray:
    """Mean of the real cells of each window, rounded half away from zero with C's truncating division."""
    total, count = _window_sums(x, kernel, stride, pads)
    half = count // 2
    avg = np.where(total > 0, (total + half) // count, -((half - total) // count))
    return np.clip(avg, act_min, act_max).astype(np.int8)


def mean(x, axes, keepdims: bool, input_zp: int, output_zp: int, multiplier: int, shift: int) -> np.ndarray:
    """MEAN int8 over `axes`; multiplier/shift quantize s_in / s_out (quant.requantize_params)."""
    axes = tuple(sorted(a % x.ndim for a in axes))
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    total = wrap32(x.astype(np.int64).sum(axis=axes, keepdims=keepdims))
    if count == 0:
        return np.zeros(total.shape, np.int8)
    n_shift = min(count.bit_length() - 1, 32, 31 + int(shift))
    multiplier = (int(multiplier) << n_shift) // count
    shift = int(shift) - n_shift
    out = multiply_by_quantized_multiplier(wrap32(total - int(input_zp) * count), multiplier, shift)
    return np.clip(out + int(output_zp), QMIN, QMAX).astype(np.int8)
