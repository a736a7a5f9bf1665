"""quantize_graph against the TF converter's full-integer post-training quantization (TF 2.21).

One Keras model with conv+relu, depthwise+relu6, max pool, add, two concats (one fed through a max pool,
one by a dense layer and a global average pool), average pool, flatten, dense and softmax goes both ways:
- TF: TFLiteConverter, Optimize.DEFAULT, representative dataset, int8 in/out; also the calibrate-only model,
  whose tensors carry the min/max statistics the converter used;
- emcgen: load_model(keras) -> optimize -> calibrate(minmax) on the same samples -> quantize_graph.

With the converter's own statistics as ranges, every scale, zero point, int8 weight and int32 bias must be
equal, and run_int8 must equal TFLM on the converter's file byte for byte. emcgen's minmax ranges (the float
reference interpreter instead of TFLite's float kernels) agree with those statistics to float rounding, which
may move a scale by an ulp; outputs are then allowed to differ by one step.

One difference is the converter's calibrator, not the quantization rules: it logs an op's inputs after the op
ran, and TFLite runs ADD in place (the output reuses the buffer of an input that dies there), so the
statistics of c2, the ADD input whose buffer a1 reuses, are the union of c2's and a1's ranges. The tests
check that explanation and compare emcgen's ranges with that union put in for c2.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import support
import tflite
import tflm_oracle

from emcgen.calibration import calibrate
from emcgen.frontends import load_model
from emcgen.frontends.tflite import load_tflite
from emcgen.passes import optimize
from emcgen.tflite_int8 import quant as Q
from emcgen.tflite_int8 import run_int8
from emcgen.tflite_int8.quantizer import quantize_graph
from emcgen.tflite_int8.writer import to_tflite

pytestmark = pytest.mark.slow
_ALIASES = {"global_avg_pool": "mean"}   # Keras GlobalAveragePooling2D is a MEAN in TFLite


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return support.module("tensorflow")


def _model(tf, rng):
    L = tf.keras.layers
    x = L.Input((16, 16, 3), batch_size=1, name="image")
    c1 = L.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    d1 = L.ReLU(max_value=6.0, name="d1_relu6")(L.DepthwiseConv2D(3, padding="same", name="d1")(c1))
    m1 = L.MaxPooling2D(2, name="m1")(d1)
    c2 = L.Conv2D(8, 1, name="c2")(m1)
    a1 = L.Add(name="a1")([m1, c2])
    c3 = L.Conv2D(4, 3, padding="same", activation="relu", name="c3")(a1)
    cat = L.Concatenate(name="cat")([a1, c3, m1])
    ap = L.AveragePooling2D(2, name="ap")(cat)
    gap = L.GlobalAveragePooling2D(name="gap")(ap)
    fc1 = L.Dense(16, activation="relu", name="fc1")(L.Flatten(name="flat")(ap))
    cat2 = L.Concatenate(name="cat2")([fc1, gap])
    model = tf.keras.Model(x, L.Softmax(name="prob")(L.Dense(10, name="fc2")(cat2)))
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.normal(0, 0.4, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def _convert(tf, model, data, *, per_channel_dense=False, calibrate_only=False, per_channel=True) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([d[None]] for d in data)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    conv._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel_dense
    conv._experimental_calibrate_only = calibrate_only
    conv._experimental_disable_per_channel = not per_channel
    return conv.convert()


def _match(ours, theirs) -> dict[str, str]:
    """Our tensor name -> theirs, op by op: same type, the same (already matched) activation inputs and the
    same output shape."""
    names = dict(zip(ours.inputs, theirs.inputs, strict=True))
    used = set()
    for op in ours.ops:
        ins = [names[n] for n in ours.activation_inputs(op)]
        cands = [t for t in theirs.ops if t.name not in used and t.type == _ALIASES.get(op.type, op.type)
                 and (theirs.activation_inputs(t) == ins if op.type == "concat"
                      else sorted(theirs.activation_inputs(t)) == sorted(ins))
                 and theirs.tensors[t.outputs[0]].shape == ours.tensors[op.outputs[0]].shape]
        assert cands, f"no converter op matches {op.type} {op.name!r}"
        used.add(cands[0].name)
        names[op.outputs[0]] = cands[0].outputs[0]
        for k in (1, 2):   # weights and biases
            if op.type in ("conv2d", "depthwise_conv2d", "dense"):
                names[op.inputs[k]] = cands[0].inputs[k]
    return names


def _stats(blob: bytes) -> dict[int, tuple[float, float]]:
    """TFLite tensor index -> (min, max) recorded by the converter's calibration."""
    sg = tflite.Model.GetRootAs(blob, 0).Subgraphs(0)
    out = {}
    for i in range(sg.TensorsLength()):
        q = sg.Tensors(i).Quantization()
        if q is not None and q.MinLength():
            out[i] = (float(q.MinAsNumpy()[0]), float(q.MaxAsNumpy()[0]))
    return out


