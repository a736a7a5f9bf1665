"""int8 SOFTMAX, LOGISTIC, TANH, RELU, RELU6 exactly as TFLM's reference kernels compute them.

Softmax, logistic and tanh run gemmlowp's fixed-point exp / reciprocal (see fixedpoint.py); their
outputs have fixed parameters: softmax and logistic scale 1/256 zero point -128, tanh 1/128 and 0.
"""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ..quant import QMAX, QMIN, LutActQuant, SoftmaxQuant, multiply_by_quantized_multiplier

_ACCUM_INTEGER_BITS = 12


def softmax(x, p: SoftmaxQuant) -> np.ndarray:
    """Softmax over the last axis (arm_softmax_s8 == TFLite reference int8 softmax)."""
    x = np.asarray(x, np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= p.diff_min
    exp_q0 = fp.exp_on_negative_values(multiply_by_quantized_multiplier(diff, p.multiplier, p.shift), 5)
    # Rescale Q0 -> Q12 (the accumulator format) and sum the row
    terms = np.where(valid, fp.rounding_divide_by_pot(exp_q0, _ACCUM_INTEGER_BITS), 0)
    sum_of_exps = fp.wrap32(terms.sum(axis=-1, keepdims=True))
    headroom = fp.count_leading_zeros32(sum_of_exps)
    shifted_sum_minus_one = fp.wrap32((((sum_of_exps & 0xFFFFFFFF) << headroom) & 0xFFFFFFFF) - (1 << 31))
    shifted_scale = fp.one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    exponent = (_ACCUM_INTEGER_BITS - headroom) + 31 - 8
    out = fp.rounding_divide_by_pot(fp.srdhm(shifted_scale, exp_q0), exponent) + QMIN
    return np.where(valid, np.clip(out, QMIN, QMAX), QMIN).astype(np.int8)


def _lut_act(x, p: LutActQuant, fn, out_shift: int, out_offset: int) -> np.ndarray:
    inp = np.asarray(x, np.int64) - p.input_zero_point
    q4 = multiply_by_quantized_multiplier(inp, p.input_multiplier, p.input_left_shift)
    out = np.clip(fp.rounding_divide_by_pot(fn(q4, 4), out_shift) + out_offset, QMIN, QMAX)
    out = np.where(inp <= -p.input_range_radius, QMIN, out)
    return np.where(inp >= p.input_range_radius, QMAX, out).astype(np.int8)


def logistic(x, p: LutActQuant) -> np.ndarray:
    return _lut_act(x, p, fp.logistic, 31 - 8, QMIN)


def tanh(x, p: LutActQuant) -> np.ndarray:
    return _lut_act(x, p, fp.tanh, 31 - 7, 0)


def relu(x, input_zp: int, output_zp: int, multiplier: int, shift: int,
         act_min: int, act_max: int) -> np.ndarray:
    """TFLM RELU int8: requantize from the input to the output parameters, clamp at the output's zero."""
    out = output_zp + multiply_by_quantized_multiplier(np.asarray(x, np.int64) - input_zp, multiplier, shift)
    return np.clip(out, act_min, act_max).astype(np.int8)


def relu6(x, zero: int, six: int) -> np.ndarray:
    """TFLM RELU6 int8: clamp to [q(0), q(6)] in the *input's* parameters, no requantization."""
    return np.clip(np.asarray(x), zero, six).astype(np.int8)
