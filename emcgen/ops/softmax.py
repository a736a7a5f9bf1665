"""softmax over the last axis; attrs: beta (default 1.0)."""
from __future__ import annotations

import numpy as np

from . import OpDef


def infer_shapes(graph, op):
    return [graph.tensors[op.inputs[0]].shape]


def reference(op, inputs):
    x = inputs[0].astype(np.float64) * op.attrs.get("beta", 1.0)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return [(e / e.sum(axis=-1, keepdims=True)).astype(np.float32)]


OPS = [OpDef("softmax", infer_shapes, reference, doc=__doc__)]
