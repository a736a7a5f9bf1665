"""mean: average over attrs['axes'] (axes of the batch-first shape), attrs['keepdims']."""
from __future__ import annotations

import numpy as np

from . import OpDef


def infer_shapes(graph, op):
    shape = list(graph.tensors[op.inputs[0]].shape)
    axes = sorted(a % len(shape) for a in op.attrs["axes"])
    if op.attrs.get("keepdims"):
        return [tuple(1 if i in axes else d for i, d in enumerate(shape))]
    return [tuple(d for i, d in enumerate(shape) if i not in axes)]


def reference(op, inputs):
    keepdims = bool(op.attrs.get("keepdims"))
    y = inputs[0].astype(np.float32).mean(axis=tuple(op.attrs["axes"]), keepdims=keepdims)
    return [y.astype(np.float32)]


OPS = [OpDef("mean", infer_shapes, reference, doc=__doc__)]
