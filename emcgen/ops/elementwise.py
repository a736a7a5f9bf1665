"""add / mul / sub: elementwise with numpy broadcasting; attrs: activation."""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused


def infer_shapes(graph, op):
    shapes = [graph.tensors[n].shape for n in op.inputs]
    return [tuple(np.broadcast_shapes(*shapes))]


def _binary(fn):
    def reference(op, inputs):
        y = inputs[0].astype(np.float32)
        for other in inputs[1:]:
            y = fn(y, other.astype(np.float32))
        return [fused(op, y).astype(np.float32)]
    return reference


def macs(graph, op):
    return 0


OPS = [
    OpDef("add", infer_shapes, _binary(np.add), macs, __doc__),
    OpDef("mul", infer_shapes, _binary(np.multiply), macs, __doc__),
    OpDef("sub", infer_shapes, _binary(np.subtract), macs, __doc__),
]
