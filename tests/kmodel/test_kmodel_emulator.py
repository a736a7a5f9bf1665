"""Emulator against outside truth: the K210 hardware vector, nncase's documented iris output, nncase's
YOLO example finding the bicycle and the car, and MobileNet's tiger; plus the runtime's documented
quirks, each checked with numbers worked out from docs/kmodel_v3.md §2.3 by hand."""

import kmodel_testdata as td
import numpy as np
import pytest

from emcgen.errors import EmcError, UnsupportedError
from emcgen.kmodel import assemble, fully_connected, layer, pack_input, run, trace
from emcgen.kmodel.cpu import HANDLERS, carry_shift
from emcgen.kmodel.emulator import Machine
from emcgen.kmodel.yolo import decode

# K210 hardware output of maix-emc_cifar10_output.kmodel on plane (fixtures README, Maix-EMC README "K210")
CIFAR_HW = [
    1.181304,
    -5.381746,
    1.580029,
    0.045343,
    0.511492,
    -0.656629,
    -3.597826,
    0.561016,
    -0.733270,
    -3.771462,
]
IRIS_DOC = [16.077795, 5.607656, -2.071745]  # nncase iris example README, input 5.1 3.8 1.9 0.4


def read_bmp_rgb(path) -> np.ndarray:
    """24-bit BMP (BGR rows, bottom-up when height > 0) -> (H, W, 3) RGB top-down, without any library."""
    raw = path.read_bytes()
    offset = int.from_bytes(raw[10:14], "little")
    width = int.from_bytes(raw[18:22], "little", signed=True)
    height = int.from_bytes(raw[22:26], "little", signed=True)
    assert int.from_bytes(raw[28:30], "little") == 24
    stride = (3 * width + 3) // 4 * 4
    rows = np.frombuffer(raw, np.uint8, stride * abs(height), offset).reshape(abs(height), stride)
    img = rows[:, : 3 * width].reshape(abs(height), width, 3)[:, :, ::-1]
    return img[::-1] if height > 0 else img


def test_cifar_matches_k210_hardware():
    km = td.model("cifar_hw")
    chw = td.shared("fixtures", "kmodel_v3", "maix-emc_plane_chw_u8.bin").read_bytes()
    (out,) = run(km, chw)
    assert out.dtype == np.float32 and out.shape == (10,)
    np.testing.assert_allclose(out, CIFAR_HW, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out, CIFAR_HW, rtol=0, atol=5e-7)  # = the 6-decimal print rounding


def test_pack_input_from_bmp_matches_the_hardware_input():
    km = td.model("cifar_hw")
    img = read_bmp_rgb(td.shared("fixtures", "kmodel_v3", "maix-emc_plane.bmp"))
    chw = td.shared("fixtures", "kmodel_v3", "maix-emc_plane_chw_u8.bin").read_bytes()
    assert pack_input(km, img) == chw
    np.testing.assert_array_equal(run(km, img)[0], run(km, img.transpose(2, 0, 1))[0])


def test_iris_matches_documented_output():
    km = td.model("iris")
    (out,) = run(km, [5.1, 3.8, 1.9, 0.4])
    np.testing.assert_allclose(out, IRIS_DOC, rtol=0, atol=1e-5)
    assert run(km, np.array([5.1, 3.8, 1.9, 0.4], np.float32).tobytes())[0].tolist() == out.tolist()


def test_yolo_finds_bicycle_and_car():
    km = td.model("yolo")
    img = read_bmp_rgb(td.shared("fixtures", "kmodel_v3", "nncase_dog.bmp"))
    assert img.shape == (240, 320, 3)
    (out,) = run(km, img)
    assert out.dtype == np.float32 and out.shape == (125, 7, 10)
    found = {d.name: d for d in decode(out)}
    assert found["bicycle"].score > 0.5 and found["car"].score > 0.5
    car = found["car"].box  # the car is in the upper right of dog.jpg
    assert car[0] > 0.5 and car[3] < 0.5


