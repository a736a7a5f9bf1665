"""TFLite int8 quantization rules: multipliers, requantization, activation ranges, op parameters.

Everything here reproduces what TFLite / TFLM compute in their Prepare functions, to the bit:
- scales are the float32 values stored in the .tflite; effective scales are formed in double from them
  (for per-tensor FULLY_CONNECTED too: the TFLM wheel agrees with the double product on accumulators
  where a float32 product would round differently, tests/tflite/test_tflite_ops_vs_tflm.py);
- QuantizeMultiplier uses frexp and rounds half away from zero; positive shift = left shift;
- requantization is the default double rounding (SaturatingRoundingDoublingHighMul, then a rounding
  right shift), not TFLITE_SINGLE_ROUNDING / CMSIS_NN_USE_SINGLE_ROUNDING.

The `*_params` functions take plain scales and zero points (not IR objects) so that the interpreter, the
C code generators and the float->int8 quantizer all derive the same integers from the same rule; the
dataclasses they return use CMSIS-NN's sign conventions (input_offset = -zp_in, output_offset = +zp_out).
The calibration helpers (choose_qparams, quantize_weights_symmetric, quantize_bias) follow the TFLite
converter's post-training quantization.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedError
from .fixedpoint import INT32_MAX, as_i64, rounding_divide_by_pot, srdhm, wrap32

QMIN, QMAX = -128, 127
F32 = np.float32


# ---- multipliers -------------------------------------------------------------------------------------
def round_half_away(x):
    """C's std::round / TfLiteRound: halves away from zero (numpy's round is half-to-even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.trunc(x + np.copysign(0.5, x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = q31 * 2^(shift - 31), q31 in [2^30, 2^31) (or 0)."""
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multiplier_array(reals) -> tuple[np.ndarray, np.ndarray]:
    """quantize_multiplier applied elementwise; returns (int64 multipliers, int64 shifts)."""
    pairs = [quantize_multiplier(r) for r in np.asarray(reals, dtype=np.float64).ravel()]
    m = np.array([p[0] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    s = np.array([p[1] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    return m, s


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (double rounding) on int64 arrays of int32 values.

    multiplier and shift broadcast against x (per-channel arrays along the last axis work as is).
    The left shift wraps in int32 like the C code (x * (1 << left_shift)).
    """
    shift = as_i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(srdhm(wrap32(as_i64(x) << left), multiplier), right)


def requantize(acc, multiplier, shift, output_offset: int, act_min: int, act_max: int) -> np.ndarray:
    """acc -> int8: scale by the quantized multiplier, add the output zero point, clamp."""
    out = multiply_by_quantized_multiplier(acc, multiplier, shift) + output_offset
    return np.clip(out, act_min, act_max).astype(np.int8)


def effective_scales(s_in, s_w, s_out) -> np.ndarray:
    """s_in * s_w / s_out in double from float32 scales (per channel when s_w is an array)."""
    s_in, s_w, s_out = F32(s_in), np.asarray(s_w, dtype=F32), F32(s_out)
    return np.float64(s_in) * s_w.astype(np.float64) / np.float64(s_out)


# ---- activation ranges -------------------------------------------------------------------------------
_ACT_FLOAT_RANGE = {"relu": (0.0, None), "relu6": (0.0, 6.0), "relu_n1_to_1": (-1.0, 1.0)}
FUSABLE_ACTIVATIONS = (None, "relu", "relu6", "relu_n1_to_1")


def quantize_scalar(value: float, scale, zero_point: int) -> int:
    """zp + round(value / scale) with the division in float32, as TFLite's activation-range helpers do."""
    return int(zero_point) + int(round_half_away(F32(value) / F32(scale)))


def activation_range(activation: str | None, scale, zero_point: int,
                     qmin: int = QMIN, qmax: int = QMAX) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: the clamp of a fused activation in the output's int8 domain."""
    if activation in (None, "", "none", "linear"):
        return qmin, qmax
    if activation not in _ACT_FLOAT_RANGE:
        raise UnsupportedError(f"fused activation {activation!r} has no int8 form; supported: "
                               "relu, relu6, relu_n1_to_1")
    lo, hi = _ACT_FLOAT_RANGE[activation]
    act_min = max(qmin, quantize_scalar(lo, scale, zero_point))
    act_max = qmax if hi is None else min(qmax, quantize_scalar(hi, scale, zero_point))
    return act_min, act_max


# ---- per-op parameters -------------------------------------------------------------------------------
@dataclass
class ConvQuant:
    """Requantization of conv2d / depthwise_conv2d / fully_connected (per channel or per tensor)."""

    input_offset: int        # -input zero point
    output_offset: int       # +output zero point
    multiplier: np.ndarray   # int64 (C_OUT,) or (1,)
    shift: np.ndarray        # int64, positive = left
    act_min: int = QMIN
    act_max: int = QMAX
    filter_offset: int = 0   # -weights zero point (0 for TFLite's symmetric weights)


def conv_params(s_in, zp_in, s_w, s_out, zp_out, activation=None) -> ConvQuant:
    """Parameters of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED as TFLM prepares them."""
    s_w = np.atleast_1d(np.asarray(s_w, dtype=F32))
    m, s = quantize_multiplier_array(effective_scales(s_in, s_w, s_out))
    lo, hi = activation_range(activation, s_out, zp_out)
    return ConvQuant(-int(zp_in), int(zp_out), m, s, lo, hi)


@dataclass
class AddQuant:
    """ADD parameters (TFLite int8: left_shift 20, inputs rescaled to twice the larger input scale)."""

    input1_offset: int
    input1_multiplier: int
    input1_shift: int
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int = QMIN
    act_max: int = QMAX
    left_shift: int = 20


def add_params(s1, zp1, s2, zp2, s_out, zp_out, activation=None) -> AddQuant:
    left_shift = 20
    twice_max = 2.0 * float(max(F32(s1), F32(s2)))
    m1, sh1 = quantize_multiplier(float(F32(s1)) / twice_max)
    m2, sh2 = quantize_multiplier(float(F32(s2)) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(F32(s_out))))
    lo, hi = activation_range(activation, s_out, zp_out)
    return AddQuant(-int(zp1), m1, sh1, -int(zp2), m2, sh2, int(zp_out), mo, sho, lo, hi, left_shift)


@dataclass
class MulQuant:
    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int = QMIN
    act_max: int = QMAX


def mul_params(s1, zp1, s2, zp2, s_out, zp_out, activation=None) -> MulQuant:
    m, s = quantize_multiplier(float(F32(s1)) * float(F32(s2)) / float(F32(s_out)))
    lo, hi = activation_range(activation, s_out, zp_out)
    return MulQuant(-int(zp1), -int(zp2), int(zp_out), m, s, lo, hi)


@dataclass
class SoftmaxQuant:
    """arm_softmax_s8 / TFLite int8 softmax parameters (output scale 1/256, zero point -128)."""

    multiplier: int
    shift: int       # left shift, >= 0
    diff_min: int


SOFTMAX_OUTPUT = (1.0 / 256.0, -128)
_SCALED_DIFF_INTEGER_BITS = 5


def calculate_input_radius(input_integer_bits: int, input_left_shift: int,
                           total_signed_bits: int = 31) -> int:
    """Largest |input difference| that does not saturate after rescaling (TFLite CalculateInputRadius)."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1)
                          * (1 << (total_signed_bits - input_integer_bits)) / (1 << input_left_shift))
    return int(math.floor(max_input_rescaled))


def softmax_params(s_in, beta: float = 1.0) -> SoftmaxQuant:
    """PreprocessSoftmaxScaling + diff_min, as TFLM prepares int8 softmax (double rounding build)."""
    real = min(float(beta) * float(F32(s_in)) * (1 << (31 - _SCALED_DIFF_INTEGER_BITS)), float(INT32_MAX))
    m, shift = quantize_multiplier(real)
    if shift < 0:
        raise UnsupportedError(f"softmax input scale {float(s_in)!r} x beta {beta!r} is too small "
                               "for int8 softmax")
    return SoftmaxQuant(m, shift, -calculate_input_radius(_SCALED_DIFF_INTEGER_BITS, shift))


@dataclass
class LutActQuant:
    """LOGISTIC / TANH int8 parameters (input rescaled to Q4.27)."""

    input_zero_point: int
    input_range_radius: int
    input_multiplier: int
    input_left_shift: int


def logistic_tanh_params(s_in, zp_in) -> LutActQuant:
    """TFLM's Prepare of int8 LOGISTIC and TANH: frexp of s_in * 2^27 without the 2^31 fold-back."""
    q, shift = math.frexp(float(F32(s_in)) * (1 << 27))
    mult = int(wrap32(int(round_half_away(q * (1 << 31)))))
    return LutActQuant(int(zp_in), calculate_input_radius(4, shift), mult, shift)


def requantize_params(s_in, s_out) -> tuple[int, int]:
    """QUANTIZE int8 -> int8 (and MEAN, ADD-free rescales): multiplier of s_in / s_out in double."""
    return quantize_multiplier(float(F32(s_in)) / float(F32(s_out)))


def relu_params(s_in, s_out) -> tuple[int, int]:
    """TFLM RELU int8: multiplier of s_in / s_out, the float32 scales divided in double (a float32 division
    differs in the low bits and flips exact ties: tests/tflite/test_tflite_relu_rescale.py)."""
    return quantize_multiplier(float(np.float64(F32(s_in)) / np.float64(F32(s_out))))


# ---- calibration: float -> int8 (used by the post-training quantizer) ---------------------------------
def choose_qparams(rmin: float, rmax: float, qmin: int = QMIN, qmax: int = QMAX) -> tuple[np.float32, int]:
    """Asymmetric int8 scale and zero point for a float range, as TFLite's converter computes them.

    The range is widened to include 0 so that 0.0 is exactly representable (padding, ReLU); the scale
    is (max - min) / 255 in float32 and the zero point qmin - min / scale rounded half away from zero and
    clamped (float32 arithmetic: matches the TF 2.21 converter's input quantization, where the same
    formula in double differs in the last bit of the scale for some ranges; tests/tflite).
    A range of exactly [0, 0] gets scale 1.0 and zero point 0.
    """
    lo, hi = min(F32(rmin), F32(0.0)), max(F32(rmax), F32(0.0))
    scale = F32(F32(hi - lo) / F32(qmax - qmin))
    if scale == 0:
        return F32(1.0), 0
    zp = F32(F32(qmin) - F32(lo / scale))
    zero_point = qmin if zp < qmin else qmax if zp > qmax else int(round_half_away(zp))
    return scale, zero_point


def quantize_weights_symmetric(w, axis: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights in [-127, 127], zero point 0, per channel along `axis` (or per tensor).

    scale_c = max|w_c| / 127 (float32); q = round(w / scale_c) half away from zero, clamped.
    Returns (int8 array, float32 scales of shape (C,) or (1,)).
    """
    w = np.asarray(w, dtype=F32)
    if axis is None:
        amax = np.atleast_1d(np.abs(w).max()).astype(F32)
        bshape = (1,) * w.ndim
    else:
        axis = axis % w.ndim
        other = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.abs(w).max(axis=other).astype(F32)
        bshape = tuple(-1 if i == axis else 1 for i in range(w.ndim))
    scales = (amax / F32(127.0)).astype(F32)
    safe = np.where(scales == 0, F32(1.0), scales).reshape(bshape)
    q = round_half_away(w / safe)
    return np.clip(q, -127, 127).astype(np.int8), scales


def reciprocal_f32(scale) -> np.ndarray:
    """float32(1 / scale) with the division in double (0 for a zero scale): the converter's multiplier."""
    scale = np.asarray(scale, dtype=F32).astype(np.float64)
    return np.where(scale == 0, 0.0, 1.0 / np.where(scale == 0, 1.0, scale)).astype(F32)


def quantize_bias(b, scale) -> np.ndarray:
    """int32 bias (zero point 0) for its scale s_in * s_w[c], as the TF converter computes it: b times the
    float32 reciprocal of the scale, in float32, rounded half away from zero, clamped to +-(2^31 - 1).
    (Dividing in double instead differs in the last step for about 1 bias in 4000.)"""
    q = round_half_away((np.asarray(b, dtype=F32) * reciprocal_f32(scale)).astype(F32))
    return np.clip(q, -INT32_MAX, INT32_MAX).astype(np.int32)


def quantize_float(x, scale, zero_point: int) -> np.ndarray:
    """QUANTIZE float -> int8 (TFLite AffineQuantize): round(x / scale) in float32, + zp, clamp."""
    q = round_half_away(np.asarray(x, dtype=F32) / F32(scale))
    return np.clip(np.clip(q, -(1 << 31), INT32_MAX) + int(zero_point), QMIN, QMAX).astype(np.int8)


def dequantize(q, scale, zero_point) -> np.ndarray:
    """DEQUANTIZE int8 -> float32: float(scale * (q - zp)) computed in double, as TFLite does.

    scale and zero_point may be arrays that broadcast against q (per-channel constants).
    """
    scale = np.asarray(scale, dtype=F32).astype(np.float64)
    return (scale * (np.asarray(q, dtype=np.int64) - np.asarray(zero_point, dtype=np.int64))).astype(F32)
