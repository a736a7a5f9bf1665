"""The four MLPerf Tiny int8 models: emcgen (frontend + int8 interpreter) against TFLM, byte for byte.

Outputs are compared on 100 random int8 inputs (fixed seed) plus structured inputs; every intermediate
tensor is compared on a few inputs, so a mismatch names the first layer that diverges.
"""
from __future__ import annotations

import numpy as np
import pytest
import support
import tflm_oracle

from emcgen.frontends.tflite import load_tflite
from emcgen.tflite_int8.interpreter import run_int8

MODELS = ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite", "vww_96_int8.tflite", "ad01_int8.tflite"]


def _model(name):
    path = support.shared("models", "mlperf_tiny", name)
    return path.read_bytes(), load_tflite(path)


def _structured(shape) -> np.ndarray:
    """Constant maps, ramps along each axis, a checkerboard and sinusoids: inputs unlike random noise."""
    n = int(np.prod(shape))
    flat = np.arange(n, dtype=np.float64)
    items = [np.full(shape, v) for v in (-128, -1, 0, 1, 127)]
    items.append(np.linspace(-128, 127, n).reshape(shape))
    items.append(np.linspace(127, -128, n).reshape(shape))
    grid = np.indices(shape).sum(axis=0)
    items.append(np.where(grid % 2 == 0, 100, -100))
    for period in (7.0, 31.0, 113.0):
        items.append(127 * np.sin(2 * np.pi * flat / period).reshape(shape))
    if len(shape) == 3:  # ramps along H, W and C separately
        for axis in range(3):
            idx = np.indices(shape)[axis]
            items.append(-128 + 255 * idx / max(shape[axis] - 1, 1))
    return np.stack([np.clip(np.round(x), -128, 127) for x in items]).astype(np.int8)


@pytest.mark.parametrize("name", MODELS)
def test_outputs_equal_tflm(name):
    blob, graph = _model(name)
    assert graph.meta["quantized"] is True
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    x = np.random.default_rng(20261126).integers(-128, 128, size=(100,) + shape, dtype=np.int8)
    if name != "ad01_int8.tflite":
        x = np.concatenate([x, _structured(shape)])
    got = run_int8(graph, x)[graph.outputs[0]]
    (want,) = tflm_oracle.run(blob, x)
    assert got.dtype == np.int8 and got.shape == want.shape
    diff = np.flatnonzero((got != want).reshape(len(x), -1).any(axis=1))
    assert diff.size == 0, f"{name}: {diff.size} of {len(x)} inputs differ from TFLM (first: {diff[:5]})"


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_equals_tflm(name):
    blob, graph = _model(name)
    index = graph.meta["tflite_tensors"]
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    rng = np.random.default_rng(7)
    for x in [rng.integers(-128, 128, size=(1,) + shape, dtype=np.int8), _structured(shape)[5:6]]:
        ours = run_int8(graph, x, keep_all=True)
        theirs = tflm_oracle.all_tensors(blob, x, index.values())
        compared = 0
        for op in graph.ops:
            for out in op.outputs:
                want = theirs[index[out]].reshape(ours[out].shape)
                assert np.array_equal(ours[out], want), (
                    f"{name}: first divergence at op {op.name} ({op.type}) output {out!r}: "
                    f"{int((ours[out] != want).sum())} of {want.size} values differ")
                compared += 1
        assert compared == len(graph.ops)


def test_float_inputs_are_quantized_like_tflite():
    """A float batch is quantized with the input's parameters; the result equals feeding those int8 values."""
    blob, graph = _model("kws_ref_model.tflite")
    q = graph.tensors[graph.inputs[0]].quant
    rng = np.random.default_rng(3)
    xf = rng.normal(0, 30, size=(20, 49, 10, 1)).astype(np.float32)
    xq = np.floor(np.abs(xf / q.scale[0]) + 0.5) * np.sign(xf) + q.zero_point[0]
    xq = np.clip(xq, -128, 127).astype(np.int8)
    got = run_int8(graph, xf)[graph.outputs[0]]
    (want,) = tflm_oracle.run(blob, xq)
    np.testing.assert_array_equal(got, want)
