"""The fixed-point constants in emc_nn_math.h are the rounded values of what their comments say.

An off-by-one in these Q31 constants changes only the low bits of softmax's intermediate values, so the
int8 vectors rarely notice it; here each literal is recomputed from its definition.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

MATH_H = (Path(__file__).resolve().parent.parent.parent / "templates" / "stm32_cmsis" / "emc_nn" / "src"
          / "emc_nn_math.h").read_text()


def _constant(name: str) -> int:
    match = re.search(rf"const int32_t {name} = (-?\d+);", MATH_H)
    assert match, f"{name} not found in emc_nn_math.h"
    return int(match.group(1))


def test_exp_table_is_exp_of_minus_powers_of_two():
    match = re.search(r"exp_of_minus_pow2\[7\] = \{([^}]*)\}", MATH_H)
    assert match
    table = [int(v) for v in match.group(1).replace("\n", " ").split(",")]
    assert table == [round(math.exp(-(2.0 ** j)) * 2**31) for j in range(-2, 5)]


def test_series_and_reciprocal_constants():
    assert _constant("exp_minus_one_eighth") == round(math.exp(-1 / 8) * 2**31)
    assert _constant("one_third") == round(2**31 / 3)
    assert _constant("forty_eight_over_17") == round(48 / 17 * 2**29)
    assert _constant("minus_thirty_two_over_17") == round(-32 / 17 * 2**29)