@pytest.fixture(scope="module")
def case():
    tf = _tf()
    rng = np.random.default_rng(5)
    model = _model(tf, rng)
    data = rng.uniform(0, 1, (48, 16, 16, 3)).astype(np.float32)
    graph = optimize(load_model(model))
    calibrated_blob = _convert(tf, model, data, calibrate_only=True)
    calibrated = load_tflite(calibrated_blob)
    index, stats = calibrated.meta["tflite_tensors"], _stats(calibrated_blob)
    to_cal = _match(graph, calibrated)
    their_ranges = {n: stats[index[to_cal[n]]] for n in [*graph.inputs, *(op.outputs[0] for op in graph.ops)]}
    blobs = {False: _convert(tf, model, data), True: _convert(tf, model, data, per_channel_dense=True)}
    return {"graph": graph, "data": data, "their_ranges": their_ranges, "blobs": blobs,
            "ours": calibrate(graph, data, "minmax")}


def _compare(q, theirs, names, exact: bool):
    """Every activation's (scale, zero point), every weight and bias; returns the number of compared tensors."""
    checked = 0
    for name, t in q.tensors.items():
        if names[name] == "":   # the converter writes no bias where every bias is 0.0
            assert t.is_const and not t.data.any(), name
            checked += 1
            continue
        other = theirs.tensors[names[name]]
        assert t.dtype == other.dtype and t.shape == other.shape, name
        assert (t.quant.axis is None) == (other.quant.axis is None), name
        if exact:
            np.testing.assert_array_equal(t.quant.scale, other.quant.scale, err_msg=name)
            np.testing.assert_array_equal(t.quant.zero_point, other.quant.zero_point, err_msg=name)
            if t.is_const:
                np.testing.assert_array_equal(t.data, other.data, err_msg=name)
        else:
            np.testing.assert_allclose(t.quant.scale, other.quant.scale, rtol=2e-6, err_msg=name)
            assert np.abs(t.quant.zero_point - other.quant.zero_point).max() <= 1, name
            if t.is_const and t.dtype == "int8":
                np.testing.assert_array_equal(t.data, other.data, err_msg=name)
            elif t.is_const:
                assert np.abs(t.data.astype(np.int64) - other.data).max() <= 1, name
        checked += 1
    return checked


def _like_converter(ours) -> dict:
    """emcgen's ranges with the converter's in-place ADD artifact reproduced (see the module docstring)."""
    ranges = dict(ours)
    ranges["c2"] = (min(ours["c2"][0], ours["a1"][0]), max(ours["c2"][1], ours["a1"][1]))
    return ranges


