"""int8 ADD and MUL with numpy broadcasting (TFLite's broadcast kernels apply the same per-element math)."""
from __future__ import annotations

import numpy as np

from ..fixedpoint import wrap32
from ..quant import AddQuant, MulQuant, multiply_by_quantized_multiplier, requantize


def add(x1, x2, p: AddQuant) -> np.ndarray:
    """Both inputs are shifted left by 20, rescaled to a common scale, summed, then requantized."""
    a = (np.asarray(x1, np.int64) + p.input1_offset) << p.left_shift
    b = (np.asarray(x2, np.int64) + p.input2_offset) << p.left_shift
    raw = wrap32(multiply_by_quantized_multiplier(a, p.input1_multiplier, p.input1_shift)
                 + multiply_by_quantized_multiplier(b, p.input2_multiplier, p.input2_shift))
    return requantize(raw, p.output_multiplier, p.output_shift, p.output_offset, p.act_min, p.act_max)


def mul(x1, x2, p: MulQuant) -> np.ndarray:
    prod = (np.asarray(x1, np.int64) + p.input1_offset) * (np.asarray(x2, np.int64) + p.input2_offset)
    return requantize(wrap32(prod), p.output_multiplier, p.output_shift, p.output_offset,
                      p.act_min, p.act_max)
