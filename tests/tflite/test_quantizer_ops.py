"""Every op quantize_graph supports, in one float graph: quantized, written with to_tflite and run by TFLM.

The graph mixes what the MNIST and converter tests do not reach: conv pads that are neither SAME nor VALID
(the writer adds a PAD), depthwise multiplier 2, pad with a non-zero value (PADV2), add/mul with a constant,
standalone relu/relu6/sigmoid/tanh, a concat fed by fixed-range outputs (requantized inputs), identity,
global average/max pools, mean, reshape, per-tensor and per-channel dense layers, softmax, two outputs.
Checks: TFLM on the written file equals run_int8 on every output byte (100 inputs) and on every intermediate
tensor; the TFLite int8 constraints hold (same-scale ops keep their input's parameters, fixed outputs); the
dequantized outputs stay close to the float reference interpreter. Plus the refusals: unsupported ops and
fused activations name the layer.
"""
from __future__ import annotations

import numpy as np
import pytest
import tflm_oracle

from emcgen import interpreter
from emcgen.calibration import calibrate
from emcgen.errors import EmcError, UnsupportedError
from emcgen.frontends.tflite import load_tflite
from emcgen.ir import Graph
from emcgen.tflite_int8 import run_int8
from emcgen.tflite_int8.quantizer import prepare_for_int8, quantize_graph
from emcgen.tflite_int8.writer import to_tflite


def _graph(seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="all_ops")

    def w(name, shape, std=0.5):
        return g.add_const(name, rng.normal(0, std, shape).astype(np.float32))

    def t(name, shape):
        g.add_tensor(name, shape)
        return name

    g.inputs = [t("x", (1, 10, 10, 3))]
    g.add_op("conv2d", "c1", ["x", w("c1/w", (3, 3, 3, 6)), w("c1/b", (6,))], [t("c1", (1, 5, 5, 6))],
             stride=(2, 2), pads=(0, 2, 1, 0), dilation=(1, 1), activation="relu6")
    g.add_op("depthwise_conv2d", "d1", ["c1", w("d1/w", (3, 3, 6, 2)), w("d1/b", (12,))], [t("d1", (1, 5, 5, 12))],
             stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1), activation="relu")
    g.add_op("max_pool2d", "m1", ["d1"], [t("m1", (1, 4, 4, 12))], kernel=(2, 2), stride=(1, 1),
             pads=(0, 0, 0, 0))
    g.add_op("avg_pool2d", "p1", ["d1"], [t("p1", (1, 3, 3, 12))], kernel=(3, 3), stride=(2, 2),
             pads=(1, 1, 1, 1))
    g.add_op("pad", "pd", ["p1"], [t("pd", (1, 4, 4, 12))], pads=(1, 0, 0, 1), value=0.25)
    g.add_op("add", "a1", ["m1", "pd"], [t("a1", (1, 4, 4, 12))])
    g.add_op("mul", "mu", ["a1", w("mu/c", (12,))], [t("mu", (1, 4, 4, 12))], activation="relu")
    g.add_op("activation", "sig", ["mu"], [t("sig", (1, 4, 4, 12))], function="sigmoid")
    g.add_op("activation", "th", ["a1"], [t("th", (1, 4, 4, 12))], function="tanh")
    g.add_op("activation", "r", ["th"], [t("r", (1, 4, 4, 12))], function="relu")
    g.add_op("activation", "r6", ["a1"], [t("r6", (1, 4, 4, 12))], function="relu6")
    g.add_op("concat", "cat", ["sig", "r", "r6"], [t("cat", (1, 4, 4, 36))], axis=-1)
    g.add_op("identity", "id", ["cat"], [t("id", (1, 4, 4, 36))])
    g.add_op("global_avg_pool", "gap", ["id"], [t("gap", (1, 36))], keepdims=False)
    g.add_op("global_max_pool", "gmp", ["id"], [t("gmp", (1, 1, 1, 36))], keepdims=True)
    g.add_op("reshape", "rs", ["gmp"], [t("rs", (1, 36))], shape=(-1,))
    g.add_op("concat", "cat2", ["gap", "rs"], [t("cat2", (1, 72))], axis=1)
    g.add_op("dense", "fc1", ["cat2", w("fc1/w", (72, 16), 0.1), w("fc1/b", (16,))], [t("fc1", (1, 16))],
             activation="relu")
    g.add_op("dense", "fc2", ["fc1", w("fc2/w", (16, 10), 0.2), w("fc2/b", (10,))], [t("fc2", (1, 10))])
    g.add_op("mean", "mn", ["id"], [t("mn", (1, 4, 1, 36))], axes=(2,), keepdims=True)
    g.add_op("reshape", "flat", ["mn"], [t("flat", (1, 144))], shape=(144,))
    g.add_op("dense", "fc3", ["flat", w("fc3/w", (144, 10), 0.05), ""], [t("fc3", (1, 10))])
    g.add_op("add", "a2", ["fc2", "fc3"], [t("a2", (1, 10))])
    g.add_op("softmax", "sm", ["a2"], [t("sm", (1, 10))], beta=1.0)
    g.outputs = ["sm", "th"]
    g.validate()
    g.meta.update(framework="test", source=None, source_format=None, framework_version=None,
                  input_names=["x"], output_names=["sm", "th"], preprocessing={})
    return g


