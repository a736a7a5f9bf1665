"""KPU quantization parameters: run the KPU arithmetic of the format doc (§3.9) on the parameters and
compare with the float convolution. Error budget: the output quantization step (<= 1 LSB) plus the
weight quantization error, measured against float truth computed independently with numpy."""
import numpy as np
import pytest

from emcgen.targets.k210.kpu_quant import (
    affine_input_quant,
    kpu_activation,
    kpu_conv_params,
    uint8_quant,
)

rng = np.random.default_rng(3)


def kpu_conv_doc(X, p, k, depthwise):
    """The doc's arithmetic, written out plainly: per-channel offset terms, floor BN shift, table."""
    c, h, w = X.shape
    pad = 1 if k == 3 else 0
    Xp = np.pad(X.astype(np.int64), ((0, 0), (pad, pad), (pad, pad)), constant_values=p.pad_value)
    W = p.weights.astype(np.int64)
    cout = W.shape[0]
    acc = np.zeros((cout, h, w), np.int64)
    for o in range(cout):
        chans = [o] if depthwise else range(c)
        for ci in chans:
            kern = W[o] if depthwise else W[o, ci]
            P_ = np.zeros((h, w), np.int64)
            SX = np.zeros((h, w), np.int64)
            for ky in range(k):
                for kx in range(k):
                    win = Xp[ci, ky:ky + h, kx:kx + w]
                    P_ += win * kern[ky, kx]
                    SX += win
            SW = kern.sum()
            acc[o] += P_ + ((p.arg_x * SX) >> p.shr_x) + ((p.arg_w * SW) >> p.shr_w) + p.arg_add
    bn = ((acc * p.norm_mul[:, None, None]) >> p.norm_shift[:, None, None]) + p.norm_add[:, None, None]
    return kpu_activation(bn, p.act)


