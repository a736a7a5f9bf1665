"""TensorLayer frontend against TensorLayer's own forward pass (the float truth for TL models).

Every model here is built with TensorLayer in the test, run by TensorLayer, then read by emcgen from the
object and from a TensorLayer `Model.save` file; emcgen's float interpreter must agree with TensorLayer.
"""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import support
from PIL import Image

from emcgen import interpreter
from emcgen.errors import UnsupportedError
from emcgen.frontends import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tl():
    """TensorFlow + TensorLayer, once per module; np.float shim only while this module runs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    support.module("tensorflow")
    added = not hasattr(np, "float")
    if added:
        np.float = float   # TL 2.2.5 SeparableConv2d still calls np.float (removed in numpy 1.24)
    yield support.module("tensorlayer")
    if added:
        del np.float


def _tl_forward(model, x):
    model.eval()
    out = model(x)
    return [np.asarray(o) for o in out] if isinstance(out, list) else [np.asarray(out)]


def _emc_forward(graph, x):
    res = interpreter.run(graph, x)
    return [res[n] for n in graph.outputs]


def _short(name: str) -> str:
    return name.split("/")[-1].split(":")[0]


def _assign(tf, layer, values: dict):
    for w in layer.all_weights:
        w.assign(np.asarray(values[_short(w.name)], np.float32).reshape(tuple(w.shape)))


# ---- (a) the seed's CIFAR-10 network ----------------------------------------------------------------------
README_LOGITS = [1.00093, -5.36398, 1.54882, 0.06387, 0.46718, -0.59183, -3.54216, 0.47537, -0.64025, -3.75309]


def _plane():
    img = Image.open(support.shared("fixtures", "kmodel_v3", "maix-emc_plane.bmp")).convert("RGB")
    return (np.asarray(img, np.float32) / 255.0)[None]


def test_cifar10_file_matches_readme_and_tensorlayer(tl):
    import tensorflow as tf
    from tensorlayer.layers import BatchNorm, Conv2d, Dense, Flatten, Input, MaxPool2d
    path = support.shared("models", "maix-emc", "cifar10.h5")
    graph = load_model(path)
    x = _plane()
    (got,) = _emc_forward(graph, x)
    np.testing.assert_allclose(got[0], README_LOGITS, atol=1e-5)

    # the same architecture in TensorLayer, weights read straight from the file
    ni = Input([None, 32, 32, 3], name="in")
    n = Conv2d(32, (3, 3), (1, 1), padding="SAME", name="conv1")(ni)
    n = BatchNorm(decay=0.99, epsilon=1e-5, act=tf.nn.relu, name="batch1")(n)
    n = MaxPool2d((3, 3), (2, 2), padding="SAME", name="pool1")(n)
    n = Conv2d(64, (3, 3), (1, 1), padding="SAME", name="conv2")(n)
    n = BatchNorm(decay=0.99, epsilon=1e-5, act=tf.nn.relu, name="batch2")(n)
    n = MaxPool2d((3, 3), (2, 2), padding="SAME", name="pool2")(n)
    n = Flatten(name="flatten")(n)
    n = Dense(16, act=tf.nn.relu, name="denserelu")(n)
    n = Dense(10, name="output")(n)
    model = tl.models.Model(inputs=ni, outputs=n, name="cnn_frontend_test")
    with h5py.File(path, "r") as f:
        for layer in model.all_layers:
            if layer.all_weights:
                sub = f[layer.name][layer.name]           # <layer>/<layer>/<var>:0
                _assign(tf, layer, {_short(k): np.asarray(sub[k]) for k in sub})
    (want,) = _tl_forward(model, x)
    np.testing.assert_allclose(got, want, atol=1e-4)
    np.testing.assert_allclose(want[0], README_LOGITS, atol=1e-5)     # the TL build is the README's model
    # and the in-memory model gives the same graph output
    (obj,) = _emc_forward(load_model(model), x)
    np.testing.assert_allclose(obj, want, atol=1e-4)


# ---- (b) MobileNetV1-0.25, Maix-EMC variant --------------------------------------------------------------
_FILTERS = [32, 64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
_STRIDE2 = {0, 2, 4, 6, 12}        # the first conv and depthwise blocks 2, 4, 6, 12


def _mobilenet(tl, tf, params):
    from tensorlayer.layers import (
        BatchNorm,
        Conv2d,
        DepthwiseConv2d,
        Flatten,
        GlobalMeanPool2d,
        Input,
        Reshape,
        ZeroPad2d,
    )

    def bn(n, name):
        return BatchNorm(decay=0.99, epsilon=1e-3, act=tf.nn.relu6, name=name)(n)

    def strided(n, i, name):
        if i in _STRIDE2:
            return ZeroPad2d(((1, 1), (1, 1)), name=f"{name}_pad")(n), (2, 2), "VALID"
        return n, (1, 1), "SAME"

    ni = Input([None, 224, 224, 3], name="input")
    n, s, p = strided(ni, 0, "conv")
    n = Conv2d(_FILTERS[0] // 4, (3, 3), s, padding=p, b_init=None, name="conv")(n)
    n = bn(n, "conv_bn")
    for i in range(1, 14):
        n, s, p = strided(n, i, f"depth{i}")
        n = DepthwiseConv2d((3, 3), s, padding=p, b_init=None, name=f"depth{i}_dw")(n)
        n = bn(n, f"depth{i}_bn1")
        n = Conv2d(_FILTERS[i] // 4, (1, 1), (1, 1), padding="SAME", b_init=None, name=f"depth{i}_pw")(n)
        n = bn(n, f"depth{i}_bn2")
    n = GlobalMeanPool2d(name="globalmeanpool")(n)
    n = Reshape([-1, 1, 1, 256], name="reshape")(n)
    n = Conv2d(1000, (1, 1), (1, 1), name="out")(n)
    n = Flatten(name="flatten")(n)
    model = tl.models.Model(inputs=ni, outputs=n, name="mobilenetv1_025")
    # the npz holds Keras order: conv kernel; BN gamma, beta, mean, variance; last conv kernel + bias
    it = iter(params)
    for layer in model.all_layers:
        if not layer.all_weights:
            continue
        if type(layer).__name__ == "BatchNorm":
            values = dict(zip(["gamma", "beta", "moving_mean", "moving_var"], [next(it) for _ in range(4)],
                              strict=True))
        else:
            values = {_short(w.name): next(it) for w in layer.all_weights}
        _assign(tf, layer, values)
    assert next(it, None) is None, "every array of the npz is used"
    return model


@pytest.fixture(scope="module")
def mobilenet(tl):
    import tensorflow as tf
    params = list(np.load(support.shared("models", "maix-emc", "mbnetv1_0.25.npz"), allow_pickle=True)["params"])
    assert len(params) == 137
    model = _mobilenet(tl, tf, params)
    img = Image.open(support.shared("models", "maix-emc", "tiger224.bmp")).convert("RGB")
    x = (np.asarray(img, np.float32) / 255.0)[None]
    return model, x, _tl_forward(model, x)[0]


def test_mobilenet_classifies_tiger_like_tensorlayer(mobilenet):
    model, x, want = mobilenet
    labels = support.shared("models", "maix-emc", "imagenet_labels.txt").read_text().splitlines()
    graph = load_model(model)
    assert graph.meta["framework"] == "tensorlayer" and graph.meta["source_format"] == "object"
    (got,) = _emc_forward(graph, x)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert int(np.argmax(want)) == 292 and int(np.argmax(got)) == 292
    assert "tiger" in labels[292].lower()
    e = np.exp(got[0] - got[0].max())
    assert abs(e[292] / e.sum() - 0.747) < 0.001        # README: 0.747 with [0, 1] inputs
    types = [op.type for op in graph.ops]
    assert types.count("pad") == 5 and types.count("depthwise_conv2d") == 13


def test_mobilenet_saved_file_gives_identical_outputs(mobilenet, tmp_path):
    model, x, want = mobilenet
    path = tmp_path / "mbnet.h5"
    model.save(str(path), save_weights=True)
    from_file = load_model(path)
    from_obj = load_model(model)
    assert from_file.meta["source_format"] == "tensorlayer-h5"
    assert [(o.type, o.attrs) for o in from_file.ops] == [(o.type, o.attrs) for o in from_obj.ops]
    (a,), (b,) = _emc_forward(from_file, x), _emc_forward(from_obj, x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, want, atol=1e-4)


# ---- a branchy model ----------------------------------------------------------------------------------------
def _branchy(tl, tf, leaky, name):
    from tensorlayer.layers import (
        BatchNorm2d,
        Concat,
        Conv2d,
        Dense,
        DepthwiseConv2d,
        Dropout,
        Elementwise,
        GlobalMaxPool2d,
        GlobalMeanPool2d,
        Input,
        MaxPool2d,
        MeanPool2d,
        SeparableConv2d,
        UpSampling2d,
        ZeroPad2d,
    )
    ni = Input([None, 20, 20, 3], name="in")
    a = Conv2d(8, (3, 3), (1, 1), act=leaky, padding="SAME", name="c1")(ni)
    b = SeparableConv2d(8, (3, 3), (1, 1), act=tf.nn.relu6, padding="SAME", name="sep")(a)
    b = BatchNorm2d(act=tf.nn.relu, name="bn")(b)
    c = Elementwise(tf.add, act=tf.nn.relu, name="res")([a, b])
    d = MaxPool2d((2, 2), (2, 2), "SAME", name="mp")(c)
    d = Conv2d(6, (3, 3), (1, 1), padding="SAME", dilation_rate=(2, 2), act=tf.nn.tanh, name="dil")(d)
    d = UpSampling2d((2, 2), method="nearest", name="up")(d)
    e = Concat(-1, name="cat")([c, d])
    e = ZeroPad2d(((1, 2), (0, 1)), name="zp")(e)
    e = DepthwiseConv2d((3, 3), (2, 2), padding="VALID", depth_multiplier=2, name="dw")(e)
    e = MeanPool2d((3, 3), (2, 2), "SAME", name="ap")(e)
    f = GlobalMaxPool2d(name="gmp")(e)
    f = Dropout(0.8, name="drop")(f)
    g = Dense(5, act=tf.nn.softmax, name="probs")(f)
    h = Dense(3, act=tf.nn.sigmoid, name="sig")(f)
    t = GlobalMeanPool2d(name="gap")(c)
    t = Dense(4, act=tf.nn.tanh, name="tanh_head")(t)
    model = tl.models.Model(inputs=ni, outputs=[g, h, t], name=name)
    rng = np.random.default_rng(7)
    for layer in model.all_layers:       # fan-in scaled kernels; non-trivial BN statistics and biases
        for w in layer.all_weights:
            shape = tuple(w.shape)
            if len(shape) > 1:
                v = rng.normal(0, 1.5, shape) / np.sqrt(np.prod(shape[:-1]))
            else:
                v = rng.normal(0, 0.3, shape) + (1.0 if "gamma" in w.name else 0.0)
            if "var" in w.name:
                v = np.abs(v) + 0.5
            w.assign(v.astype(np.float32))
    return model


@pytest.fixture(scope="module")
def branchy(tl):
    import tensorflow as tf
    model = _branchy(tl, tf, tl.act.leaky_relu, "branchy")
    x = np.random.default_rng(3).uniform(-1, 1, (3, 20, 20, 3)).astype(np.float32)
    return model, x, _tl_forward(model, x)


def test_branchy_model_from_object_matches_tensorlayer(branchy):
    model, x, want = branchy
    graph = load_model(model)
    got = _emc_forward(graph, x)
    assert len(got) == 3
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
    types = {op.type for op in graph.ops}
    assert {"add", "concat", "upsample_nearest", "depthwise_conv2d", "softmax", "pad", "global_max_pool",
            "avg_pool2d", "batch_norm"} <= types
    acts = {op.attrs.get("activation") for op in graph.ops}
    assert {"leaky_relu", "relu6", "relu", "tanh", "sigmoid"} <= acts
    assert graph.op("dil").attrs["dilation"] == (2, 2)


def test_branchy_model_from_saved_file_matches_tensorlayer(branchy, tmp_path):
    model, x, want = branchy
    path = tmp_path / "branchy.h5"
    model.save(str(path), save_weights=True)
    graph = load_model(path)
    for g, w in zip(_emc_forward(graph, x), want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)


def test_lambda_activation_object_ok_file_refused(tl, tmp_path):
    import tensorflow as tf
    model = _branchy(tl, tf, lambda t: tl.act.leaky_relu(t, 0.1), "branchy_lambda")
    x = np.random.default_rng(5).uniform(-1, 1, (2, 20, 20, 3)).astype(np.float32)
    want = _tl_forward(model, x)
    graph = load_model(model)              # identified by probing the callable
    assert graph.op("c1").attrs["alpha"] == pytest.approx(0.1)
    for g, w in zip(_emc_forward(graph, x), want, strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4)
    path = tmp_path / "lambda.h5"
    model.save(str(path), save_weights=True)
    with pytest.raises(UnsupportedError, match=r"'c1' \(Conv2d\).*lambda"):
        load_model(path)


def test_weights_only_file_and_unsupported_layers(tl, tmp_path):
    import tensorflow as tf
    from tensorlayer.layers import DeConv2d, Input, UpSampling2d
    model = _branchy(tl, tf, tf.nn.relu, "branchy_relu")
    path = tmp_path / "weights_only.h5"
    model.save_weights(str(path))
    with pytest.raises(UnsupportedError, match="only weights"):
        load_model(path)

    ni = Input([None, 8, 8, 3], name="in")
    n = UpSampling2d((2, 2), name="bilin")(ni)          # TensorLayer's default method is bilinear
    with pytest.raises(UnsupportedError, match=r"'bilin' \(UpSampling2d\).*bilinear.*supported: nearest"):
        load_model(tl.models.Model(inputs=ni, outputs=n))
    ni = Input([None, 8, 8, 3], name="in")
    n = DeConv2d(4, (3, 3), (2, 2), name="deconv")(ni)
    with pytest.raises(UnsupportedError, match=r"'deconv' \(DeConv2d\).*supported layers:.*Conv2d"):
        load_model(tl.models.Model(inputs=ni, outputs=n))