def _samples(n, seed):
    return np.random.default_rng(seed).normal(0, 1, (n, 10, 10, 3)).astype(np.float32)


SAME_SCALE = ("max_pool2d", "avg_pool2d", "pad", "reshape", "identity", "global_max_pool")


@pytest.mark.parametrize("per_channel,per_channel_dense", [(True, False), (False, False), (True, True)])
def test_every_op_equals_tflm(per_channel, per_channel_dense):
    g = _graph()
    q = quantize_graph(g, calibrate(g, _samples(64, 1), "minmax"), per_channel=per_channel,
                       per_channel_dense=per_channel_dense)
    params = {n: (float(t.quant.scale[0]), int(t.quant.zero_point[0])) for n, t in q.tensors.items()
              if not t.is_const}
    for op in q.ops:   # TFLite int8 constraints
        if op.type in SAME_SCALE or (op.type == "activation" and op.attrs["function"] in ("relu", "relu6")):
            assert params[op.outputs[0]] == params[op.inputs[0]], op.name
    assert params["sm"] == params["sig"] == (1 / 256, -128) and params["th"] == (1 / 128, 0)
    assert params["a1"] == params["r6"] == params["cat"]     # the concat's parameters, pushed upwards
    assert params["sig"] != params["cat"] != params["r"]     # fixed-range inputs: requantized by the concat
    conv_w = q.tensors[q.ops[0].inputs[1]].quant
    assert (conv_w.axis == 3 and conv_w.scale.size == 6) if per_channel else conv_w.axis is None

    blob = to_tflite(q, float_interface=False)
    written = load_tflite(blob)
    kinds = [op.type for op in written.ops]
    assert kinds.count("pad") == 2 and kinds.count("identity") == 3   # conv pads, pd; 2 requantizations + id
    x = np.random.default_rng(2).integers(-128, 128, (100, 10, 10, 3)).astype(np.int8)
    got = run_int8(q, x)
    want = tflm_oracle.run(blob, x)
    for name, w in zip(q.outputs, want, strict=True):
        assert len(np.unique(w)) > 5, name
        np.testing.assert_array_equal(got[name], w, err_msg=name)

    index = written.meta["tflite_tensors"]
    for k in range(2):
        ours = run_int8(q, x[k:k + 1], keep_all=True)
        theirs = tflm_oracle.all_tensors(blob, x[k:k + 1], [index[op.outputs[0]] for op in q.ops])
        for op in q.ops:
            out = op.outputs[0]
            np.testing.assert_array_equal(ours[out], theirs[index[out]].reshape(ours[out].shape), err_msg=op.name)

    xf = _samples(50, 3)   # float inputs, quantized by run_int8 as a QUANTIZE op would
    fl = interpreter.run(g, xf)
    out = run_int8(q, xf)
    for name in q.outputs:
        s = q.tensors[name].quant
        deq = s.scale[0] * (out[name].astype(np.float32) - s.zero_point[0])
        assert np.abs(deq - fl[name]).mean() < 4 * s.scale[0], name


def test_global_average_pool_with_equal_parameters_is_an_average_pool():
    """The writer's other global_avg_pool form (equal input/output parameters): AVERAGE_POOL_2D + RESHAPE."""
    g = _graph()
    q = quantize_graph(g, calibrate(g, _samples(64, 1), "minmax"))
    q.tensors["gap"].quant = q.tensors["id"].quant
    blob = to_tflite(q, float_interface=False)
    assert [op.type for op in load_tflite(blob).ops].count("avg_pool2d") == 2
    x = np.random.default_rng(5).integers(-128, 128, (40, 10, 10, 3)).astype(np.int8)
    for name, w in zip(q.outputs, tflm_oracle.run(blob, x), strict=True):
        np.testing.assert_array_equal(run_int8(q, x)[name], w, err_msg=name)


