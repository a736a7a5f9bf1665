"""Every float op reference (emcgen.ops) against its TensorFlow equivalent on random inputs.

Each case also checks the op's shape inference against the shape TensorFlow produced.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import support

from emcgen import ops as oplib
from emcgen.ir import Graph, Op
from emcgen.ops._common import resolve_pads

RNG = np.random.default_rng(2024)


@pytest.fixture(scope="module")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return support.module("tensorflow")


def _rand(*shape, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def run(op_type, inputs, **attrs):
    """Reference output and inferred output shape of one op applied to `inputs` (None = absent bias)."""
    g = Graph()
    names = []
    for i, a in enumerate(inputs):
        if a is None:
            names.append("")
        else:
            names.append(f"in{i}")
            g.add_tensor(f"in{i}", a.shape)
    g.add_tensor("out", ())
    op = Op(op_type, "op", names, ["out"], attrs)
    g.ops.append(op)
    d = oplib.get(op_type)
    (shape,) = d.infer_shapes(g, op)
    (y,) = d.reference(op, list(inputs))
    assert y.dtype == np.float32
    return y, tuple(int(s) for s in shape)


def check(got, want, shape=None, tol=1e-4):
    want = np.asarray(want, np.float32)
    assert got.shape == want.shape
    if shape is not None:
        assert shape == want.shape, f"inferred {shape}, TensorFlow {want.shape}"
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- conv2d ---------------------------------------------------------------------------------------------
CONV_CASES = [
    # (input HWC, kernel, C_out, stride, padding, dilation)
    ((9, 9, 3), (3, 3), 5, (1, 1), "SAME", (1, 1)),
    ((9, 9, 3), (3, 3), 5, (1, 1), "VALID", (1, 1)),
    ((10, 11, 4), (3, 3), 6, (2, 2), "SAME", (1, 1)),
    ((10, 11, 4), (5, 3), 6, (2, 1), "VALID", (1, 1)),
    ((12, 12, 2), (3, 3), 4, (1, 1), "SAME", (2, 2)),
    ((12, 13, 2), (3, 2), 4, (1, 1), "VALID", (3, 2)),
    ((8, 8, 3), (1, 1), 7, (1, 1), "VALID", (1, 1)),
    ((7, 9, 3), (3, 3), 4, (2, 2), (0, 1, 2, 1), (1, 1)),      # asymmetric explicit pads
    ((7, 9, 3), (4, 2), 4, (1, 2), (3, 0, 1, 0), (1, 1)),
]


@pytest.mark.parametrize("hwc,k,co,stride,padding,dil", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(tf, hwc, k, co, stride, padding, dil, bias):
    x = _rand(2, *hwc)
    w = _rand(*k, hwc[2], co)
    b = _rand(co) if bias else None
    pads = resolve_pads(padding, hwc[:2], k, stride, dil)
    got, shape = run("conv2d", [x, w, b], stride=stride, pads=pads, dilation=dil)
    tf_pad = padding if isinstance(padding, str) else [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]]
    want = tf.nn.conv2d(x, w, strides=(1, *stride, 1), padding=tf_pad, dilations=(1, *dil, 1)).numpy()
    if bias:
        want = want + b
    check(got, want, shape)


def test_conv2d_fused_activation(tf):
    x, w, b = _rand(1, 6, 6, 3), _rand(3, 3, 3, 4), _rand(4)
    got, _ = run("conv2d", [x, w, b], stride=(1, 1), pads=(1, 1, 1, 1), activation="leaky_relu", alpha=0.1)
    want = tf.nn.leaky_relu(tf.nn.conv2d(x, w, 1, "SAME") + b, alpha=0.1)
    check(got, want)


# ---- depthwise_conv2d ------------------------------------------------------------------------------------
DW_CASES = [
    # (input HWC, kernel, multiplier, stride, padding, dilation)
    ((9, 9, 4), (3, 3), 1, (1, 1), "SAME", (1, 1)),
    ((9, 9, 4), (3, 3), 2, (1, 1), "VALID", (1, 1)),
    ((10, 11, 3), (3, 3), 3, (2, 2), "SAME", (1, 1)),
    ((10, 11, 3), (5, 3), 1, (2, 1), "VALID", (1, 1)),
    ((12, 12, 2), (3, 3), 2, (1, 1), "SAME", (2, 2)),
    ((9, 9, 4), (3, 3), 1, (2, 2), (1, 1, 1, 1), (1, 1)),      # Maix-EMC's explicit (1,1) pad + stride 2
    ((9, 8, 4), (3, 3), 2, (2, 2), (0, 2, 1, 0), (1, 1)),
]


@pytest.mark.parametrize("hwc,k,mult,stride,padding,dil", DW_CASES)
def test_depthwise_conv2d(tf, hwc, k, mult, stride, padding, dil):
    x = _rand(2, *hwc)
    w = _rand(*k, hwc[2], mult)
    b = _rand(hwc[2] * mult)
    pads = resolve_pads(padding, hwc[:2], k, stride, dil)
    got, shape = run("depthwise_conv2d", [x, w, b], stride=stride, pads=pads, dilation=dil)
    xp = x if isinstance(padding, str) else np.pad(x, ((0, 0), pads[:2], pads[2:], (0, 0)))
    tf_pad = padding if isinstance(padding, str) else "VALID"
    want = tf.nn.depthwise_conv2d(xp, w, strides=(1, *stride, 1), padding=tf_pad, dilations=dil).numpy() + b
    check(got, want, shape)


# ---- dense ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,i,o,bias", [(1, 16, 10, True), (5, 33, 7, False), (3, 4096, 16, True)])
def test_dense(tf, n, i, o, bias):
    x, w = _rand(n, i), _rand(i, o)
    b = _rand(o) if bias else None
    got, shape = run("dense", [x, w, b])
    want = tf.matmul(x, w).numpy() + (b if bias else 0)
    check(got, want, shape)


def test_dense_flattens_nhwc_input(tf):
    x, w, b = _rand(2, 3, 4, 5), _rand(60, 6), _rand(6)
    got, shape = run("dense", [x, w, b], activation="relu")
    want = tf.nn.relu(tf.matmul(tf.reshape(x, (2, -1)), w) + b)
    check(got, want, shape)


# ---- pooling --------------------------------------------------------------------------------------------
POOL_CASES = [
    ((9, 9, 3), (3, 3), (2, 2), "SAME"),
    ((9, 9, 3), (3, 3), (2, 2), "VALID"),
    ((32, 32, 4), (3, 3), (2, 2), "SAME"),          # the seed model's pools
    ((10, 7, 2), (2, 2), (2, 2), "SAME"),
    ((10, 7, 2), (3, 2), (1, 2), "SAME"),
    ((8, 8, 5), (2, 2), (2, 2), "VALID"),
    ((7, 7, 2), (7, 7), (1, 1), "VALID"),
]


@pytest.mark.parametrize("hwc,k,s,padding", POOL_CASES)
@pytest.mark.parametrize("kind", ["max_pool2d", "avg_pool2d"])
def test_pool2d(tf, hwc, k, s, padding, kind):
    x = _rand(2, *hwc, scale=3.0)
    pads = resolve_pads(padding, hwc[:2], k, s)
    got, shape = run(kind, [x], kernel=k, stride=s, pads=pads)
    fn = tf.nn.max_pool2d if kind == "max_pool2d" else tf.nn.avg_pool2d
    check(got, fn(x, ksize=k, strides=s, padding=padding), shape)


def test_max_pool_all_negative_same_padding(tf):
    x = -np.abs(_rand(1, 5, 5, 2)) - 1.0            # padding must never win a max
    pads = resolve_pads("SAME", (5, 5), (3, 3), (2, 2))
    got, _ = run("max_pool2d", [x], kernel=(3, 3), stride=(2, 2), pads=pads)
    check(got, tf.nn.max_pool2d(x, 3, 2, "SAME"))


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("kind", ["global_avg_pool", "global_max_pool"])
def test_global_pool(tf, kind, keepdims):
    x = _rand(3, 7, 5, 6, scale=2.0)
    got, shape = run(kind, [x], keepdims=keepdims)
    fn = tf.reduce_mean if kind == "global_avg_pool" else tf.reduce_max
    check(got, fn(x, axis=(1, 2), keepdims=keepdims), shape)


# ---- elementwise -----------------------------------------------------------------------------------------
BROADCASTS = [
    [(2, 5, 5, 3), (2, 5, 5, 3)],
    [(2, 5, 5, 3), (3,)],
    [(2, 5, 5, 3), (2, 1, 1, 3)],
    [(2, 1, 5, 3), (2, 4, 1, 3)],
    [(4, 10), (10,)],
    [(2, 5, 5, 3), ()],
]


@pytest.mark.parametrize("shapes", BROADCASTS)
@pytest.mark.parametrize("kind", ["add", "mul", "sub"])
def test_binary_broadcast(tf, kind, shapes):
    a, b = (_rand(*s) for s in shapes)
    got, shape = run(kind, [a, b])
    fn = {"add": tf.add, "mul": tf.multiply, "sub": tf.subtract}[kind]
    check(got, fn(a, b), shape)


def test_add_three_inputs_with_activation(tf):
    a, b, c = _rand(2, 4, 4, 3), _rand(2, 4, 4, 3), _rand(3)
    got, shape = run("add", [a, b, c], activation="relu6")
    check(got, tf.nn.relu6(tf.add_n([a, b, tf.broadcast_to(c, a.shape)])), shape)


# ---- concat, reshape, pad ----------------------------------------------------------------------------------
@pytest.mark.parametrize("axis,shapes", [
    (-1, [(2, 4, 4, 3), (2, 4, 4, 5)]),
    (3, [(2, 4, 4, 3), (2, 4, 4, 1), (2, 4, 4, 2)]),
    (1, [(2, 3, 4, 3), (2, 5, 4, 3)]),
    (2, [(2, 4, 1, 3), (2, 4, 6, 3)]),
    (-1, [(3, 7), (3, 2)]),
])
def test_concat(tf, axis, shapes):
    xs = [_rand(*s) for s in shapes]
    got, shape = run("concat", xs, axis=axis)
    check(got, tf.concat(xs, axis=axis), shape)


@pytest.mark.parametrize("in_shape,target", [
    ((2, 4, 4, 3), (-1,)), ((2, 4, 4, 3), (48,)), ((2, 4, 4, 3), (16, 3)), ((2, 48), (4, 4, 3)),
    ((2, 256), (1, 1, -1)), ((2, 6, 2, 4), (3, -1, 4)),
])
def test_reshape(tf, in_shape, target):
    x = _rand(*in_shape)
    got, shape = run("reshape", [x], shape=target)
    check(got, tf.reshape(x, (in_shape[0],) + target), shape)


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 2, 1, 0), (3, 0, 0, 2)])
@pytest.mark.parametrize("value", [0.0, -1.5])
def test_pad(tf, pads, value):
    x = _rand(2, 4, 5, 3)
    got, shape = run("pad", [x], pads=pads, value=value)
    want = tf.pad(x, [[0, 0], pads[:2], pads[2:], [0, 0]], constant_values=value)
    check(got, want, shape)


# ---- softmax and activations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,scale,beta", [((3, 10), 1.0, 1.0), ((2, 1000), 30.0, 1.0), ((2, 4, 4, 6), 5.0, 1.0),
                                             ((3, 10), 4.0, 0.5)])
def test_softmax(tf, shape, scale, beta):
    x = _rand(*shape, scale=scale)
    got, s = run("softmax", [x], beta=beta)
    check(got, tf.nn.softmax(x * beta, axis=-1), s, tol=1e-5)


ACTS = [
    ("relu", {}, lambda tf, x: tf.nn.relu(x)),
    ("relu6", {}, lambda tf, x: tf.nn.relu6(x)),
    ("leaky_relu", {"alpha": 0.1}, lambda tf, x: tf.nn.leaky_relu(x, alpha=0.1)),
    ("leaky_relu", {"alpha": 0.3}, lambda tf, x: tf.nn.leaky_relu(x, alpha=0.3)),
    ("leaky_relu", {}, lambda tf, x: tf.nn.leaky_relu(x)),                  # both default to 0.2
    ("sigmoid", {}, lambda tf, x: tf.math.sigmoid(x)),
    ("tanh", {}, lambda tf, x: tf.math.tanh(x)),
    ("relu_n1_to_1", {}, lambda tf, x: tf.clip_by_value(x, -1.0, 1.0)),
    ("hard_sigmoid", {}, lambda tf, x: tf.nn.relu6(x + 3.0) / 6.0),        # Keras 3 / TFLite definition
]


@pytest.mark.parametrize("name,attrs,fn", ACTS, ids=[f"{a[0]}{a[1].get('alpha', '')}" for a in ACTS])
def test_activation(tf, name, attrs, fn):
    x = _rand(3, 5, 5, 4, scale=6.0)
    x[0, 0, 0, :] = [0.0, -0.0, 30.0, -30.0]         # zero and saturating values
    got, shape = run("activation", [x], function=name, **attrs)
    check(got, fn(tf, x), shape, tol=1e-5)


def test_identity(tf):
    x = _rand(2, 3, 3, 2)
    got, shape = run("identity", [x])
    check(got, tf.identity(x), shape)


# ---- batch_norm ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape,eps,act", [((2, 6, 6, 5), 1e-3, None), ((2, 6, 6, 5), 1e-5, "relu"),
                                           ((4, 9), 1e-3, None)])
def test_batch_norm(tf, shape, eps, act):
    c = shape[-1]
    x = _rand(*shape, scale=3.0)
    gamma, beta, mean = _rand(c) + 1, _rand(c), _rand(c)
    var = np.abs(_rand(c)) + 0.1
    got, s = run("batch_norm", [x, gamma, beta, mean, var], epsilon=eps, activation=act)
    want = tf.nn.batch_normalization(x, mean, var, beta, gamma, eps)
    check(got, tf.nn.relu(want) if act else want, s)


# ---- upsample_nearest, mean ----------------------------------------------------------------------------
@pytest.mark.parametrize("hw,size", [((4, 5), (8, 10)), ((3, 3), (9, 6)), ((1, 1), (4, 4))])
def test_upsample_nearest_integer_scale(tf, hw, size):
    x = _rand(2, *hw, 3)
    got, shape = run("upsample_nearest", [x], size=size)
    check(got, tf.image.resize(x, size, method="nearest"), shape)


@pytest.mark.parametrize("hw,size", [((4, 5), (6, 7)), ((5, 5), (3, 8))])
def test_upsample_nearest_any_size_is_legacy_resize(tf, hw, size):
    x = _rand(2, *hw, 3)
    got, shape = run("upsample_nearest", [x], size=size)
    want = tf.raw_ops.ResizeNearestNeighbor(images=x, size=size, align_corners=False, half_pixel_centers=False)
    check(got, want, shape)


@pytest.mark.parametrize("axes,keepdims", [((1, 2), True), ((1, 2), False), ((-1,), False), ((1,), True)])
def test_mean(tf, axes, keepdims):
    x = _rand(2, 5, 4, 3, scale=4.0)
    got, shape = run("mean", [x], axes=axes, keepdims=keepdims)
    check(got, tf.reduce_mean(x, axis=axes, keepdims=keepdims), shape)


def test_every_registered_op_is_covered():
    covered = {"conv2d", "depthwise_conv2d", "dense", "max_pool2d", "avg_pool2d", "global_avg_pool",
               "global_max_pool", "add", "mul", "sub", "concat", "reshape", "pad", "softmax", "activation",
               "batch_norm", "identity", "upsample_nearest", "mean"}
    assert set(oplib.REGISTRY) <= covered, f"ops without a TensorFlow check: {set(oplib.REGISTRY) - covered}"
