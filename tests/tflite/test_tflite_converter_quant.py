"""The calibration helpers (choose_qparams, quantize_weights_symmetric, quantize_bias) against the TFLite
converter of TensorFlow itself: post-training full-int8 quantization with a representative dataset whose
min/max per tensor are known exactly, then the scales, zero points and int8/int32 data of the file.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import support
import tflite

from emcgen.frontends.tflite import load_tflite
from emcgen.tflite_int8 import quant as Q

pytestmark = pytest.mark.slow


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return support.module("tensorflow")


def _convert(tf, model, representative):
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def test_activation_qparams_equal_the_converter():
    tf = _tf()
    rng = np.random.default_rng(7)
    ranges = []
    for i in range(60):
        lo, hi = [(-rng.uniform(0, 5), rng.uniform(0, 5)),
                  (rng.uniform(-0.01, 0.01), rng.uniform(0, 20)),
                  (-rng.uniform(0, 20), rng.uniform(-0.01, 0.01)),
                  (-rng.uniform(0, 1e-3), rng.uniform(0, 1e-2))][i % 4]
        ranges.append((np.float32(min(lo, hi)), np.float32(max(lo, hi))))
    inputs = [tf.keras.Input((4,), batch_size=1, name=f"in{i:02d}") for i in range(len(ranges))]
    model = tf.keras.Model(inputs, tf.keras.layers.Add()(inputs))

    def representative():
        for k in range(8):
            batch = {}
            for i, (lo, hi) in enumerate(ranges):
                x = rng.uniform(lo, hi, (1, 4)).astype(np.float32)
                if k == 0:
                    x[0, :2] = lo, hi   # the exact calibration min and max
                batch[f"in{i:02d}"] = np.clip(x, lo, hi)
            yield batch

    sg = tflite.Model.GetRootAs(_convert(tf, model, representative), 0).Subgraphs(0)
    checked = 0
    for j in range(sg.InputsLength()):
        t = sg.Tensors(sg.Inputs(j))
        i = int(t.Name().decode().split("in")[-1][:2])
        q = t.Quantization()
        theirs = (np.float32(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0]))
        assert Q.choose_qparams(*ranges[i]) == theirs, f"range {ranges[i]}"
        checked += 1
    assert checked == 60


def test_weights_and_biases_equal_the_converter():
    tf = _tf()
    rng = np.random.default_rng(3)
    inp = tf.keras.Input((8, 8, 3), batch_size=1)
    conv = tf.keras.layers.Conv2D(6, 3, padding="same")
    dw = tf.keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)
    dense = tf.keras.layers.Dense(5)
    model = tf.keras.Model(inp, dense(tf.keras.layers.Flatten()(dw(conv(inp)))))
    def normal(std, shape):
        return rng.normal(0, std, shape).astype(np.float32)

    conv.set_weights([normal(1, (3, 3, 3, 6)) * rng.uniform(0.1, 2, 6).astype(np.float32), normal(1, 6)])
    dw.set_weights([normal(1, (3, 3, 6, 2)), normal(1, 12)])
    dense.set_weights([normal(0.1, (768, 5)), normal(1, 5)])
    data = [rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32) for _ in range(16)]
    graph = load_tflite(_convert(tf, model, lambda: ([d] for d in data)))
    ops = {op.type: op for op in graph.ops}
    assert set(ops) >= {"conv2d", "depthwise_conv2d", "dense"}
    float_w = {"conv2d": (conv.get_weights(), 3), "depthwise_conv2d": (dw.get_weights(), 2),
               "dense": (dense.get_weights(), 1)}
    for kind, ((w, b), axis) in float_w.items():
        op = ops[kind]
        wt, bt = graph.tensors[op.inputs[1]], graph.tensors[op.inputs[2]]
        per_channel = wt.quant.axis is not None
        flat = w.reshape(w.shape[:2] + (-1,)) if kind == "depthwise_conv2d" else w  # channel c * MULT + m
        q, scales = Q.quantize_weights_symmetric(flat, axis if per_channel else None)
        q = q.reshape(w.shape)
        np.testing.assert_array_equal(wt.quant.scale, scales, err_msg=kind)
        np.testing.assert_array_equal(wt.data, q, err_msg=kind)
        s_in = graph.tensors[op.inputs[0]].quant.scale[0]
        np.testing.assert_array_equal(bt.data, Q.quantize_bias(b, np.float32(s_in) * np.broadcast_to(scales, b.shape)),
                                      err_msg=kind)