def float_conv(x_chw, w, b, depthwise, act, alpha=0.2):
    x = x_chw.transpose(1, 2, 0).astype(np.float64)
    kh = w.shape[0]
    pad = kh // 2
    xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    h, wd, _ = x.shape
    cout = w.shape[2] if depthwise else w.shape[3]
    y = np.zeros((h, wd, cout))
    for ky in range(kh):
        for kx in range(kh):
            win = xp[ky:ky + h, kx:kx + wd]
            y += win * w[ky, kx, :, 0] if depthwise else win @ w[ky, kx]
    y += b
    if act == "relu":
        y = np.maximum(y, 0)
    elif act == "relu6":
        y = np.clip(y, 0, 6)
    elif act == "leaky_relu":
        y = np.where(y >= 0, y, alpha * y)
    elif act == "sigmoid":
        y = 1 / (1 + np.exp(-y))
    elif act == "tanh":
        y = np.tanh(y)
    return y.transpose(2, 0, 1)


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("act", [None, "relu", "relu6", "leaky_relu"])
@pytest.mark.parametrize("input_kind", ["img_0_1", "img_neg1_1", "hidden"])
def test_linear_family_within_one_lsb_of_quantized_float(k, depthwise, act, input_kind):
    c, h, w, cout = 5, 6, 7, (5 if depthwise else 6)
    wts = rng.standard_normal((k, k, c, 1 if depthwise else cout)) * 0.3
    b = rng.standard_normal(cout) * 0.2
    if input_kind == "img_0_1":
        in_q = affine_input_quant(1 / 255, 0.0)
    elif input_kind == "img_neg1_1":
        in_q = affine_input_quant(1 / 127.5, -1.0)       # fractional zero point 127.5
    else:
        in_q = uint8_quant(-1.3, 2.1)
    X = rng.integers(0, 256, (c, h, w)).astype(np.uint8)
    x = (X.astype(np.float64) - in_q.zero_point) * in_q.scale
    # float truth with the weights the KPU actually holds (weight rounding is not the table's fault)
    y_ref = float_conv(x, wts, b, depthwise, act)
    out_q = uint8_quant(y_ref.min(), y_ref.max())
    p = kpu_conv_params(wts, b, in_q, out_q, depthwise=depthwise, activation=act, alpha=0.2)
    wq = (p.weights.astype(np.float64) - 128)
    per_channel = wts[:, :, :, 0] if depthwise else wts
    scale = np.abs(per_channel.reshape(-1, per_channel.shape[-1])).max(axis=0) / 127
    if depthwise:
        w_used = (wq * scale[:, None, None]).transpose(1, 2, 0)[:, :, :, None]
    else:
        w_used = (wq * scale[:, None, None, None]).transpose(2, 3, 1, 0)
    y_used = float_conv(x, w_used, b, depthwise, act)
    got = kpu_conv_doc(X, p, k, depthwise).astype(np.float64)
    want = np.clip(np.round(y_used / out_q.scale + out_q.zero_point), 0, 255)
    diff = np.abs(got - want)
    if input_kind == "img_neg1_1" and k == 3:
        # the KPU pads with an integer (128) while the exact zero point is 127.5: border pixels may move
        diff = diff[:, 1:-1, 1:-1]
        assert diff.max() <= 1
    else:
        assert diff.max() <= 1, diff.max()
    assert (diff > 0).mean() < 0.02          # a 1-LSB difference only at rounding ties / floor edges


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_curve_activations_report_their_fit_error(act):
    c, cout = 4, 3
    wts = rng.standard_normal((3, 3, c, cout)) * 0.5
    b = rng.standard_normal(cout) * 0.1
    in_q = uint8_quant(-1, 1)
    X = rng.integers(0, 256, (c, 8, 8)).astype(np.uint8)
    x = (X.astype(np.float64) - in_q.zero_point) * in_q.scale
    y = float_conv(x, wts, b, False, act)
    out_q = uint8_quant(y.min(), y.max())
    p = kpu_conv_params(wts, b, in_q, out_q, depthwise=False, activation=act)
    got = kpu_conv_doc(X, p, 3, False).astype(np.float64)
    want = np.clip(np.round(y / out_q.scale + out_q.zero_point), 0, 255)
    assert p.notes and "max error" in p.notes[0]
    assert p.act.max_error_lsb <= 3
    assert np.abs(got - want).max() <= p.act.max_error_lsb + 2


def test_sixteen_bit_weights_are_more_precise():
    c, cout = 8, 4
    wts = rng.standard_normal((3, 3, c, cout)) * 0.3
    in_q = uint8_quant(-1, 1)
    X = rng.integers(0, 256, (c, 6, 6)).astype(np.uint8)
    x = (X.astype(np.float64) - in_q.zero_point) * in_q.scale
    y = float_conv(x, wts, np.zeros(cout), False, None)
    out_q = uint8_quant(y.min(), y.max())
    errs = {}
    for bits in (8, 16):
        p = kpu_conv_params(wts, None, in_q, out_q, depthwise=False, weight_bits=bits)
        assert p.weights.dtype == (np.uint8 if bits == 8 else np.uint16)
        got = kpu_conv_doc(X, p, 3, False).astype(np.float64)
        errs[bits] = np.abs(got - np.clip(np.round(y / out_q.scale + out_q.zero_point), 0, 255)).mean()
    assert errs[16] <= errs[8]


def test_register_ranges():
    wts = rng.standard_normal((3, 3, 16, 32))
    p = kpu_conv_params(wts, rng.standard_normal(32), uint8_quant(0, 6), uint8_quant(0, 20), depthwise=False)
    assert p.arg_x == -128 and p.shr_x == 0 and p.arg_w == 0 and p.arg_add == 0
    assert np.all(np.abs(p.norm_mul) < 2 ** 23) and np.all((0 <= p.norm_shift) & (p.norm_shift <= 15))
    assert np.all(np.abs(p.norm_add) < 2 ** 31)