def test_mobilenet_sees_a_tiger():
    km = td.model("mbnet")
    img = read_bmp_rgb(td.shared("models", "maix-emc", "tiger224.bmp"))
    (out,) = run(km, img)
    probs = out.reshape(-1)
    labels = td.shared("models", "maix-emc", "imagenet_labels.txt").read_text().splitlines()
    assert int(np.argmax(probs)) == 292 and labels[292].startswith("tiger")
    assert abs(float(probs.sum()) - 1) < 1e-4


def test_trace_gives_every_layer():
    km = td.model("cifar_hw")
    emu = trace(km, td.shared("fixtures", "kmodel_v3", "maix-emc_plane_chw_u8.bin").read_bytes())
    assert emu.runtime == "maix-emc"
    shapes = [(o.name, o.data.shape, o.data.dtype.name) for o in emu.layers]
    assert shapes == [
        ("K210_CONV", (32, 32, 32), "uint8"),
        ("QUANTIZED_MAX_POOL2D", (32, 16, 16), "uint8"),
        ("K210_UPLOAD", (32, 16, 16), "uint8"),
        ("K210_CONV", (64, 16, 16), "uint8"),
        ("QUANTIZED_MAX_POOL2D", (64, 8, 8), "uint8"),
        ("QUANTIZED_TENSORFLOW_FLATTEN", (8, 8, 64), "uint8"),
        ("DEQUANTIZE", (8, 8, 64), "float32"),
        ("FULLY_CONNECTED", (16,), "float32"),
        ("FULLY_CONNECTED", (10,), "float32"),
    ]
    assert emu.layers[0].kpu_line == 32256 and emu.layers[0].main_address == 0
    # the flatten is the NCHW -> NHWC permutation of the pooled map
    np.testing.assert_array_equal(emu.layers[5].data, emu.layers[4].data.transpose(1, 2, 0))


def test_runtime_choice_and_type_21():
    km = td.model("cifar_hw")
    with pytest.raises(
        UnsupportedError,
        match=r"layer 5 \(QUANTIZED_TENSORFLOW_FLATTEN\) is not executed by "
        r"the official Kendryte SDK v3 runtime.*runtime='maix-emc'",
    ):
        run(km, bytes(3072), runtime="sdk")
    with pytest.raises(UnsupportedError, match="CHANNELWISE_DEQUANTIZE"):
        run(td.model("yolo"), bytes(3 * 240 * 320), runtime="maix-emc")


def test_a_layout_bug_changes_the_result():
    km = td.model("cifar_hw")
    km.layers[3].regs.kernel_calc_type_cfg.coef_group = 2  # 16-wide input is packed 4 per line
    chw = td.shared("fixtures", "kmodel_v3", "maix-emc_plane_chw_u8.bin").read_bytes()
    assert np.abs(run(km, chw)[0] - CIFAR_HW).max() > 1e-2


def test_bad_inputs():
    km = td.model("cifar_hw")
    with pytest.raises(EmcError, match=r"input shape \(32, 32\)"):
        run(km, np.zeros((32, 32), np.uint8))
    with pytest.raises(EmcError, match="uint8 pixels"):
        run(km, np.zeros((32, 32, 3), np.float32))
    with pytest.raises(EmcError, match="reads 3x32x32 = 3072"):
        run(km, bytes(100))
    with pytest.raises(EmcError, match="reads 4"):
        run(td.model("iris"), [1.0, 2.0])


# ---- CPU-layer quirks on tiny models built here (FC-first: the input floats land in the main buffer) ----


def identity_fc(n: int, out_address: int):
    return fully_connected(0, out_address, np.eye(n, dtype=np.float32), np.zeros(n, np.float32))


def test_quantize_rounds_half_away_from_zero_sdk_and_truncates_maix_emc():
    x = [0.5, 1.5, 2.5, -0.4, 254.5, 1e10, 2.9, -3.0]
    q = layer("QUANTIZE", main_mem_in_address=32, mem_out_address=64, count=8, quant_param=(1.0, 0.0))
    km = assemble([identity_fc(8, 32), q], [(64, 8)], main_mem_usage=72)
    assert run(km, x, runtime="sdk")[0].tolist() == [1, 2, 3, 0, 255, 255, 3, 0]
    # Maix-EMC's kpu.c converts with a plain (int) cast; its runtime cannot start with FC, so drive the
    # layer directly on an emulated machine
    m = Machine(km, "maix-emc")
    m.main[32:64] = np.frombuffer(np.array(x, "<f4").tobytes(), np.uint8)
    assert HANDLERS["QUANTIZE"](m, q).tolist() == [0, 1, 2, 0, 254, 255, 2, 0]


