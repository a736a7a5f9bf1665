"""Keras frontend against Keras' own forward pass: MLPerf Tiny .h5 files (Keras 2), in-memory Keras 3
models, and their .keras / .h5 files. Where a layer's output can be named, every layer is compared."""
from __future__ import annotations

import os

import numpy as np
import pytest
import support

from emcgen import interpreter
from emcgen.errors import UnsupportedError
from emcgen.frontends import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    support.module("tensorflow")
    return support.module("keras")


def _layer_outputs(keras, model, x):
    """{layer name: Keras output} for every non-input layer with a single output tensor."""
    names = [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in names])
    outs = probe([x])
    return {n: np.asarray(o) for n, o in zip(names, outs, strict=True)}


def _compare_all(keras, model, graph, x, atol=1e-4, rtol=1e-5):
    want = _layer_outputs(keras, model, x)
    got = interpreter.run(graph, x, keep_all=True)
    for name, w in want.items():
        assert name in got, f"layer {name} has no tensor of that name"
        np.testing.assert_allclose(got[name], w, atol=atol, rtol=rtol, err_msg=name)
    return got


# ---- MLPerf Tiny float models (Keras 2 .h5) -------------------------------------------------------------
def _keras2_h5(keras, path):
    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):      # Keras 2 wrote groups=1, Keras 3 refuses it
        def __init__(self, *args, groups=None, **kwargs):
            super().__init__(*args, **kwargs)
    return keras.models.load_model(path, custom_objects={"DepthwiseConv2D": DepthwiseConv2D}, compile=False)


