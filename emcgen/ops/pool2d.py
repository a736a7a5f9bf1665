"""max_pool2d / avg_pool2d: NHWC window pooling with explicit pads.

attrs: kernel (h, w), stride (h, w), pads (top, bottom, left, right), activation.
Padded cells never win a max and are not counted by the average (TensorFlow's SAME semantics).
"""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused, out_size, pad_nhwc, windows


def infer_shapes(graph, op):
    n, h, w, c = graph.tensors[op.inputs[0]].shape
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs.get("stride", (kh, kw))
    t, b, lft, r = op.attrs.get("pads", (0, 0, 0, 0))
    return [(n, out_size(h, kh, sh, t, b), out_size(w, kw, sw, lft, r), c)]


def _max(op, inputs):
    x = inputs[0].astype(np.float32, copy=False)
    xp = pad_nhwc(x, op.attrs.get("pads", (0, 0, 0, 0)), -np.inf)
    (kh, kw), (sh, sw) = op.attrs["kernel"], op.attrs.get("stride", op.attrs["kernel"])
    oh = (xp.shape[1] - kh) // sh + 1
    ow = (xp.shape[2] - kw) // sw + 1
    y = None
    for i in range(kh):            # one whole-map maximum per kernel tap
        for j in range(kw):
            tap = xp[:, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw, :]
            y = tap.copy() if y is None else np.maximum(y, tap, out=y)
    return [fused(op, y).astype(np.float32, copy=False)]


def _avg(op, inputs):
    x = inputs[0].astype(np.float32)
    pads = op.attrs.get("pads", (0, 0, 0, 0))
    kernel, stride = op.attrs["kernel"], op.attrs.get("stride", op.attrs["kernel"])
    total = windows(pad_nhwc(x, pads), kernel, stride).sum(axis=(3, 4), dtype=np.float32)
    ones = np.ones((1,) + x.shape[1:3] + (1,), np.float32)
    count = windows(pad_nhwc(ones, pads), kernel, stride).sum(axis=(3, 4))
    return [fused(op, total / count).astype(np.float32)]


def macs(graph, op):
    return 0


OPS = [
    OpDef("max_pool2d", infer_shapes, _max, macs, __doc__),
    OpDef("avg_pool2d", infer_shapes, _avg, macs, __doc__),
]