def test_quantized_add_processes_multiples_of_8_and_keeps_the_carry_quirk():
    x = [10, 20, 3, 0, 0, 0, 0, 0, 0]  # a = x[0:1], b = x[1:2] after quantize
    q = layer("QUANTIZE", main_mem_in_address=64, mem_out_address=0, count=9, quant_param=(1.0, 0.0))
    add = layer(
        "QUANTIZED_ADD",
        main_mem_in_a_address=0,
        main_mem_in_b_address=1,
        main_mem_out_address=16,
        count=1,
        in_a_offset=0,
        in_a_mul=1,
        in_a_shift=0,
        in_b_offset=0,
        in_b_mul=1,
        in_b_shift=0,
        out_offset=5,
        out_mul=3,
        out_shift=1,
    )
    km = assemble([identity_fc(9, 64), q, add], [(16, 9)], main_mem_usage=104)
    out = run(km, x)[0].tolist()
    # element 0: (10 + 20) * 3 = 90, carry_shift(90, 1) = 45, + 5 = 50; elements 1..7 are computed too
    # (a = 20, 3, 0...; b = 3, 0, ...): (20+3)*3 = 69 -> 35 (+5 = 40), 3*3 = 9 -> 5 (+5 = 10), then 0 -> 5
    assert out[:8] == [50, 40, 10, 5, 5, 5, 5, 5]
    assert out[8] == 0  # byte 9 of the output is not written


def test_carry_shift_examples():
    v = np.array([-5, -4, -3, 5, 6, 7, 90], dtype=np.int64)
    # docs §2.3: -5 >> 1 with the SDK's carry gives -4 (round half to nearest would give -2 or -3)
    assert carry_shift(v, 1).tolist() == [-4, -2, -3, 3, 3, 4, 45]
    assert carry_shift(v, 0).tolist() == v.tolist()


def test_fully_connected_uses_fused_multiply_add():
    # x1*w1 = 2^-24 (1 + 2^-36): rounded alone it is 2^-24 and 1 + 2^-24 ties to 1.0; fused it rounds up
    x = np.array([1.0, 1 + 2.0**-12], np.float32)
    w = np.array([[1.0, (1 - 2.0**-12 + 2.0**-24) * 2.0**-24]], np.float32)
    km = assemble([fully_connected(0, 8, w, [0.0])], [(8, 4)], main_mem_usage=12)
    assert run(km, x)[0][0] == np.float32(1 + 2.0**-23)
    assert np.float32(np.float32(x[0] * w[0, 0]) + np.float32(x[1] * w[0, 1])) == np.float32(1.0)


def test_softmax_starts_from_flt_min():
    # all inputs far below 0: max stays FLT_MIN, every exp underflows, 0/0 -> NaN (the SDK's quirk),
    # where a textbook softmax would give 0.731, 0.269
    sm = layer("SOFTMAX", main_mem_in_address=8, main_mem_out_address=16, channels=2)
    km = assemble([identity_fc(2, 8), sm], [(16, 8)], main_mem_usage=24)
    assert np.isnan(run(km, [-200.0, -201.0])[0]).all()
    np.testing.assert_allclose(run(km, [2.0, 1.0])[0], [0.7310586, 0.2689414], rtol=1e-6)


def test_relu6_and_flatten_and_gap():
    fc = fully_connected(0, 16, np.eye(4, dtype=np.float32), np.zeros(4, np.float32), act=2)
    gap = layer(
        "GLOBAL_AVERAGE_POOL2D", main_mem_in_address=16, main_mem_out_address=32, kernel_size=2, channels=2
    )
    km = assemble([fc, gap], [(16, 16), (32, 8)], main_mem_usage=40)
    relu6, mean = run(km, [-1.0, 7.0, 3.0, 4.5])
    assert relu6.tolist() == [0.0, 6.0, 3.0, 4.5] and mean.tolist() == [3.0, 3.75]