def test_float_graph_written_runs_in_tflm():
    """The writer on the float graph (fused relu6 etc., explicit pads): TFLM's float kernels vs emcgen's."""
    g = _graph()
    x = _samples(10, 4)
    for name, w in zip(g.outputs, tflm_oracle.run(to_tflite(g), x), strict=True):
        np.testing.assert_allclose(w, interpreter.run(g, x)[name], rtol=0, atol=2e-5, err_msg=name)


@pytest.mark.parametrize("op_type,attrs", [("upsample_nearest", {"size": (8, 8)}),
                                           ("activation", {"function": "leaky_relu", "alpha": 0.1}),
                                           ("batch_norm", {}), ("sub", {})])
def test_unsupported_op_names_the_layer_and_the_supported_list(op_type, attrs):
    g = _graph()
    op = g.op("m1")
    op.type, op.attrs = op_type, attrs
    if op_type == "upsample_nearest":
        g.tensors["m1"].shape = (1, 8, 8, 12)
    ranges = {n: (-1.0, 1.0) for n in g.tensors if not g.tensors[n].is_const}
    with pytest.raises(UnsupportedError) as err:
        quantize_graph(g, ranges)
    message = str(err.value)
    assert "'m1'" in message and "\n" not in message
    if op_type == "activation":
        assert "leaky_relu" in message and "supported: relu, relu6, sigmoid, tanh" in message
    else:
        assert f"({op_type})" in message and "supported: add, avg_pool2d, concat, conv2d" in message


def test_fused_sigmoid_is_refused_until_prepare_for_int8_splits_it():
    g = _graph()
    g.op("fc2").attrs["activation"] = "sigmoid"
    with pytest.raises(UnsupportedError, match=r"layer 'fc2' \(dense\) has a fused 'sigmoid'.*prepare_for_int8"):
        quantize_graph(g, calibrate(g, _samples(16, 1), "minmax"))
    split = prepare_for_int8(g)
    xf = _samples(8, 6)
    np.testing.assert_array_equal(interpreter.run(split, xf)["sm"], interpreter.run(g, xf)["sm"])
    q = quantize_graph(split, calibrate(split, _samples(64, 1), "minmax"))
    act = q.op("fc2/sigmoid")
    assert act.type == "activation" and q.op("fc2").attrs["activation"] is None
    x = np.random.default_rng(7).integers(-128, 128, (30, 10, 10, 3)).astype(np.int8)
    blob = to_tflite(q, float_interface=False)
    for name, w in zip(q.outputs, tflm_oracle.run(blob, x), strict=True):
        np.testing.assert_array_equal(run_int8(q, x)[name], w, err_msg=name)


def test_missing_range_and_quantized_input_are_refused():
    g = _graph()
    ranges = dict(calibrate(g, _samples(8, 1), "minmax"))
    del ranges["fc1"]
    with pytest.raises(EmcError, match=r"no calibration range for tensor 'fc1' \(output of dense 'fc1'\)"):
        quantize_graph(g, ranges)
    q = quantize_graph(g, calibrate(g, _samples(8, 1), "minmax"))
    with pytest.raises(EmcError, match="already quantized"):
        quantize_graph(q, ranges)


def test_shared_weights_get_a_bias_per_reader():
    """Two dense layers reading the same float weights and bias with different input scales: the weights stay
    one int8 constant, each layer gets the int32 bias of its own input scale."""
    rng = np.random.default_rng(8)
    g = Graph(name="shared")
    g.add_tensor("x", (1, 6))
    g.inputs = ["x"]
    w = g.add_const("w", rng.normal(0, 0.5, (6, 6)).astype(np.float32))
    b = g.add_const("b", rng.normal(0, 0.5, 6).astype(np.float32))
    g.add_tensor("h", (1, 6))
    g.add_tensor("y", (1, 6))
    g.add_op("dense", "first", ["x", w, b], ["h"], activation="relu")
    g.add_op("dense", "second", ["h", w, b], ["y"], activation=None)
    g.outputs = ["y"]
    g.meta.update(framework="test", input_names=["x"], output_names=["y"])
    q = quantize_graph(g, calibrate(g, rng.normal(0, 3, (64, 6)).astype(np.float32), "minmax"))
    first, second = q.op("first"), q.op("second")
    assert first.inputs[1] == second.inputs[1] == "w" and q.tensors["w"].dtype == "int8"
    assert first.inputs[2] != second.inputs[2]
    assert not np.array_equal(q.tensors[first.inputs[2]].data, q.tensors[second.inputs[2]].data)
    x = rng.integers(-128, 128, (50, 6)).astype(np.int8)
    (want,) = tflm_oracle.run(to_tflite(q, float_interface=False), x)
    np.testing.assert_array_equal(run_int8(q, x)["y"], want)
