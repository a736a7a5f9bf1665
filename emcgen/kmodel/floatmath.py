"""float32 arithmetic as the K210's RISC-V FPU does it, vectorized with numpy.

The SDK is built with -ffast-math, so `sum += a*b` and `q*scale + bias` compile to fused multiply-add
(fmadd.s: one rounding). numpy has no float32 FMA, so `fma32` computes it exactly: the float64 product of
two float32 values is exact (24+24 <= 53 bits), the float64 sum is made exact with TwoSum and then
rounded *to odd*, and rounding that to float32 is correctly rounded (Boldo & Melquiond: round-to-odd at
>= p+2 bits followed by round-to-nearest is a single correct rounding). A plain float64 sum followed by
a float32 cast would round twice and be wrong in rare ties.
"""

from __future__ import annotations

import numpy as np

INT32_MAX = 2**31 - 1
INT32_MIN = -(2**31)


def fma32(a, b, c) -> np.ndarray:
    """Correctly rounded float32 a*b + c (elementwise, broadcasting)."""
    with np.errstate(all="ignore"):  # inf/nan propagate as on the FPU
        a64 = np.asarray(a, dtype=np.float32).astype(np.float64)
        b64 = np.asarray(b, dtype=np.float32).astype(np.float64)
        c64 = np.asarray(c, dtype=np.float32).astype(np.float64)
        p = a64 * b64  # exact
        s = p + c64
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)  # TwoSum: p + c == s + err exactly
        bits = s.view(np.int64)
        inexact = (err != 0) & np.isfinite(s) & ((bits & 1) == 0)
        # move one ulp toward the exact value: away from zero when err has the sign of s
        step = np.where(np.signbit(err) == np.signbit(s), 1, -1)
        odd = (bits + np.where(inexact, step, 0)).view(np.float64)
        return odd.astype(np.float32)


def roundf(x) -> np.ndarray:
    """C roundf: nearest, ties away from zero (computed in float64, exact for float32 inputs)."""
    x64 = np.asarray(x, dtype=np.float32).astype(np.float64)
    return np.trunc(x64 + np.copysign(0.5, x64))


def to_int32(x) -> np.ndarray:
    """C (int) cast of a float on RISC-V (fcvt.w.s, round toward zero): saturates, NaN -> INT32_MAX."""
    x64 = np.asarray(x, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        out = np.trunc(np.clip(np.nan_to_num(x64, nan=INT32_MAX), INT32_MIN, INT32_MAX))
    return out.astype(np.int64)


def sequential_sum(x, axis: int = -1) -> np.ndarray:
    """float32 sum accumulated left to right (np.sum would use pairwise summation)."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[axis] == 0:
        return np.zeros(np.delete(x.shape, axis), dtype=np.float32)
    return np.take(np.add.accumulate(x, axis=axis, dtype=np.float32), -1, axis=axis)
