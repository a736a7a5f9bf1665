"""pad: constant padding of the H and W dimensions of an NHWC map.

attrs: pads (top, bottom, left, right), value (default 0.0).
"""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import pad_nhwc


def infer_shapes(graph, op):
    n, h, w, c = graph.tensors[op.inputs[0]].shape
    t, b, lft, r = op.attrs["pads"]
    return [(n, h + t + b, w + lft + r, c)]


def reference(op, inputs):
    return [pad_nhwc(inputs[0].astype(np.float32), op.attrs["pads"], op.attrs.get("value", 0.0))]


OPS = [OpDef("pad", infer_shapes, reference, doc=__doc__)]