def test_minmax_ranges_equal_the_converters_statistics(case):
    ours, theirs = case["ours"], case["their_ranges"]
    assert set(theirs) <= set(ours)
    assert ours["c2"][1] < 0.9 * theirs["c2"][1] and theirs["c2"][1] == theirs["a1"][1]   # the artifact is there
    for name, (lo, hi) in theirs.items():
        np.testing.assert_allclose(_like_converter(ours)[name], (lo, hi), rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("per_channel_dense", [False, True])
def test_parameters_weights_biases_equal_the_converter(case, per_channel_dense):
    theirs = load_tflite(case["blobs"][per_channel_dense])
    graph = case["graph"]
    names = _match(graph, theirs)
    q = quantize_graph(graph, case["their_ranges"], per_channel_dense=per_channel_dense)
    by_output = {op.outputs[0]: op for op in theirs.ops}
    for op in q.ops:   # the same ops with the same options
        other = by_output[names[op.outputs[0]]]
        assert _ALIASES.get(op.type, op.type) == other.type, op.name
        for key in ("stride", "pads", "dilation", "activation", "kernel"):
            assert op.attrs.get(key) == other.attrs.get(key), (op.name, key)
    assert _compare(q, theirs, names, exact=True) == len(q.tensors) == len(theirs.tensors)
    dense = [q.tensors[op.inputs[1]] for op in q.ops if op.type == "dense"]
    assert all((w.quant.axis is not None) == per_channel_dense for w in dense)
    # emcgen's own minmax ranges: the same up to float rounding of the statistics
    assert _compare(quantize_graph(graph, _like_converter(case["ours"]), per_channel_dense=per_channel_dense),
                    theirs, names, exact=False) == len(q.tensors)


def test_outputs_equal_tflm_on_the_converters_model(case):
    blob = case["blobs"][False]
    q = quantize_graph(case["graph"], case["their_ranges"])
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.integers(-128, 128, (100, 16, 16, 3)),
                        np.round(rng.uniform(0, 1, (28, 16, 16, 3)) * 255 - 128)]).astype(np.int8)
    (want,) = tflm_oracle.run(blob, x)
    got = run_int8(q, x)[q.outputs[0]]
    assert len(np.unique(want)) > 10
    np.testing.assert_array_equal(got, want)
    (again,) = tflm_oracle.run(to_tflite(q, float_interface=False), x)   # the writer's file: the same bytes
    np.testing.assert_array_equal(again, want)
    # every intermediate tensor for a few inputs
    theirs = load_tflite(blob)
    names, index = _match(q, theirs), theirs.meta["tflite_tensors"]
    for k in range(3):
        ours = run_int8(q, x[k:k + 1], keep_all=True)
        tflm = tflm_oracle.all_tensors(blob, x[k:k + 1], [index[names[op.outputs[0]]] for op in q.ops])
        for op in q.ops:
            np.testing.assert_array_equal(ours[op.outputs[0]],
                                          tflm[index[names[op.outputs[0]]]].reshape(ours[op.outputs[0]].shape),
                                          err_msg=op.name)


def test_with_emcgen_ranges_outputs_differ_by_at_most_one_step(case):
    blob = case["blobs"][False]
    q = quantize_graph(case["graph"], _like_converter(case["ours"]))
    x = np.random.default_rng(2).integers(-128, 128, (100, 16, 16, 3)).astype(np.int8)
    (want,) = tflm_oracle.run(blob, x)
    got = run_int8(q, x)[q.outputs[0]]
    diff = np.abs(got.astype(np.int16) - want)
    assert diff.max() <= 1, f"{int((diff > 1).sum())} output bytes differ by more than one step"


