"""RELU with different input and output scales: the rescale multiplier must be computed as TFLM does.

At s_in = 0.031, s_out = 0.02 the float32 and double quotients give different Q31 multipliers
(1664299776 vs 1664299837) and 4 of the 256 inputs land on exact rounding ties; TFLM decides them."""
import numpy as np
import pytest
from tflm_oracle import ModelBuilder, run

from emcgen.tflite_int8 import kernels, quant


@pytest.mark.parametrize("s_in, s_out, zin, zout", [(0.031, 0.02, 20, -3), (0.05, 0.02, 5, -10),
                                                    (0.021, 0.014, 0, -128)])
def test_relu_rescale_equals_tflm_on_every_input(s_in, s_out, zin, zout):
    mb = ModelBuilder()
    x = mb.input("x", (1, 256), scale=s_in, zp=zin)
    y = mb.output("y", (1, 256), scale=s_out, zp=zout)
    mb.op("RELU", [x], [y])
    xs = np.arange(-128, 128, dtype=np.int8)[None]
    want = run(mb.build(), xs)[0]
    m, shift = quant.relu_params(s_in, s_out)
    got = kernels.relu(xs, zin, zout, m, shift, max(zout, -128), 127)
    np.testing.assert_array_equal(got, want)


def test_the_tie_case_really_separates_the_two_divisions():
    f32 = quant.quantize_multiplier(float(np.float32(0.031) / np.float32(0.02)))
    assert f32 != quant.relu_params(0.031, 0.02)
