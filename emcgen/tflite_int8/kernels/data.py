"""int8 data movement and conversions: PAD, CONCATENATION, QUANTIZE, DEQUANTIZE.

CONCATENATION: TFLite's int8 kernel requires every input to share the output's scale and zero point.
When they differ (a graph emcgen quantized itself may have that), each such input is first requantized
exactly as a TFLite QUANTIZE int8->int8 op would do it, so a .tflite writer can emit QUANTIZE +
CONCATENATION and TFLM computes the same bytes.
"""
from __future__ import annotations

import numpy as np

from ...ops._common import pad_nhwc
from ..quant import QMAX, QMIN, dequantize, multiply_by_quantized_multiplier, quantize_float

__all__ = ["concatenation", "dequantize", "pad", "quantize_float", "requantize_int8"]


def pad(x, pads, value: int) -> np.ndarray:
    """PAD/PADV2 of H and W with an int8 value (the output zero point for PAD)."""
    return pad_nhwc(np.asarray(x, np.int8), pads, np.int8(value))


def requantize_int8(x, input_zp: int, output_zp: int, multiplier: int, shift: int) -> np.ndarray:
    """QUANTIZE int8 -> int8 (TFLite Requantize): (x - zp_in) * M + zp_out, clamped."""
    out = multiply_by_quantized_multiplier(np.asarray(x, np.int64) - input_zp, multiplier, shift) + output_zp
    return np.clip(out, QMIN, QMAX).astype(np.int8)


def concatenation(xs, axis: int) -> np.ndarray:
    return np.concatenate([np.asarray(x, np.int8) for x in xs], axis=axis)
