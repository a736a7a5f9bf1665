"""to_tflite on the MLPerf Tiny models: load_tflite(file) -> to_tflite -> TFLM gives the original file's
outputs byte for byte (int8) or TFLM's float outputs (float), and load_tflite(to_tflite(g)) gives g back.

The oracle is TFLM running the original converter-made files; the rewritten files share no bytes with them
(tensors, buffers, options and operator codes are all rebuilt from the IR).
"""
from __future__ import annotations

import numpy as np
import pytest
import support
import tflite
import tflm_oracle

from emcgen import interpreter
from emcgen.errors import UnsupportedError
from emcgen.frontends.tflite import load_tflite
from emcgen.ir import Graph
from emcgen.tflite_int8.writer import to_tflite

INT8 = ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite", "vww_96_int8.tflite", "ad01_int8.tflite"]
FLOAT = [("pretrainedResnet.tflite", 60.0), ("kws_ref_model_float32.tflite", 20.0)]
_META_SKIP = ("tflite_tensors", "source", "dequantized_weights")


def assert_same_ir(a: Graph, b: Graph, op_names: bool = True) -> None:
    """Same inputs, outputs, ops (type, name, wiring, attrs), tensors (shape, dtype, data, quantization), meta.

    op_names=False: the frontend names ops after their operator index, which a float interface's QUANTIZE
    shifts by one."""
    assert (a.inputs, a.outputs) == (b.inputs, b.outputs)
    assert [(op.type, op.name if op_names else "", op.inputs, op.outputs) for op in a.ops] == \
           [(op.type, op.name if op_names else "", op.inputs, op.outputs) for op in b.ops]
    for x, y in zip(a.ops, b.ops, strict=True):
        assert x.attrs == y.attrs, x.name
    assert sorted(a.tensors) == sorted(b.tensors)
    for name, t in a.tensors.items():
        u = b.tensors[name]
        assert (t.shape, t.dtype, t.is_const) == (u.shape, u.dtype, u.is_const), name
        if t.is_const:
            np.testing.assert_array_equal(t.data, u.data, err_msg=name)
        assert (t.quant is None) == (u.quant is None), name
        if t.quant is not None:
            assert t.quant.axis == u.quant.axis, name
            np.testing.assert_array_equal(t.quant.scale, u.quant.scale, err_msg=name)
            np.testing.assert_array_equal(t.quant.zero_point, u.quant.zero_point, err_msg=name)
    strip = {k: v for k, v in a.meta.items() if k not in _META_SKIP}
    assert strip == {k: v for k, v in b.meta.items() if k not in _META_SKIP}


def _read(name):
    return support.shared("models", "mlperf_tiny", name).read_bytes()


@pytest.mark.parametrize("name", INT8)
def test_int8_model_round_trip_equals_the_original_in_tflm(name):
    blob = _read(name)
    graph = load_tflite(blob)
    written = to_tflite(graph)
    assert written[4:8] == b"TFL3" and tflite.Model.GetRootAs(written, 0).Version() == 3
    assert_same_ir(load_tflite(written), graph)
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    rng = np.random.default_rng(20261126)
    x = rng.integers(-128, 128, size=(100,) + shape, dtype=np.int8)
    x[0], x[1] = -128, 127
    (want,) = tflm_oracle.run(blob, x)
    (got,) = tflm_oracle.run(written, x)
    assert got.dtype == np.int8 and len(np.unique(want)) > 2
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name,scale", FLOAT)
def test_float_model_round_trip(name, scale):
    """Float models (kws: hybrid int8 weights, which emcgen dequantizes on load and writes as float32)."""
    graph = load_tflite(_read(name))
    written = to_tflite(graph)
    again = load_tflite(written)
    assert_same_ir(again, graph)
    assert "dequantized_weights" not in again.meta
    rng = np.random.default_rng(11)
    x = rng.normal(0.0, scale, size=(20,) + graph.tensors[graph.inputs[0]].shape[1:]).astype(np.float32)
    (got,) = tflm_oracle.run(written, x)
    want = interpreter.run(graph, x)[graph.outputs[0]]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def test_float_interface_round_trip():
    """An int8 graph written with a float interface: QUANTIZE in, DEQUANTIZE out, stripped again on load."""
    graph = load_tflite(_read("ad01_int8.tflite"))
    graph.meta["float_interface"] = {"inputs": ["x_float"], "outputs": ["y_float"]}
    written = to_tflite(graph)
    again = load_tflite(written)
    assert again.meta["float_interface"] == {"inputs": ["x_float"], "outputs": ["y_float"]}
    assert_same_ir(again, graph, op_names=False)
    assert [op.name for op in again.ops] == [f"dense_{k + 1}" for k in range(10)]
    q_in, q_out = graph.tensors[graph.inputs[0]].quant, graph.tensors[graph.outputs[0]].quant
    xq = np.random.default_rng(4).integers(-128, 128, size=(20, 640), dtype=np.int8)
    xf = (q_in.scale[0] * (xq.astype(np.float32) - q_in.zero_point[0])).astype(np.float32)
    (got,) = tflm_oracle.run(written, xf)
    (want,) = tflm_oracle.run(_read("ad01_int8.tflite"), xq)
    assert got.dtype == np.float32
    # TFLite's DEQUANTIZE: scale * (q - zero point) in double, rounded to float32
    expected = (np.float64(q_out.scale[0]) * (want.astype(np.int64) - q_out.zero_point[0])).astype(np.float32)
    np.testing.assert_array_equal(got, expected)


def test_unwritable_op_is_refused_with_the_layer_name():
    graph = load_tflite(_read("ad01_int8.tflite"))
    graph.ops[3].type = "upsample_nearest"
    with pytest.raises(UnsupportedError, match=r"layer 'dense_3' \(upsample_nearest\).*supported: conv2d"):
        to_tflite(graph)


def test_quantizing_and_writing_import_no_tensorflow():
    """TensorLayer .h5 -> optimize -> calibrate -> quantize_graph -> to_tflite: no TensorFlow, no tflite_micro."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; from emcgen.frontends import load_model; from emcgen.passes import optimize; "
            "from emcgen.calibration import calibrate; from emcgen.tflite_int8.quantizer import quantize_graph; "
            "from emcgen.tflite_int8.writer import to_tflite; "
            "g = optimize(load_model('examples/mnist/mnist_cnn.h5')); "
            "x = np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype(np.float32); "
            "blob = to_tflite(quantize_graph(g, calibrate(g, x))); assert blob[4:8] == b'TFL3'; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras', 'tflite_micro') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=support.ROOT)
    assert out.stdout.strip() == "[]"
