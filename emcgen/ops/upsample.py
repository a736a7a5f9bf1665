"""upsample_nearest: nearest-neighbour resize of an NHWC map to attrs['size'] (out_h, out_w).

Source index = floor(dst * in / out) (TensorFlow's resize_nearest_neighbor without half-pixel centres;
for integer scale factors this is plain repetition, which is what UpSampling2d does).
"""
from __future__ import annotations

import numpy as np

from . import OpDef


def infer_shapes(graph, op):
    n, _, _, c = graph.tensors[op.inputs[0]].shape
    oh, ow = op.attrs["size"]
    return [(n, oh, ow, c)]


def reference(op, inputs):
    x = inputs[0]
    _, h, w, _ = x.shape
    oh, ow = op.attrs["size"]
    rows = np.minimum((np.arange(oh) * h) // oh, h - 1)
    cols = np.minimum((np.arange(ow) * w) // ow, w - 1)
    return [x[:, rows][:, :, cols].astype(np.float32)]


OPS = [OpDef("upsample_nearest", infer_shapes, reference, doc=__doc__)]
