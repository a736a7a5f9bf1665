"""Quantization rules of emcgen.tflite_int8.quant against their definitions, computed with exact rationals.

Definitions (TFLite, CMSIS-NN docs): QuantizeMultiplier writes real = q31 * 2^(shift - 31) with q31 in
[2^30, 2^31) rounded half away from zero; requantization is a doubling high multiply rounded half up,
(x * m + 2^30) >> 31, then a division by 2^-shift rounded half away from zero.
The bit-exactness of the whole path is checked against CMSIS-NN and TFLM in the other test files.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from emcgen.errors import UnsupportedError
from emcgen.tflite_int8 import fixedpoint as fp
from emcgen.tflite_int8 import quant as Q


def _half_away(fr: Fraction) -> int:
    n = math.floor(abs(fr) + Fraction(1, 2))
    return n if fr >= 0 else -n


def _requantize_reference(x: int, m: int, shift: int) -> int:
    x = x * 2 ** max(shift, 0)
    high = math.floor(Fraction(x * m, 2**31) + Fraction(1, 2))
    return _half_away(Fraction(high, 2 ** max(-shift, 0)))


def test_round_half_away():
    got = Q.round_half_away([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 0.49999997, -0.49999997])
    np.testing.assert_array_equal(got, [-3, -2, -1, 1, 2, 3, 0, 0])


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)), (1.0, (1 << 30, 1)), (0.5, (1 << 30, 0)), (0.75, (3 << 29, 0)), (2.0**-40, (0, 0)),
    (1 - 2.0**-33, (1 << 30, 1)),            # rounds up to 2^31: folded back to 2^30 with shift + 1
    (2.0**-31, (1 << 30, -30)), (3.0 * 2**20, (3 << 29, 22)),
])
def test_quantize_multiplier_known_values(real, expected):
    assert Q.quantize_multiplier(real) == expected


def test_quantize_multiplier_reconstructs_within_half_a_unit():
    rng = np.random.default_rng(0)
    for real in np.exp(rng.uniform(-20, 8, 2000)):
        m, s = Q.quantize_multiplier(real)
        assert (1 << 30) <= m < (1 << 31)
        assert abs(Fraction(m) * Fraction(2) ** (s - 31) - Fraction(real)) <= Fraction(2) ** (s - 32)
    m, s = Q.quantize_multiplier_array(np.array([[0.25, 1.5], [0.0, 1e-12]]))
    assert m.shape == s.shape == (2, 2) and m[1, 1] == 0 and s[0, 0] == -1


def test_multiply_by_quantized_multiplier_matches_definition():
    rng = np.random.default_rng(1)
    xs = rng.integers(-(1 << 31), 1 << 31, 3000)
    ms = rng.integers(1 << 30, 1 << 31, 3000)
    shifts = rng.integers(-31, 1, 3000)
    got = Q.multiply_by_quantized_multiplier(xs, ms, shifts)
    want = [_requantize_reference(int(x), int(m), int(s)) for x, m, s in zip(xs, ms, shifts, strict=True)]
    np.testing.assert_array_equal(got, want)
    # positive shifts (small accumulators) and exact ties of both roundings
    xs = rng.integers(-5000, 5000, 2000)
    shifts = rng.integers(0, 12, 2000)
    got = Q.multiply_by_quantized_multiplier(xs, ms[:2000], shifts)
    want = [_requantize_reference(int(x), int(m), int(s))
            for x, m, s in zip(xs, ms[:2000], shifts, strict=True)]
    np.testing.assert_array_equal(got, want)
    ties_x = np.array([-3, -1, 1, 3, -5, 5, -(1 << 20) - 1, (1 << 20) + 1])
    for shift in (0, -1, -3):
        got = Q.multiply_by_quantized_multiplier(ties_x, 1 << 30, shift)
        np.testing.assert_array_equal(got, [_requantize_reference(int(x), 1 << 30, shift) for x in ties_x])


def test_srdhm_saturates_only_min_times_min():
    assert int(fp.srdhm(fp.INT32_MIN, fp.INT32_MIN)) == fp.INT32_MAX
    assert int(fp.srdhm(fp.INT32_MIN, fp.INT32_MAX)) == -fp.INT32_MAX


@pytest.mark.parametrize("act,scale,zp,expected", [
    (None, 0.1, 3, (-128, 127)), ("relu", 0.1, -5, (-5, 127)), ("relu6", 0.05, -128, (-128, -8)),
    ("relu_n1_to_1", 0.01, 0, (-100, 100)), ("relu_n1_to_1", 0.004, 10, (-128, 127)),
    ("relu6", 0.1, 100, (100, 127)), ("relu", 0.1, -200, (-128, 127)),
])
def test_activation_range(act, scale, zp, expected):
    assert Q.activation_range(act, scale, zp) == expected


def test_activation_range_rejects_what_int8_cannot_express():
    with pytest.raises(UnsupportedError, match="tanh"):
        Q.activation_range("tanh", 0.1, 0)


def test_choose_qparams_represents_zero_and_covers_the_range():
    rng = np.random.default_rng(2)
    for _ in range(500):
        lo, hi = sorted(rng.normal(0, 10, 2) * rng.choice([1e-3, 1, 100]))
        scale, zp = Q.choose_qparams(lo, hi)
        assert scale.dtype == np.float32 and -128 <= zp <= 127
        assert float(scale) * (-128 - zp) <= min(lo, 0) + float(scale)
        assert float(scale) * (127 - zp) >= max(hi, 0) - float(scale)
    assert Q.choose_qparams(0.0, 0.0) == (np.float32(1.0), 0)
    assert Q.choose_qparams(0.0, 2.55) == (np.float32(0.01), -128)
    assert Q.choose_qparams(-2.55, 0.0) == (np.float32(0.01), 127)


def test_quantize_weights_symmetric():
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1, size=(3, 3, 4, 6)).astype(np.float32) * rng.uniform(0.1, 3, 6).astype(np.float32)
    w[..., 2] = 0.0
    q, scales = Q.quantize_weights_symmetric(w, axis=3)
    assert q.dtype == np.int8 and scales.shape == (6,) and q.min() >= -127
    np.testing.assert_array_equal(np.abs(q).max(axis=(0, 1, 2)), [127, 127, 0, 127, 127, 127])
    assert np.all(np.abs(q * scales - w) <= scales / 2 + 1e-7)
    q1, s1 = Q.quantize_weights_symmetric(w, axis=None)
    assert s1.shape == (1,) and np.abs(q1).max() == 127


def test_quantize_bias_and_float_round_trip():
    b = np.array([0.5, -0.25, 1e-3, 10.0], np.float32)
    s_in, s_w = np.float32(0.02), np.array([0.01, 0.02, 0.005, 0.1], np.float32)
    qb = Q.quantize_bias(b, np.float32(s_in) * s_w)
    assert qb.dtype == np.int32
    np.testing.assert_array_equal(qb, [2500, -625, 10, 5000])
    x = np.array([-1.0, -0.015, 0.015, 0.0, 0.3, 100.0], np.float32)
    q = Q.quantize_float(x, 0.03, -4)
    np.testing.assert_array_equal(q, [-37, -5, -3, -4, 6, 127])  # ties at +-0.5 steps go away from zero
    np.testing.assert_allclose(Q.dequantize(q, 0.03, -4), [-0.99, -0.03, 0.03, 0.0, 0.3, 3.93], atol=1e-6)


def test_softmax_params_saturate_like_tflite():
    p = Q.softmax_params(40.0)        # beta * scale * 2^26 above 2^31 - 1: clamped, shift 31
    assert (p.multiplier, p.shift, p.diff_min) == (fp.INT32_MAX, 31, 0)
    p = Q.softmax_params(1 / 16)      # exactly 2^22: multiplier 2^30, shift 23
    assert (p.multiplier, p.shift) == (1 << 30, 23)
    assert p.diff_min == -math.floor(31 * 2**26 / 2**23)
