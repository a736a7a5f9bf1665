"""dense (fully connected): y = x @ W + b on (N, IN) inputs; W is (IN, OUT).

attrs: activation, alpha. inputs: x (N, IN), weights (IN, OUT), bias (OUT,) or "".
A rank-4 input is flattened in NHWC order first (as TensorFlow's Flatten does).
"""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused


def infer_shapes(graph, op):
    n = graph.tensors[op.inputs[0]].shape[0]
    return [(n, graph.tensors[op.inputs[1]].shape[1])]


def reference(op, inputs):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    y = x.reshape(x.shape[0], -1).astype(np.float32) @ w.astype(np.float32)
    if bias is not None:
        y = y + bias.astype(np.float32)
    return [fused(op, y).astype(np.float32)]


def macs(graph, op):
    i, o = graph.tensors[op.inputs[1]].shape
    return i * o


OPS = [OpDef("dense", infer_shapes, reference, macs, __doc__)]
