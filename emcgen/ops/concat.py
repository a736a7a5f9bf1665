"""concat: join inputs along attrs['axis'] (an axis of the batch-first shape; negative allowed)."""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused


def infer_shapes(graph, op):
    shapes = [list(graph.tensors[n].shape) for n in op.inputs]
    axis = op.attrs.get("axis", -1) % len(shapes[0])
    out = shapes[0][:]
    out[axis] = sum(s[axis] for s in shapes)
    return [tuple(out)]


def reference(op, inputs):
    y = np.concatenate([x.astype(np.float32) for x in inputs], axis=op.attrs.get("axis", -1))
    return [fused(op, y)]


OPS = [OpDef("concat", infer_shapes, reference, doc=__doc__)]
