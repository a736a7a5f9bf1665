"""The TFLite frontend itself: IR structure and metadata, layouts, errors for bad or unsupported input."""
from __future__ import annotations

import numpy as np
import pytest
import support
import tflm_oracle
from tflm_oracle import ModelBuilder

from emcgen import interpreter
from emcgen.errors import EmcError, FormatError, UnsupportedError
from emcgen.frontends.tflite import load_tflite


def _kws():
    return support.shared("models", "mlperf_tiny", "kws_ref_model.tflite")


def test_kws_int8_structure_and_meta():
    path = _kws()
    graph = load_tflite(path)
    graph.validate()
    assert graph.name == "kws_ref_model"
    assert [op.type for op in graph.ops] == ["conv2d"] + ["depthwise_conv2d", "conv2d"] * 4 + \
        ["avg_pool2d", "reshape", "dense", "softmax"]
    assert graph.meta["quantized"] is True and graph.meta["framework"] == "tflite"
    assert graph.meta["source"] == str(path) and graph.meta["input_names"] == ["input_1"]
    assert graph.meta["input_quant"] == {"input_1": {"scale": [pytest.approx(0.5847029, abs=1e-7)],
                                                     "zero_point": [83]}}
    assert graph.meta["output_quant"] == {"Identity": {"scale": [0.00390625], "zero_point": [-128]}}
    conv0 = graph.ops[0]
    # SAME with a 10x4 kernel, stride 2 on 49x10: total padding 9 rows (4 + 5) and 2 columns
    assert conv0.attrs["stride"] == (2, 2) and conv0.attrs["pads"] == (4, 5, 1, 1)
    w = graph.tensors[conv0.inputs[1]]
    assert w.shape == (10, 4, 1, 64) and w.dtype == "int8"
    assert graph.tensors[conv0.inputs[2]].dtype == "int32"
    assert conv0.attrs["activation"] == "relu"
    assert all(t.quant is not None for t in graph.tensors.values() if t.dtype == "int8")
    assert set(graph.meta["tflite_tensors"]) == {n for op in graph.ops for n in op.outputs} | {"input_1"}
    from_bytes = load_tflite(path.read_bytes(), name="kws")
    assert from_bytes.summary().splitlines()[1:] == graph.summary().splitlines()[1:]
    assert from_bytes.meta["source"] is None


def test_reading_a_tflite_imports_no_tensorflow():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from emcgen.frontends import load_model; "
            "from emcgen.tflite_int8 import run_int8; "
            f"g = load_model({str(support.shared('models', 'mlperf_tiny', 'vww_96_int8.tflite'))!r}); "
            "run_int8(g, np.zeros((1, 96, 96, 3), np.int8)); "
            "print(sorted(m for m in ('tensorflow', 'keras', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=support.ROOT)
    assert out.stdout.strip() == "[]"