def _edge_model(tf, rng):
    """Weights the common path never sees: channels of zero / tiny weights with zero or huge biases, a wide
    dense layer whose biases need 20+ bits (the float32 bias rounding shows there), a dense layer of small
    weights with biases that force its weight range wider, and one whose weights are all below 5e-7."""
    L = tf.keras.layers
    x = L.Input((4, 4, 3), batch_size=1, name="x")
    conv = L.Conv2D(8, 3, padding="same", name="conv")
    wide, small, subfloor = L.Dense(4096, name="wide"), L.Dense(3, name="small"), L.Dense(2, name="subfloor")
    y = L.Flatten(name="flat")(conv(x))
    model = tf.keras.Model(x, [wide(y), small(y), subfloor(y)])
    w = rng.normal(0, 0.5, (3, 3, 3, 8)).astype(np.float32)
    amps = [0.0, 0.0, 1e-7, 4e-7, 6e-7, 2e-6]
    for c, a in enumerate(amps):
        w[..., c] = a
    b = np.array([0.0, 0.9, 0.0, 300.0, 0.0, -40.0, 0.1, -0.2], np.float32)
    conv.set_weights([w, b])
    wide.set_weights([rng.normal(0, 1e-3, (128, 4096)).astype(np.float32),
                      rng.normal(0, 1, 4096).astype(np.float32)])
    small.set_weights([rng.normal(0, 1e-6, (128, 3)).astype(np.float32),
                       np.array([100.0, -200.0, 50.0], np.float32)])
    subfloor.set_weights([rng.normal(0, 1e-7, (128, 2)).astype(np.float32), np.zeros(2, np.float32)])
    return model


@pytest.mark.parametrize("per_channel,per_channel_dense", [(True, False), (True, True), (False, False)])
def test_edge_weights_and_biases_equal_the_converter(per_channel, per_channel_dense):
    tf = _tf()
    rng = np.random.default_rng(9)
    model = _edge_model(tf, rng)
    data = rng.uniform(-1, 1, (16, 4, 4, 3)).astype(np.float32)
    graph = optimize(load_model(model))
    cal = _convert(tf, model, data, calibrate_only=True)
    calibrated, stats = load_tflite(cal), _stats(cal)
    to_cal = _match(graph, calibrated)
    ranges = {n: stats[calibrated.meta["tflite_tensors"][to_cal[n]]]
              for n in [*graph.inputs, *(op.outputs[0] for op in graph.ops)]}
    theirs = load_tflite(_convert(tf, model, data, per_channel_dense=per_channel_dense, per_channel=per_channel))
    q = quantize_graph(graph, ranges, per_channel=per_channel, per_channel_dense=per_channel_dense)
    names = _match(q, theirs)
    if not per_channel_dense:
        # the converter's inconsistency (see the quantizer's docstring): per-tensor weights whose scale it
        # widens keep values quantized with their true range; emcgen's values follow the scale it stores
        for layer in ("subfloor", "small"):
            ours, other = q.tensors[q.op(layer).inputs[1]], theirs.tensors[names[q.op(layer).inputs[1]]]
            w = model.get_layer(layer).get_weights()[0]
            assert other.quant.scale[0] == ours.quant.scale[0] > np.abs(w).max() / 127
            np.testing.assert_array_equal(other.data, Q.round_half_away(w * (np.float32(127) / np.abs(w).max())))
            assert np.abs(ours.data).max() < 127
            ours.data = other.data
    assert _compare(q, theirs, names, exact=True) == len(q.tensors)
    if per_channel:
        conv_w = q.tensors[q.op("conv").inputs[1]].quant.scale
        assert conv_w[0] == np.float32(5e-7) / np.float32(127) and conv_w[1] > 1e-9   # floor; widened for bias
        assert abs(int(q.tensors[q.op("conv").inputs[2]].data[1]) - 2 ** 30) <= 64
    if per_channel_dense:
        small = q.tensors[q.op("small").inputs[1]].quant.scale     # widened for the bias: above max|w| / 127
        assert np.all(small > np.abs(model.get_layer("small").get_weights()[0]).max(axis=0) / 127)
    # the same biases divided in double are off by one in places: the test can tell the two formulas apart
    op = q.op("wide")
    s_in = q.tensors[op.inputs[0]].quant.scale[0]
    s_w = q.tensors[op.inputs[1]].quant.scale
    scale = np.float64(np.float32(s_in)) * np.broadcast_to(s_w, (4096,)).astype(np.float64)
    double = Q.round_half_away(model.get_layer("wide").get_weights()[1].astype(np.float64) / scale)
    assert (double != q.tensors[op.inputs[2]].data).sum() >= 1
