"""global_avg_pool / global_max_pool: reduce H and W of an NHWC map.

attrs: keepdims (bool; False gives (N, C), True gives (N, 1, 1, C)), activation.
"""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused


def infer_shapes(graph, op):
    n, _, _, c = graph.tensors[op.inputs[0]].shape
    return [(n, 1, 1, c) if op.attrs.get("keepdims") else (n, c)]


def _reduce(fn):
    def reference(op, inputs):
        x = inputs[0].astype(np.float32)
        y = fn(x, axis=(1, 2), keepdims=bool(op.attrs.get("keepdims")))
        return [fused(op, y.astype(np.float32))]
    return reference


OPS = [
    OpDef("global_avg_pool", infer_shapes, _reduce(np.mean), doc=__doc__),
    OpDef("global_max_pool", infer_shapes, _reduce(np.max), doc=__doc__),
]
