"""reshape: change the shape, keeping the batch dimension and the NHWC element order.

attrs: shape, the new shape *without* the batch dimension (may contain one -1).
Flatten is reshape with shape (-1,).
"""
from __future__ import annotations

import numpy as np

from . import OpDef


def _target(in_shape, shape):
    per_item = int(np.prod(in_shape[1:], dtype=np.int64))
    shape = list(shape)
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        shape[shape.index(-1)] = per_item // max(known, 1)
    return tuple(shape)


def infer_shapes(graph, op):
    in_shape = graph.tensors[op.inputs[0]].shape
    return [(in_shape[0],) + _target(in_shape, op.attrs["shape"])]


def reference(op, inputs):
    x = inputs[0]
    return [x.reshape((x.shape[0],) + _target(x.shape, op.attrs["shape"]))]


OPS = [OpDef("reshape", infer_shapes, reference, doc=__doc__)]
