"""Float MLPerf Tiny models: frontend + emcgen's float interpreter against TFLM's float kernels (1e-4).

kws_ref_model_float32.tflite is a "hybrid" model: float activations but int8 constant conv weights,
which TFLM refuses ("Hybrid models are not supported"). emcgen dequantizes such weights at load time and
computes in float; the oracle is the same model with an explicit TFLM DEQUANTIZE op on each of those
weights (tflm_oracle.dequantize_constant_weights), i.e. TFLM's own dequantization and float kernels.
"""
from __future__ import annotations

import numpy as np
import pytest
import support
import tflm_oracle

from emcgen import interpreter
from emcgen.frontends.tflite import load_tflite


def _inputs(shape, n, scale):
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, scale, size=(n,) + shape).astype(np.float32)
    ramp = np.linspace(-2 * scale, 2 * scale, int(np.prod(shape)), dtype=np.float32).reshape((1,) + shape)
    return np.concatenate([x, ramp, np.zeros((1,) + shape, np.float32)])


@pytest.mark.parametrize("name,scale", [("pretrainedResnet.tflite", 60.0),
                                        ("kws_ref_model_float32.tflite", 20.0)])
def test_float_model_matches_tflm(name, scale):
    blob = support.shared("models", "mlperf_tiny", name).read_bytes()
    graph = load_tflite(blob, name=name)
    assert graph.meta["quantized"] is False
    if name.startswith("kws"):
        assert len(graph.meta["dequantized_weights"]) == 5
        blob = tflm_oracle.dequantize_constant_weights(blob)
    x = _inputs(graph.tensors[graph.inputs[0]].shape[1:], 30, scale)
    got = interpreter.run(graph, x)[graph.outputs[0]]
    (want,) = tflm_oracle.run(blob, x)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert np.abs(got - want).max() < 1e-4

    # every layer, relative to the layer's magnitude (pre-softmax values are large)
    index = graph.meta["tflite_tensors"]
    ours = interpreter.run(graph, x[:1], keep_all=True)
    # (the DEQUANTIZE rewrite appends its tensors, so the original indices still hold)
    theirs = tflm_oracle.all_tensors(blob, x[:1], index.values())
    for op in graph.ops:
        out = op.outputs[0]
        want = theirs[index[out]].reshape(ours[out].shape)
        err = np.abs(ours[out] - want).max() / max(1.0, float(np.abs(want).max()))
        assert err < 1e-5, f"{name}: op {op.name} output {out!r} differs by {err:.2e} (relative)"
