"""Each CPU layer of the runtime on a tiny model, expected values worked out by hand from docs §2.3.

The models start with an identity FULLY_CONNECTED (the runtime copies the float input into the main
buffer, the FC moves it unchanged to address 64); byte layers get a QUANTIZE with scale 1 first."""

import numpy as np
import pytest

from emcgen.kmodel import assemble, fully_connected, layer, run
from emcgen.kmodel.cpu import HANDLERS
from emcgen.kmodel.emulator import Machine

A = 64  # where the identity FC puts the input


def model(x, layers, out, size=1024):
    fc = fully_connected(0, A, np.eye(len(x), dtype=np.float32))
    return run(assemble([fc, *layers], [out], main_mem_usage=size), x)[0]


def quantized(x, layers, out):
    q = layer("QUANTIZE", main_mem_in_address=A, mem_out_address=512, count=len(x), quant_param=(1.0, 0.0))
    return model(x, [q, *layers], out)


def test_add():
    add = layer(
        "ADD", main_mem_in_a_address=A, main_mem_in_b_address=A + 4, main_mem_out_address=256, count=2
    )
    assert model([1.0, 2.0, 3.0], [add], (256, 8)).tolist() == [3.0, 5.0]


def test_l2_normalization():
    l2 = layer("L2_NORMALIZATION", main_mem_in_address=A, main_mem_out_address=256, channels=2)
    np.testing.assert_allclose(model([3.0, 4.0], [l2], (256, 8)), [0.6, 0.8], rtol=1e-7)


def test_logistic():
    lg = layer("LOGISTIC", main_mem_in_address=A, main_mem_out_address=256, channels=2)
    np.testing.assert_allclose(model([0.0, 2.0], [lg], (256, 8)), [0.5, 0.8807971], rtol=1e-6)


def test_tensorflow_flatten_is_nchw_to_nhwc():
    fl = layer("TENSORFLOW_FLATTEN", main_mem_in_address=A, main_mem_out_address=256, shape=(2, 1, 3))
    out = model([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [fl], (256, 24))
    assert out.reshape(-1).tolist() == [1.0, 3.0, 5.0, 2.0, 4.0, 6.0]


def test_average_pool_divides_by_valid_elements():
    # 3x3 map 1..9, 3x3 window, stride 2, padding 1 -> windows clipped to 2x2: (1,2,4,5), (2,3,5,6), ...
    ap = layer(
        "AVERAGE_POOL2D",
        main_mem_in_address=A,
        main_mem_out_address=256,
        in_shape=(3, 3, 1),
        out_shape=(2, 2, 1),
        kernel_width=3,
        kernel_height=3,
        stride_width=2,
        stride_height=2,
        padding_width=1,
        padding_height=1,
        act=1,
    )
    out = model([float(v) for v in range(1, 10)], [ap], (256, 16))
    assert out.reshape(-1).tolist() == [3.0, 4.0, 6.0, 7.0]


def test_quantized_max_pool_starts_from_zero_and_clips_windows():
    mp = layer(
        "QUANTIZED_MAX_POOL2D",
        main_mem_in_address=512,
        main_mem_out_address=256,
        in_shape=(3, 3, 1),
        out_shape=(2, 2, 1),
        kernel_width=3,
        kernel_height=3,
        stride_width=2,
        stride_height=2,
        padding_width=1,
        padding_height=1,
    )
    out = quantized([9, 1, 8, 2, 3, 4, 7, 5, 6], [mp], (256, 4))
    assert out.reshape(-1).tolist() == [9, 8, 7, 6]


def test_resize_nearest_neighbor():
    rs = layer(
        "RESIZE_NEAREST_NEIGHBOR",
        main_mem_in_address=A,
        main_mem_out_address=256,
        in_shape=(2, 2, 1),
        out_width=3,
        out_height=3,
        align_corners=0,
    )
    out = model([1.0, 2.0, 3.0, 4.0], [rs], (256, 36))
    assert out.reshape(3, 3).tolist() == [[1, 1, 2], [1, 1, 2], [3, 3, 4]]  # floor(i * 2/3)
    qr = layer(
        "QUANTIZED_RESIZE_NEAREST_NEIGHBOR",
        main_mem_in_address=512,
        main_mem_out_address=256,
        in_shape=(2, 2, 1),
        out_width=1,
        out_height=1,
        align_corners=1,
    )
    assert quantized([5, 6, 7, 8], [qr], (256, 1)).reshape(-1).tolist() == [5]


def test_concat_and_requantize():
    cc = layer("CONCAT", main_mem_out_address=256, inputs=[(A + 8, 8), (A, 8)])
    assert model([1.0, 2.0, 3.0, 4.0], [cc], (256, 16)).tolist() == [3.0, 4.0, 1.0, 2.0]
    rq = layer(
        "REQUANTIZE", main_mem_in_address=512, main_mem_out_address=256, count=3, table=255 - np.arange(256)
    )
    assert quantized([0, 5, 255], [rq], (256, 3)).tolist() == [255, 250, 0]


def test_quantized_global_average_pool_of_maix_emc():
    gap = layer(
        "QUANTIZED_GLOBAL_AVERAGE_POOL2D",
        main_mem_in_address=0,
        main_mem_out_address=8,
        kernel_size=3,
        channels=2,
    )
    km = assemble([gap], [(8, 2)], main_mem_usage=16)
    m = Machine(km, "maix-emc")
    m.main[:6] = [1, 2, 4, 10, 10, 11]
    assert HANDLERS[gap.name](m, gap).tolist() == [2, 10]  # 7 // 3, 31 // 3 (uint32 sum, truncation)
    with pytest.raises(Exception, match="not executed by the official"):
        run(km, b"", runtime="sdk")