def test_not_a_tflite_file(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(FormatError, match="model.tflite is not a TFLite flatbuffer"):
        load_tflite(bad)
    with pytest.raises(EmcError, match="cannot read TFLite model"):
        load_tflite(tmp_path / "missing.tflite")


def test_truncated_file_is_a_format_error():
    blob = _kws().read_bytes()
    with pytest.raises(FormatError, match="<bytes>"):
        load_tflite(blob[: len(blob) // 3])


def test_unsupported_op_names_index_opcode_and_the_supported_list():
    b = ModelBuilder()
    x = b.input("x", (1, 4), "float32")
    r = b.tensor("r", (1, 4), "float32")
    b.op("RELU", [x], [r])
    y = b.output("y", (1, 4), "float32")
    b.op("SUB", [r, x], [y], "SubOptions")
    with pytest.raises(UnsupportedError) as info:
        load_tflite(b.build())
    msg = str(info.value)
    assert "operator 1 (SUB) is not supported; supported:" in msg
    assert "CONV_2D" in msg and "SOFTMAX" in msg and "\n" not in msg


def test_grouped_conv_is_refused():
    b = ModelBuilder()
    x = b.input("x", (1, 5, 5, 4), "float32")
    w = b.tensor("w", (6, 3, 3, 2), "float32", data=np.ones((6, 3, 3, 2), np.float32))
    y = b.output("y", (1, 5, 5, 6), "float32")
    b.op("CONV_2D", [x, w], [y], "Conv2DOptions", padding=0, strideH=1, strideW=1, dilationHFactor=1,
         dilationWFactor=1)
    with pytest.raises(UnsupportedError, match=r"operator 0 \(CONV_2D\): grouped convolution"):
        load_tflite(b.build())


def test_dynamic_batch_flatten_chain_is_dropped():
    """Keras 3 with a dynamic batch flattens with SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE; the shape
    computation disappears and the reshape keeps the batch dimension."""
    b = ModelBuilder()
    x = b.input("x", (1, 2, 2, 3), "float32")
    shape = b.tensor("shape", (4,), "int32")
    b.op("SHAPE", [x], [shape], "ShapeOptions", outType=2)
    batch = b.tensor("batch", (), "int32")
    slice_args = [b.tensor(n, (1,), "int32", data=[v]) for n, v in (("begin", 0), ("end", 1), ("strides", 1))]
    b.op("STRIDED_SLICE", [shape] + slice_args, [batch], "StridedSliceOptions", shrinkAxisMask=1)
    packed = b.tensor("packed", (2,), "int32")
    b.op("PACK", [batch, b.tensor("minus1", (), "int32", data=np.int32(-1))], [packed], "PackOptions",
         valuesCount=2, axis=0)
    y = b.output("y", (1, 12), "float32")
    b.op("RESHAPE", [x, packed], [y])
    blob = b.build()
    graph = load_tflite(blob)
    assert [op.type for op in graph.ops] == ["reshape"]
    assert graph.ops[0].attrs["shape"] == (12,)
    x_val = np.random.default_rng(0).normal(size=(3, 2, 2, 3)).astype(np.float32)
    (want,) = tflm_oracle.run(blob, x_val)
    np.testing.assert_array_equal(interpreter.run(graph, x_val)["y"], want)


def test_reshape_that_moves_the_batch_is_refused():
    b = ModelBuilder()
    x = b.input("x", (1, 4, 3), "float32")
    y = b.output("y", (4, 3), "float32")
    b.op("RESHAPE", [x, b.tensor("s", (2,), "int32", data=[4, 3])], [y])
    with pytest.raises(UnsupportedError, match="must keep a leading batch dimension"):
        load_tflite(b.build())


def test_float16_weights_behind_dequantize_are_folded():
    """TFLite's float16 post-training quantization stores FLOAT16 weights + DEQUANTIZE; emcgen folds them
    to float32. Oracle: TFLM on the same model with the weights stored as float32 (exact widening)."""
    rng = np.random.default_rng(1)
    w16 = rng.normal(0, 0.5, (4, 3, 3, 2)).astype(np.float16)

    def build(half: bool):
        b = ModelBuilder()
        x = b.input("x", (1, 6, 6, 2), "float32")
        if half:
            wh = b.tensor("w16", w16.shape, "float16", data=w16)
            w = b.tensor("w", w16.shape, "float32")
            b.op("DEQUANTIZE", [wh], [w])
        else:
            w = b.tensor("w", w16.shape, "float32", data=w16.astype(np.float32))
        y = b.output("y", (1, 6, 6, 4), "float32")
        b.op("CONV_2D", [x, w], [y], "Conv2DOptions", padding=0, strideH=1, strideW=1, dilationHFactor=1,
             dilationWFactor=1)
        return b.build()

    graph = load_tflite(build(True))
    assert [op.type for op in graph.ops] == ["conv2d"] and graph.meta["dequantized_weights"] == ["w"]
    x = rng.normal(size=(4, 6, 6, 2)).astype(np.float32)
    (want,) = tflm_oracle.run(build(False), x)
    np.testing.assert_allclose(interpreter.run(graph, x)["y"], want, rtol=0, atol=1e-5)


def test_uint8_activations_are_refused():
    b = ModelBuilder()
    x = b.input("x", (1, 4), "float32")
    b.tensors.append(b.me.Tensor(shape=(1, 4), dtype=b.fb.TensorType.UINT8, name="q",
                                 quantization=b.me.Quantization(0.1, 128)))
    q = b.tensors[-1]
    b.op("QUANTIZE", [x], [q])
    y = b.output("y", (1, 4), "float32")
    b.op("DEQUANTIZE", [q], [y])
    with pytest.raises(UnsupportedError, match="uint8"):
        load_tflite(b.build())
