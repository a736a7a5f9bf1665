"""gemmlowp-style 32-bit fixed-point arithmetic, vectorized over numpy int64 arrays.

Why: TFLite's int8 kernels (requantization, softmax, logistic, tanh) are defined by gemmlowp's integer
primitives, and being bit-exact with TFLM and CMSIS-NN means reproducing them exactly, including the
rounding of negative values and the int32 wrap-around that the C code relies on. Every function takes and
returns int64 arrays that hold int32 values; int64 leaves room for the 62-bit products.

Notation: a Q(m) value has m integer bits and 31 - m fractional bits (gemmlowp's FixedPoint<int32, m>).
"""
from __future__ import annotations

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def as_i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x) -> np.ndarray:
    """Reduce to int32 with two's-complement wrap-around (what the C kernels do on overflow)."""
    x = as_i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul: round(a * b / 2^31), halves away from zero, C truncation."""
    a, b = as_i64(a), as_i64(b)
    ab = a * b
    q = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = np.where(q >= 0, q >> 31, -((-q) >> 31))  # C's division truncates toward zero
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2^exponent rounded to nearest, halves away from zero (exponent in [0, 31], may be an array)."""
    x, e = as_i64(x), as_i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def saturating_rounding_mul_by_pot(x, exponent: int) -> np.ndarray:
    """x * 2^exponent: saturating left shift for exponent > 0, rounding right shift for exponent < 0."""
    x = as_i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    out = wrap32(x << exponent)
    out = np.where(x > threshold, INT32_MAX, out)
    return np.where(x < -threshold, INT32_MIN, out)


def rounding_half_sum(a, b) -> np.ndarray:
    """(a + b) / 2 rounded half away from zero (gemmlowp RoundingHalfSum for int32)."""
    s = as_i64(a) + as_i64(b)
    t = s + np.where(s >= 0, 1, -1)
    return np.where(t >= 0, t // 2, -((-t) // 2))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """exp(a) for a in [-1/4, 0) in Q0, by a 4th-order Taylor expansion around -1/8."""
    constant_term = 1895147668      # exp(-1/8) in Q0
    constant_1_over_3 = 715827883   # 1/3 in Q0
    x = as_i64(a) + (1 << 28)       # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1)
    return wrap32(constant_term + srdhm(constant_term, x + poly))


# exp(-2^k) in Q0 for k = -2 .. 4: the barrel shifter of gemmlowp's exp_on_negative_values.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 given in Q(integer_bits); result in Q0 (exp(0) = INT32_MAX)."""
    a = as_i64(a)
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_mul_by_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = wrap32(a_mod_quarter_minus_one_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = np.int64(1) << (frac + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))   # -32.0 in Q(integer_bits)
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_q2(a) -> np.ndarray:
    """Newton-Raphson estimate of 1 / (1 + a) for a in (0, 1) in Q0; returns x in Q2 (x ~ 2 / (1 + a))."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = 1515870810 + srdhm(half_denominator, -1010580540)   # 48/17 - 32/17 * d  (Q2)
    for _ in range(3):
        one_minus_dx = (1 << 29) - srdhm(half_denominator, x)
        x = wrap32(x + saturating_rounding_mul_by_pot(srdhm(x, one_minus_dx), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1) in Q0 (used by softmax's reciprocal and logistic)."""
    return saturating_rounding_mul_by_pot(_newton_reciprocal_q2(a), 1)


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """(1 - a) / (1 + a) for a in [0, 1) in Q0 (used by tanh)."""
    return saturating_rounding_mul_by_pot(_newton_reciprocal_q2(a) - (1 << 29), 2)


def logistic(a, integer_bits: int) -> np.ndarray:
    """1 / (1 + exp(-a)) for a in Q(integer_bits); result in Q0."""
    a = as_i64(a)
    positive = a > 0
    abs_a = np.where(positive, a, -a)
    if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs_a, integer_bits))
    out = np.where(positive, if_positive, INT32_MAX - if_positive)
    return np.where(a == 0, 1 << 30, out)


def tanh(a, integer_bits: int) -> np.ndarray:
    """tanh(a) for a in Q(integer_bits); result in Q0."""
    a = as_i64(a)
    negative = a < 0
    n = np.where(negative, a, -a)   # -|a|; doubling it is a change of format, not of the raw value
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    out = np.where(negative, -t, t)
    return np.where(a == 0, 0, out)


def count_leading_zeros32(x) -> np.ndarray:
    """Leading zero bits of x viewed as uint32 (32 for zero)."""
    u = as_i64(x) & 0xFFFFFFFF
    _, exp = np.frexp(u.astype(np.float64))   # u = m * 2^exp, m in [0.5, 1): bit length is exp
    return np.where(u == 0, 32, 32 - exp).astype(np.int64)