def _inputs(shape, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    ramp = np.linspace(0, 1, n, dtype=np.float32).reshape(shape)
    return np.stack([rng.uniform(0, 1, shape), rng.normal(0, 1, shape), ramp,
                     np.zeros(shape)]).astype(np.float32)


@pytest.mark.parametrize("file", ["vww_96.h5", "pretrainedResnet.h5", "ad01.h5"])
def test_mlperf_h5_matches_keras(keras, file):
    path = support.shared("models", "mlperf_tiny", file)
    graph = load_model(path)
    assert graph.meta["framework"] == "keras" and graph.meta["framework_version"].startswith("2.")
    model = _keras2_h5(keras, path)
    x = _inputs(graph.tensors[graph.inputs[0]].shape[1:], seed=len(file))
    got = _compare_all(keras, model, graph, x)
    final = got[graph.outputs[0]]
    np.testing.assert_allclose(final, np.asarray(model([x])), atol=1e-4, rtol=1e-5)


# ---- in-memory Keras 3 models and their files -------------------------------------------------------------
def _functional(keras):
    L = keras.layers
    inp = keras.Input((24, 24, 3), name="image")
    x = L.Rescaling(1 / 127.5, offset=-1.0, name="scale")(inp)
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_s2")(x)
    x = L.ZeroPadding2D(((1, 1), (1, 1)), name="zpad")(x)
    x = L.DepthwiseConv2D(3, depth_multiplier=2, padding="valid", use_bias=False, name="dw")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(max_value=6.0, name="relu6")(x)
    x = L.SeparableConv2D(12, 3, padding="same", dilation_rate=2, name="sep")(x)
    x = L.LeakyReLU(negative_slope=0.15, name="leaky")(x)
    a = L.MaxPooling2D(2, padding="same", name="maxp")(x)
    a = L.UpSampling2D(2, name="up")(a)
    b = L.AveragePooling2D(3, strides=1, padding="same", name="avgp")(x)
    s = L.Add(name="add3")([x, a, b])
    m = L.Multiply(name="gate")([s, L.Activation("sigmoid", name="sig")(b)])
    d = L.Subtract(name="sub")([m, x])
    c = L.Concatenate(name="cat")([d, s])
    c = L.Conv2D(6, 3, padding="valid", dilation_rate=2, activation="tanh", name="dil")(c)
    c = L.Dropout(0.3, name="drop")(c)
    c = L.BatchNormalization(center=False, scale=False, name="bn_plain")(c)
    shared = L.Dense(4, activation="leaky_relu", name="shared_fc")
    g1 = shared(L.GlobalAveragePooling2D(name="gap")(c))
    g2 = L.Flatten(name="flat_gmp")(L.GlobalMaxPooling2D(keepdims=True, name="gmp")(c))
    g2 = shared(g2)
    h1 = L.Dense(5, activation="softmax", name="probs")(L.Concatenate(name="heads")([g1, g2]))
    h2 = L.Dense(3, use_bias=False, name="pix_fc")(c)           # Dense on NHWC: a 1x1 convolution
    h2 = L.Activation("hard_sigmoid", name="hsig")(h2)
    h2 = L.Reshape((-1,), name="pix_flat")(h2)
    h2 = L.Softmax(name="pix_softmax")(h2)
    model = keras.Model(inp, [h1, h2], name="kfunc")
    rng = np.random.default_rng(11)
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            layer.set_weights([(rng.normal(0, 0.3, w.shape) + (1.0 if i == 0 and layer.scale else 0.0))
                               if i < len(layer.get_weights()) - 1 else rng.uniform(0.5, 1.5, w.shape)
                               for i, w in enumerate(layer.get_weights())])
        elif layer.weights:
            layer.set_weights([rng.normal(0, 0.2, w.shape) for w in layer.get_weights()])
    bn = model.get_layer("bn")                 # a large gain, so that the ReLU(max_value=6) really clips
    bn.set_weights([rng.uniform(4, 8, w.shape) if i == 0 else w for i, w in enumerate(bn.get_weights())])
    return model


@pytest.fixture(scope="module")
def functional(keras):
    model = _functional(keras)
    x = np.random.default_rng(2).uniform(0, 255, (3, 24, 24, 3)).astype(np.float32)
    return model, x


def _same_graph(a, b):
    assert [(o.type, o.name, o.attrs) for o in a.ops] == [(o.type, o.name, o.attrs) for o in b.ops]
    assert a.inputs == b.inputs and a.outputs == b.outputs
    for name, t in a.tensors.items():
        assert b.tensors[name].shape == t.shape, name
        if t.is_const:
            np.testing.assert_array_equal(b.tensors[name].data, t.data, err_msg=name)


def test_functional_object_matches_keras(keras, functional):
    model, x = functional
    graph = load_model(model)
    assert graph.meta["source_format"] == "object"
    assert graph.meta["preprocessing"]["rescaling"]["layer"] == "scale"
    got = _compare_all(keras, model, graph, x)
    want = model(x)
    for name, w in zip(graph.outputs, want, strict=True):
        np.testing.assert_allclose(got[name], np.asarray(w), atol=1e-4)
    assert got["relu6"].max() == 6.0 and (got["bn"] > 6).any()
    types = [op.type for op in graph.ops]
    assert types.count("dense") == 3 and "sub" in types and "mul" in types
    assert graph.op("pix_fc").type == "conv2d"


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_functional_file_gives_identical_graph(keras, functional, tmp_path, suffix):
    model, x = functional
    path = tmp_path / f"kfunc{suffix}"
    model.save(path)
    from_file, from_obj = load_model(path), load_model(model)
    assert from_file.meta["source_format"] == {".keras": "keras-v3", ".h5": "keras-h5"}[suffix]
    _same_graph(from_obj, from_file)
    a, b = interpreter.run(from_obj, x), interpreter.run(from_file, x)
    for name in from_obj.outputs:
        np.testing.assert_array_equal(a[name], b[name])


def test_sequential_models(keras, tmp_path):
    L = keras.layers
    with_input = keras.Sequential([keras.Input((10, 10, 2)), L.Conv2D(4, 3, activation="relu"),
                                   L.MaxPooling2D(), L.Flatten(), L.Dense(3, activation="softmax")], name="seq_in")
    built = keras.Sequential([L.Conv2D(4, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                              L.GlobalAveragePooling2D(), L.Dense(2)], name="seq_built")
    built.build((None, 10, 10, 2))
    x = np.random.default_rng(4).normal(0, 1, (2, 10, 10, 2)).astype(np.float32)
    for model in (with_input, built):
        graph = load_model(model)
        (got,) = interpreter.predict(graph, x)
        np.testing.assert_allclose(got, np.asarray(model(x)), atol=1e-4)
        for suffix in (".keras", ".h5"):
            path = tmp_path / f"{model.name}{suffix}"
            model.save(path)
            other = load_model(path)
            _same_graph(graph, other)


def test_unsupported_keras_layers(keras):
    L = keras.layers
    cases = [
        (L.Conv2DTranspose(2, 3, name="deconv"), r"'deconv' \(Conv2DTranspose\).*supported layers:.*Conv2D"),
        (L.ReLU(threshold=0.5, name="thr"), r"'thr' \(ReLU\).*threshold"),
        (L.UpSampling2D(2, interpolation="bilinear", name="bil"), r"'bil' \(UpSampling2D\).*bilinear"),
        (L.Conv2D(2, 3, activation="swish", name="sw"), r"'sw' \(Conv2D\).*'(swish|silu)'"),
    ]
    for layer, pattern in cases:
        inp = keras.Input((8, 8, 4))
        with pytest.raises(UnsupportedError, match=pattern):
            load_model(keras.Model(inp, layer(inp)))


def test_two_inputs_keep_their_order(keras):
    L = keras.layers
    b = keras.Input((6,), name="b_first_declared_second")
    a = keras.Input((4,), name="a_second_declared_first")
    y = L.Dense(3, name="fc")(L.Concatenate(name="cat")([L.Dense(5, name="fa")(a), b]))
    model = keras.Model([a, b], y)
    graph = load_model(model)
    assert graph.inputs == ["a_second_declared_first", "b_first_declared_second"]
    xa = np.random.default_rng(0).normal(size=(2, 4)).astype(np.float32)
    xb = np.random.default_rng(1).normal(size=(2, 6)).astype(np.float32)
    (got,) = interpreter.predict(graph, [xa, xb])
    np.testing.assert_allclose(got, np.asarray(model([xa, xb])), atol=1e-4)


def test_keras_v3_file_loads_without_tensorflow(functional, tmp_path):
    import subprocess
    import sys
    model, x = functional
    path = tmp_path / "kfunc.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np\n"
        "from emcgen.frontends import load_model\nfrom emcgen import interpreter\n"
        "g = load_model(sys.argv[1])\n"
        "out = interpreter.run(g, np.load(sys.argv[2]))\n"
        "np.save(sys.argv[3], out[g.outputs[0]])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tensorlayer')))\n")
    res = subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy")], capture_output=True, text=True, cwd=support.ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), np.asarray(model(x)[0]), atol=1e-4)
