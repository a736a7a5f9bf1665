"""The MNIST example through the float -> int8 quantizer, checked against TFLM on the held-out digits.

examples/mnist/mnist_cnn.h5 -> load_model -> optimize -> calibrate (minmax, kld, percentile) on
examples/mnist/calibration -> quantize_graph -> to_tflite. On the last 2,000 digits of mnist10k.npz (never
used for training or calibration) TFLM running the written file must give run_int8's bytes for every output,
every intermediate tensor must agree on a few digits, and the int8 accuracy must be within one point of the
float accuracy recorded in examples/mnist/float_accuracy.json.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import support
import tflm_oracle
from test_writer_roundtrip import assert_same_ir

from emcgen import interpreter
from emcgen.calibration import calibrate
from emcgen.datasets import load_dataset
from emcgen.frontends import load_model
from emcgen.frontends.tflite import load_tflite
from emcgen.passes import optimize
from emcgen.tflite_int8 import quant as Q
from emcgen.tflite_int8 import run_int8
from emcgen.tflite_int8.quantizer import quantize_graph
from emcgen.tflite_int8.writer import to_tflite

MNIST = support.ROOT / "examples" / "mnist"
HELD_OUT = 2000


@pytest.fixture(scope="module")
def mnist():
    graph = optimize(load_model(MNIST / "mnist_cnn.h5"))
    calib = load_dataset(MNIST / "calibration", graph.tensors[graph.inputs[0]].shape[1:], func="img_0_1")
    with np.load(support.shared("datasets", "mnist10k.npz")) as npz:
        images, labels = npz["images"][-HELD_OUT:], npz["labels"][-HELD_OUT:]
    x = (images.astype(np.float32) / np.float32(255))[..., None]   # img_0_1, as the calibration images
    record = json.loads((MNIST / "float_accuracy.json").read_text())
    return {"graph": graph, "calib": calib, "x": x, "y": labels.astype(np.int64), "float": record}


def _int8_inputs(q, x):
    t = q.tensors[q.inputs[0]].quant
    return Q.quantize_float(x, t.scale[0], t.zero_point[0])


@pytest.mark.parametrize("method", ["minmax", "kld", "percentile"])
def test_mnist_int8_equals_tflm_and_keeps_the_accuracy(mnist, method):
    graph = mnist["graph"]
    q = quantize_graph(graph, calibrate(graph, mnist["calib"], method))
    assert q.meta["quantized"] is True and q.meta["calibration"]["method"] == method
    assert all(t.dtype in ("int8", "int32") for t in q.tensors.values())
    blob = to_tflite(q, float_interface=False)
    xq = _int8_inputs(q, mnist["x"])
    got = run_int8(q, xq)[q.outputs[0]]
    (want,) = tflm_oracle.run(blob, xq)
    assert got.shape == want.shape == (HELD_OUT, 10)
    diff = np.flatnonzero((got != want).any(axis=1))
    assert diff.size == 0, f"{method}: {diff.size} of {HELD_OUT} digits differ from TFLM (first {diff[:5]})"

    int8_acc = float((want.argmax(axis=1) == mnist["y"]).mean())
    float_acc = float(mnist["float"]["accuracy"])
    print(f"MNIST held-out {HELD_OUT}: float {float_acc:.4f}, int8 ({method}) {int8_acc:.4f}")
    assert abs(int8_acc - float_acc) <= 0.01, (method, int8_acc, float_acc)


def test_mnist_every_layer_equals_tflm(mnist):
    graph = mnist["graph"]
    q = quantize_graph(graph, calibrate(graph, mnist["calib"], "minmax"))
    blob = to_tflite(q, float_interface=False)
    written = load_tflite(blob)
    assert_same_ir(written, _renamed_like_frontend(q, written))
    index = written.meta["tflite_tensors"]
    xq = _int8_inputs(q, mnist["x"][:4])
    for k in range(4):
        ours = run_int8(q, xq[k:k + 1], keep_all=True)
        theirs = tflm_oracle.all_tensors(blob, xq[k:k + 1], [index[op.outputs[0]] for op in q.ops])
        for op in q.ops:
            out = op.outputs[0]
            np.testing.assert_array_equal(ours[out], theirs[index[out]].reshape(ours[out].shape), err_msg=op.name)


def _renamed_like_frontend(q, written):
    """q with the frontend's op names ("<type>_<index>") and meta, so the rest must match exactly."""
    g = q.copy()
    for op, other in zip(g.ops, written.ops, strict=True):
        op.name = other.name
    g.meta = {**written.meta}
    return g


def test_mnist_float_interface_file_gives_the_dequantized_int8_outputs(mnist):
    """Written with its float interface (the default for a quantized float model), TFLM takes the float
    pixels and returns floats: exactly run_int8 on the floats, dequantized as TFLite's DEQUANTIZE does."""
    graph = mnist["graph"]
    q = quantize_graph(graph, calibrate(graph, mnist["calib"], "percentile"))
    assert q.meta["float_interface"] == {"inputs": ["input"], "outputs": ["dense2"]}
    x = mnist["x"][:200]
    (want,) = tflm_oracle.run(to_tflite(q), x)
    out = q.tensors[q.outputs[0]].quant
    got = run_int8(q, x)[q.outputs[0]]
    expected = (np.float64(out.scale[0]) * (got.astype(np.int64) - out.zero_point[0])).astype(np.float32)
    assert want.dtype == np.float32
    np.testing.assert_array_equal(want, expected)
    # and close to the float model: the logits' argmax agrees on almost every digit
    float_logits = interpreter.run(graph, x)[graph.outputs[0]]
    assert (want.argmax(axis=1) == float_logits.argmax(axis=1)).mean() >= 0.98
