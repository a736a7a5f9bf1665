"""One-op .tflite models (built with tflite-micro's editor) through emcgen and TFLM.

int8 models: frontend + run_int8 must give TFLM's bytes. Float models: frontend + the float interpreter
must be within 1e-5 of TFLM's float kernels. Together they cover every op the frontend maps, including the
ones the MLPerf models do not use (MAX_POOL_2D, MUL, CONCATENATION, PAD(V2), MEAN, QUANTIZE, DEQUANTIZE,
RELU, RELU6, LOGISTIC, TANH, LEAKY_RELU), and parameters such as dilation, depth multipliers and
broadcasting.
"""
from __future__ import annotations

import numpy as np
import pytest
import tflm_oracle
from tflm_oracle import ModelBuilder

from emcgen import interpreter
from emcgen.frontends.tflite import load_tflite
from emcgen.tflite_int8 import quant as Q
from emcgen.tflite_int8.interpreter import run_int8

SAME, VALID = 0, 1
NONE, RELU, RELU_N1_TO_1, RELU6 = 0, 1, 2, 3


def _int8_inputs(shapes, n=24, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for shape in shapes:
        x = rng.integers(-128, 128, size=(n,) + tuple(shape[1:]), dtype=np.int8)
        x[0], x[1] = -128, 127
        out.append(x)
    return out


def check_int8(blob, seed=0, n=24):
    graph = load_tflite(blob)
    assert graph.meta["quantized"]
    xs = _int8_inputs([graph.tensors[i].shape for i in graph.inputs], n, seed)
    got = run_int8(graph, xs)
    want = tflm_oracle.run(blob, *xs)
    for name, w in zip(graph.outputs, want, strict=True):
        g = got[name]
        assert g.dtype == np.int8 and g.shape == w.shape, (g.shape, w.shape)
        assert np.array_equal(g, w), f"{int((g != w).sum())} of {w.size} values differ from TFLM"
        assert len(np.unique(w)) > 2, "degenerate test: the output is (nearly) constant"
    return graph


def check_float(blob, seed=0, n=8, atol=1e-5):
    graph = load_tflite(blob)
    assert not graph.meta["quantized"]
    rng = np.random.default_rng(seed)
    xs = [rng.normal(0, 2, size=(n,) + graph.tensors[i].shape[1:]).astype(np.float32) for i in graph.inputs]
    got = interpreter.run(graph, xs)
    want = tflm_oracle.run(blob, *xs)
    for name, w in zip(graph.outputs, want, strict=True):
        np.testing.assert_allclose(got[name], w, rtol=0, atol=atol)
    return graph


def _scale_for(acc_terms, s_in, s_w):
    """Output scale that keeps a random accumulation mostly inside int8 (about 3 sigma)."""
    return float(np.sqrt(acc_terms) * 74 * 73 * s_in * float(np.mean(s_w)) / 40)


# ---- convolutions ------------------------------------------------------------------------------------
CONV_CASES = [
    # (H, W, C_IN, C_OUT, KH, KW, stride, dilation, padding, act, per_channel, bias, zp_in)
    (9, 7, 3, 8, 3, 3, (1, 1), (1, 1), SAME, NONE, True, True, -5),
    (10, 10, 4, 6, 3, 3, (2, 2), (1, 1), SAME, RELU6, True, True, 17),
    (11, 9, 5, 4, 3, 2, (1, 2), (2, 2), VALID, RELU, True, False, -128),
    (8, 8, 16, 12, 1, 1, (1, 1), (1, 1), VALID, RELU_N1_TO_1, False, True, 0),
    (7, 12, 2, 3, 5, 3, (2, 1), (1, 3), SAME, NONE, True, True, 100),
]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_int8(case):
    h, w, ci, co, kh, kw, stride, dil, padding, act, per_channel, has_bias, zp_in = case
    rng = np.random.default_rng(h * w + co)
    s_in = 0.02
    s_w = rng.uniform(0.002, 0.02, co) if per_channel else np.array([0.01])
    weights = rng.integers(-127, 128, size=(co, kh, kw, ci), dtype=np.int8)
    s_out = _scale_for(kh * kw * ci, s_in, s_w) * (0.3 if act == RELU_N1_TO_1 else 1)
    b = ModelBuilder()
    x = b.input("x", (1, h, w, ci), scale=s_in, zp=zp_in)
    wt = b.tensor("w", weights.shape, data=weights, scale=s_w, zp=0, axis=0 if per_channel else None)
    ins = [x, wt]
    if has_bias:
        bias = rng.integers(-3000, 3000, size=co).astype(np.int32)
        ins.append(b.tensor("b", (co,), "int32", data=bias, scale=s_in * s_w, zp=0,
                            axis=0 if per_channel else None))
    oh = -(-h // stride[0]) if padding == SAME else (h - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = -(-w // stride[1]) if padding == SAME else (w - (kw - 1) * dil[1] - 1) // stride[1] + 1
    y = b.output("y", (1, oh, ow, co), scale=s_out, zp=-7)
    b.op("CONV_2D", ins, [y], "Conv2DOptions", padding=padding, strideH=stride[0], strideW=stride[1],
         dilationHFactor=dil[0], dilationWFactor=dil[1], fusedActivationFunction=act)
    graph = check_int8(b.build(), seed=h)
    w_ir = graph.tensors[graph.ops[0].inputs[1]]
    np.testing.assert_array_equal(w_ir.data, weights.transpose(1, 2, 3, 0))  # HWIO in the IR
    assert w_ir.quant.axis == (3 if per_channel else None)


DW_CASES = [  # (H, W, C, MULT, K, stride, dilation, padding, act)
    (9, 9, 8, 1, 3, (1, 1), (1, 1), SAME, RELU),
    (10, 7, 3, 2, 3, (2, 2), (1, 1), SAME, RELU6),
    (12, 12, 4, 3, 3, (1, 1), (2, 2), VALID, NONE),
    (6, 8, 1, 4, 5, (1, 2), (1, 1), SAME, NONE),
]


@pytest.mark.parametrize("case", DW_CASES)
def test_depthwise_int8(case):
    h, w, c, m, k, stride, dil, padding, act = case
    rng = np.random.default_rng(c * 10 + m)
    s_in, s_w = 0.03, rng.uniform(0.002, 0.02, c * m)
    weights = rng.integers(-127, 128, size=(1, k, k, c * m), dtype=np.int8)
    b = ModelBuilder()
    x = b.input("x", (1, h, w, c), scale=s_in, zp=3)
    ins = [x, b.tensor("w", weights.shape, data=weights, scale=s_w, zp=0, axis=3),
           b.tensor("b", (c * m,), "int32", data=rng.integers(-500, 500, c * m), scale=s_in * s_w, axis=0)]
    oh = -(-h // stride[0]) if padding == SAME else (h - (k - 1) * dil[0] - 1) // stride[0] + 1
    ow = -(-w // stride[1]) if padding == SAME else (w - (k - 1) * dil[1] - 1) // stride[1] + 1
    y = b.output("y", (1, oh, ow, c * m), scale=_scale_for(k * k, s_in, s_w), zp=-20)
    b.op("DEPTHWISE_CONV_2D", ins, [y], "DepthwiseConv2DOptions", padding=padding, strideH=stride[0],
         strideW=stride[1], depthMultiplier=m, dilationHFactor=dil[0], dilationWFactor=dil[1],
         fusedActivationFunction=act)
    graph = check_int8(b.build(), seed=c)
    w_ir = graph.tensors[graph.ops[0].inputs[1]]
    assert w_ir.shape == (k, k, c, m) and w_ir.quant.axis == 2


def _fc_model(in_shape, n_out, s_in, s_w, s_out, zp_in, zp_out, weights, bias, per_channel, act=NONE):
    b = ModelBuilder()
    x = b.input("x", in_shape, scale=s_in, zp=zp_in)
    ins = [x, b.tensor("w", weights.shape, data=weights, scale=s_w, zp=0, axis=0 if per_channel else None),
           b.tensor("b", (n_out,), "int32", data=bias, scale=np.float32(s_in) * np.asarray(s_w, np.float32),
                    axis=0 if per_channel else None)]
    y = b.output("y", (1, n_out), scale=s_out, zp=zp_out)
    b.op("FULLY_CONNECTED", ins, [y], "FullyConnectedOptions", fusedActivationFunction=act)
    return b.build()


def test_fully_connected_per_tensor_scale_product_is_double():
    """Per-tensor FC: s_in * s_w is formed in double, like conv (TFLite's GetQuantizedConvolutionMultipler
    reads as a float32 product). The two rules give multipliers 1e-8 apart, so the test builds accumulators
    on the rounding boundary between them: a 1-input FC with weights 1, input 0 and those accumulators as
    biases. TFLM must agree with emcgen on every channel and the float32 rule must differ on every one."""
    s_in, s_w, s_out = 0.07040932774543762, 0.0003893342125229537, 1.8299468792974949
    q = Q.conv_params(s_in, 0, s_w, s_out, 0)
    m32, sh32 = Q.quantize_multiplier(float(np.float32(s_in) * np.float32(s_w)) / float(np.float32(s_out)))
    assert m32 != q.multiplier[0] and sh32 == q.shift[0]
    m, right = int(q.multiplier[0]), -int(q.shift[0])
    accs = []
    for k in range(-127, 127):  # SRDHM results v and v + 1 that round to different outputs
        v = k * (1 << right) + (1 << (right - 1)) - 1
        center = round((v + 0.5) * 2**31 / m)
        cand = np.arange(center - 4, center + 5)
        a = Q.multiply_by_quantized_multiplier(cand, m, sh32)
        b = Q.multiply_by_quantized_multiplier(cand, m32, sh32)
        accs += [int(c) for c in cand[a != b]]
    assert len(accs) >= 8
    accs = np.array(accs[:: max(1, len(accs) // 32)][:32], dtype=np.int32)
    n_out = len(accs)
    blob = _fc_model((1, 1), n_out, s_in, s_w, s_out, 0, 0, np.ones((n_out, 1), np.int8), accs, False)
    graph = load_tflite(blob)
    x = np.zeros((1, 1), np.int8)
    (want,) = tflm_oracle.run(blob, x)
    np.testing.assert_array_equal(run_int8(graph, x)[graph.outputs[0]], want)
    alt = Q.requantize(accs, m32, sh32, 0, -128, 127)
    assert np.all(alt != want[0])


def test_fully_connected_per_channel_and_rank4_input():
    rng = np.random.default_rng(9)
    n_out, s_in = 10, 0.05
    s_w = rng.uniform(0.001, 0.01, n_out)
    weights = rng.integers(-127, 128, size=(n_out, 2 * 3 * 4), dtype=np.int8)
    bias = rng.integers(-2000, 2000, n_out).astype(np.int32)
    s_out = _scale_for(24, s_in, s_w)
    blob = _fc_model((1, 2, 3, 4), n_out, s_in, s_w, s_out, 9, -1, weights, bias, True, RELU)
    graph = check_int8(blob)
    assert graph.tensors[graph.ops[0].inputs[1]].quant.axis == 1


# ---- pools, elementwise, data movement ------------------------------------------------------------------
@pytest.mark.parametrize("opcode", ["MAX_POOL_2D", "AVERAGE_POOL_2D"])
@pytest.mark.parametrize("k,stride,padding,act", [(3, 2, SAME, RELU), (2, 2, VALID, NONE),
                                                   (3, 1, SAME, RELU6)])
def test_pool_int8(opcode, k, stride, padding, act):
    h, w, c = 9, 10, 5
    b = ModelBuilder()
    x = b.input("x", (1, h, w, c), scale=0.05, zp=-10)
    oh = -(-h // stride) if padding == SAME else (h - k) // stride + 1
    ow = -(-w // stride) if padding == SAME else (w - k) // stride + 1
    y = b.output("y", (1, oh, ow, c), scale=0.05, zp=-10)
    b.op(opcode, [x], [y], "Pool2DOptions", padding=padding, strideH=stride, strideW=stride, filterHeight=k,
         filterWidth=k, fusedActivationFunction=act)
    check_int8(b.build())


@pytest.mark.parametrize("opcode", ["ADD", "MUL"])
@pytest.mark.parametrize("second", ["activation", "const_c", "const_11c", "act_broadcast_h"])
def test_add_mul_int8(opcode, second):
    rng = np.random.default_rng(len(second))
    shape = (1, 4, 5, 6)
    b = ModelBuilder()
    x1 = b.input("a", shape, scale=0.04, zp=-12)
    if second == "activation":
        x2 = b.input("b", shape, scale=0.11, zp=30)
    elif second == "act_broadcast_h":
        x2 = b.input("b", (1, 1, 5, 6), scale=0.02, zp=-100)
    else:
        cshape = (6,) if second == "const_c" else (1, 1, 1, 6)
        x2 = b.tensor("c", cshape, data=rng.integers(-128, 128, cshape), scale=0.07, zp=4)
    s_out = 0.15 if opcode == "ADD" else 0.04 * 0.11 * 40
    y = b.output("y", shape, scale=s_out, zp=-3)
    options = "AddOptions" if opcode == "ADD" else "MulOptions"
    b.op(opcode, [x1, x2], [y], options, fusedActivationFunction=RELU if second == "const_c" else NONE)
    check_int8(b.build())


def test_concatenation_pad_reshape_int8():
    b = ModelBuilder()
    qa = {"scale": 0.05, "zp": 7}
    x1 = b.input("a", (1, 4, 4, 3), **qa)
    x2 = b.input("b", (1, 4, 4, 5), **qa)
    cat = b.tensor("cat", (1, 4, 4, 8), **qa)
    b.op("CONCATENATION", [x1, x2], [cat], "ConcatenationOptions", axis=-1)
    pads = b.tensor("pads", (4, 2), "int32", data=[[0, 0], [1, 2], [0, 1], [0, 0]])
    padded = b.tensor("padded", (1, 7, 5, 8), **qa)
    b.op("PAD", [cat, pads], [padded])
    cv = b.tensor("cv", (1,), data=[-90], **qa)
    pads2 = b.tensor("pads2", (4, 2), "int32", data=[[0, 0], [2, 0], [1, 1], [0, 0]])
    padded2 = b.tensor("padded2", (1, 9, 7, 8), **qa)
    b.op("PADV2", [padded, pads2, cv], [padded2])
    cat2 = b.tensor("cat2", (1, 18, 7, 8), **qa)
    b.op("CONCATENATION", [padded2, padded2], [cat2], "ConcatenationOptions", axis=1)
    shape = b.tensor("shape", (2,), "int32", data=[1, 18 * 7 * 8])
    y = b.output("y", (1, 18 * 7 * 8), **qa)
    b.op("RESHAPE", [cat2, shape], [y], "ReshapeOptions", newShape=[1, 18 * 7 * 8])
    graph = check_int8(b.build())
    assert [op.type for op in graph.ops] == ["concat", "pad", "pad", "concat", "reshape"]


@pytest.mark.parametrize("axes,keep", [((1, 2), True), ((1, 2), False), ((2,), True), ((3,), False)])
def test_mean_int8(axes, keep):
    shape = (1, 5, 6, 7)
    out_shape = tuple(1 if i in axes else d for i, d in enumerate(shape)) if keep else \
        tuple(d for i, d in enumerate(shape) if i not in axes)
    b = ModelBuilder()
    x = b.input("x", shape, scale=0.05, zp=-11)
    ax = b.tensor("axes", (len(axes),), "int32", data=list(axes))
    y = b.output("y", out_shape, scale=0.011, zp=6)
    b.op("MEAN", [x, ax], [y], "ReducerOptions", keepDims=keep)
    check_int8(b.build())


def test_quantize_requantizes_int8():
    b = ModelBuilder()
    x = b.input("x", (1, 3, 4, 5), scale=0.05, zp=-11)
    y = b.output("y", (1, 3, 4, 5), scale=0.031, zp=20)
    b.op("QUANTIZE", [x], [y])
    graph = check_int8(b.build())
    assert graph.ops[0].type == "identity"


@pytest.mark.parametrize("opcode,s_in,zp_in", [
    ("RELU", 0.05, -20), ("RELU6", 0.03, -100), ("LOGISTIC", 0.06, 5), ("LOGISTIC", 0.01, -128),
    ("TANH", 0.04, 0), ("TANH", 0.2, 30)])
def test_activations_int8_over_all_256_values(opcode, s_in, zp_in):
    out_q = {"RELU": (0.04, -128), "RELU6": (s_in, zp_in), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}
    b = ModelBuilder()
    x = b.input("x", (1, 256), scale=s_in, zp=zp_in)
    y = b.output("y", (1, 256), scale=out_q[opcode][0], zp=out_q[opcode][1])
    b.op(opcode, [x], [y])
    blob = b.build()
    graph = load_tflite(blob)
    xs = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    got = run_int8(graph, xs)[graph.outputs[0]]
    (want,) = tflm_oracle.run(blob, xs)
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 20


@pytest.mark.parametrize("shape,s_in,beta", [((1, 10), 0.1, 1.0), ((1, 2, 3, 7), 0.5, 0.5),
                                            ((1, 33), 0.02, 2.0),
                                            ((1, 12), 40.0, 1.0), ((1, 9), 0.0005, 1.0)])
def test_softmax_int8(shape, s_in, beta):
    b = ModelBuilder()
    x = b.input("x", shape, scale=s_in, zp=3)
    y = b.output("y", shape, scale=1 / 256, zp=-128)
    b.op("SOFTMAX", [x], [y], "SoftmaxOptions", beta=beta)
    check_int8(b.build(), n=64)


def test_float_interface_is_stripped_and_reproduced():
    """float in -> QUANTIZE -> conv -> DEQUANTIZE -> float out: the IR is int8 inside; run_int8 on floats
    plus dequantize of the int8 result equals TFLM's float output exactly."""
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    xf = b.input("x_float", (1, 6, 6, 2), "float32")
    xq = b.tensor("x_int8", (1, 6, 6, 2), scale=0.03, zp=-4)
    b.op("QUANTIZE", [xf], [xq])
    s_w = rng.uniform(0.005, 0.01, 3)
    w = b.tensor("w", (3, 3, 3, 2), data=rng.integers(-127, 128, (3, 3, 3, 2)), scale=s_w, axis=0)
    bias = b.tensor("b", (3,), "int32", data=[10, -20, 30], scale=0.03 * s_w, axis=0)
    yq = b.tensor("y_int8", (1, 6, 6, 3), scale=0.02, zp=1)
    b.op("CONV_2D", [xq, w, bias], [yq], "Conv2DOptions", padding=SAME, strideH=1, strideW=1,
         dilationHFactor=1, dilationWFactor=1)
    yf = b.output("y_float", (1, 6, 6, 3), "float32")
    b.op("DEQUANTIZE", [yq], [yf])
    blob = b.build()
    graph = load_tflite(blob)
    assert graph.meta["quantized"] and [op.type for op in graph.ops] == ["conv2d"]
    assert graph.meta["float_interface"] == {"inputs": ["x_float"], "outputs": ["y_float"]}
    assert graph.inputs == ["x_int8"] and graph.outputs == ["y_int8"]
    x = rng.normal(0, 2, size=(16, 6, 6, 2)).astype(np.float32)
    x[0, 0, 0, 0] = 0.015  # a tie at half a step: rounds away from zero
    q = graph.tensors["y_int8"].quant
    got = Q.dequantize(run_int8(graph, x)["y_int8"], q.scale[0], q.zero_point[0])
    (want,) = tflm_oracle.run(blob, x)
    np.testing.assert_array_equal(got, want)


# ---- float one-op models --------------------------------------------------------------------------------
def _float_weights(rng, shape):
    return rng.normal(0, 0.5, size=shape).astype(np.float32)


def test_float_conv_depthwise_fc_chain():
    rng = np.random.default_rng(4)
    b = ModelBuilder()
    x = b.input("x", (1, 11, 9, 3), "float32")
    c1 = b.tensor("c1", (1, 6, 9, 4), "float32")
    b.op("CONV_2D", [x, b.tensor("w1", (4, 3, 3, 3), "float32", data=_float_weights(rng, (4, 3, 3, 3))),
                     b.tensor("b1", (4,), "float32", data=_float_weights(rng, 4))], [c1], "Conv2DOptions",
         padding=SAME, strideH=2, strideW=1, dilationHFactor=1, dilationWFactor=2,
         fusedActivationFunction=RELU6)
    d1 = b.tensor("d1", (1, 6, 9, 8), "float32")
    w2 = b.tensor("w2", (1, 3, 3, 8), "float32", data=_float_weights(rng, (1, 3, 3, 8)))
    b.op("DEPTHWISE_CONV_2D", [c1, w2,
                               b.tensor("b2", (8,), "float32", data=_float_weights(rng, 8))], [d1],
         "DepthwiseConv2DOptions", padding=SAME, strideH=1, strideW=1, depthMultiplier=2, dilationHFactor=2,
         dilationWFactor=1, fusedActivationFunction=NONE)
    p1 = b.tensor("p1", (1, 3, 5, 8), "float32")
    b.op("AVERAGE_POOL_2D", [d1], [p1], "Pool2DOptions", padding=SAME, strideH=2, strideW=2, filterHeight=3,
         filterWidth=3)
    y = b.output("y", (1, 5), "float32")
    b.op("FULLY_CONNECTED", [p1, b.tensor("w3", (5, 120), "float32", data=_float_weights(rng, (5, 120))),
                             b.tensor("b3", (5,), "float32", data=_float_weights(rng, 5))], [y],
         "FullyConnectedOptions", fusedActivationFunction=RELU)
    check_float(b.build())


def test_float_elementwise_pad_mean_softmax_activations():
    rng = np.random.default_rng(6)
    b = ModelBuilder()
    x = b.input("x", (1, 4, 5, 6), "float32")
    x2 = b.input("x2", (1, 1, 5, 6), "float32")
    a = b.tensor("a", (1, 4, 5, 6), "float32")
    b.op("ADD", [x, x2], [a], "AddOptions", fusedActivationFunction=RELU_N1_TO_1)
    m = b.tensor("m", (1, 4, 5, 6), "float32")
    b.op("MUL", [a, b.tensor("c", (6,), "float32", data=_float_weights(rng, 6))], [m], "MulOptions")
    lr = b.tensor("lr", (1, 4, 5, 6), "float32")
    b.op("LEAKY_RELU", [m], [lr], "LeakyReluOptions", alpha=0.3)
    t = b.tensor("t", (1, 4, 5, 6), "float32")
    b.op("TANH", [lr], [t])
    s = b.tensor("s", (1, 4, 5, 6), "float32")
    b.op("LOGISTIC", [x], [s])
    cat = b.tensor("cat", (1, 4, 5, 12), "float32")
    b.op("CONCATENATION", [t, s], [cat], "ConcatenationOptions", axis=3)
    pad = b.tensor("pad", (1, 6, 6, 12), "float32")
    b.op("PAD", [cat, b.tensor("pads", (4, 2), "int32", data=[[0, 0], [1, 1], [0, 1], [0, 0]])], [pad])
    mx = b.tensor("mx", (1, 3, 3, 12), "float32")
    b.op("MAX_POOL_2D", [pad], [mx], "Pool2DOptions", padding=VALID, strideH=2, strideW=2, filterHeight=2,
         filterWidth=2)
    mean = b.tensor("mean", (1, 12), "float32")
    b.op("MEAN", [mx, b.tensor("axes", (2,), "int32", data=[1, 2])], [mean], "ReducerOptions", keepDims=False)
    r6 = b.tensor("r6", (1, 12), "float32")
    b.op("RELU6", [mean], [r6])
    y = b.output("y", (1, 12), "float32")
    b.op("SOFTMAX", [r6], [y], "SoftmaxOptions", beta=1.7)
    graph = check_float(b.build())
    assert [op.type for op in graph.ops] == ["add", "mul", "activation", "activation", "activation", "concat",
                                             "pad", "max_pool2d", "mean", "activation", "softmax"]


@pytest.mark.parametrize("kind", ["avg_equal_params", "avg_other_params", "max"])
def test_global_pools_int8(kind):
    """global_avg_pool / global_max_pool (IR ops of the Keras/TensorLayer frontends) have TFLite meanings:
    AVERAGE_POOL_2D over the whole map when input and output parameters agree, MEAN over H, W otherwise,
    MAX_POOL_2D over the whole map. The IR op is swapped into a graph TFLM ran as that TFLite op."""
    h, w, c = 5, 7, 6
    b = ModelBuilder()
    x = b.input("x", (1, h, w, c), scale=0.05, zp=-9)
    other = kind == "avg_other_params"
    y = b.output("y", (1, 1, 1, c), scale=0.013 if other else 0.05, zp=4 if other else -9)
    if kind == "avg_other_params":
        b.op("MEAN", [x, b.tensor("axes", (2,), "int32", data=[1, 2])], [y], "ReducerOptions", keepDims=True)
    else:
        b.op("AVERAGE_POOL_2D" if kind.startswith("avg") else "MAX_POOL_2D", [x], [y], "Pool2DOptions",
             padding=VALID, strideH=1, strideW=1, filterHeight=h, filterWidth=w)
    blob = b.build()
    graph = load_tflite(blob)
    op = graph.ops[0]
    op.type = "global_max_pool" if kind == "max" else "global_avg_pool"
    op.attrs = {"keepdims": True}
    xs = _int8_inputs([graph.tensors["x"].shape], 32, 1)
    (want,) = tflm_oracle.run(blob, *xs)
    np.testing.assert_array_equal(run_int8(graph, xs)["y"], want)


@pytest.mark.parametrize("depth,s_in,beta", [(10, 0.1, 1.0), (3, 0.4, 1.0), (37, 0.05, 1.0), (12, 0.17, 0.7)])
def test_softmax_int8_many_rows(depth, s_in, beta):
    """4000 rows in one invoke: enough for the rarely visible rounding steps of the fixed-point exp/sum."""
    rows = 4000
    b = ModelBuilder()
    x = b.input("x", (1, rows, depth), scale=s_in, zp=-7)
    y = b.output("y", (1, rows, depth), scale=1 / 256, zp=-128)
    b.op("SOFTMAX", [x], [y], "SoftmaxOptions", beta=beta)
    blob = b.build()
    graph = load_tflite(blob)
    rng = np.random.default_rng(depth)
    xs = rng.normal(0, 1, (2, rows, depth)) * rng.uniform(1, 60, (2, rows, 1))
    xs = xs.clip(-128, 127).astype(np.int8)
    (want,) = tflm_oracle.run(blob, xs)
    np.testing.assert_array_equal(run_int8(graph, xs)["y"], want)


def test_concat_with_differing_input_params_equals_quantize_then_concat():
    """TFLite's int8 CONCATENATION needs equal parameters; emcgen requantizes a differing input the way a
    QUANTIZE op would. Oracle: TFLM on QUANTIZE + CONCATENATION; emcgen runs it without the QUANTIZE."""
    b = ModelBuilder()
    a = b.input("a", (1, 3, 4, 5), scale=0.07, zp=-30)
    c = b.input("c", (1, 3, 4, 2), scale=0.02, zp=11)
    a2 = b.tensor("a2", (1, 3, 4, 5), scale=0.02, zp=11)
    b.op("QUANTIZE", [a], [a2])
    y = b.output("y", (1, 3, 4, 7), scale=0.02, zp=11)
    b.op("CONCATENATION", [a2, c], [y], "ConcatenationOptions", axis=3)
    blob = b.build()
    graph = load_tflite(blob)
    assert [op.type for op in graph.ops] == ["identity", "concat"]
    graph.replace_uses("a2", "a")
    graph.remove_op(graph.ops[0])
    graph.prune()
    assert [op.type for op in graph.ops] == ["concat"] and graph.ops[0].inputs == ["a", "c"]
    xs = _int8_inputs([(1, 3, 4, 5), (1, 3, 4, 2)], 32, 4)
    (want,) = tflm_oracle.run(blob, *xs)
    np.testing.assert_array_equal(run_int8(graph, xs)["y"], want)
