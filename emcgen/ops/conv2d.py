"""conv2d: NHWC convolution, weights HWIO, optional bias, explicit pads, stride, dilation, fused activation.

attrs: stride (h, w), pads (top, bottom, left, right), dilation (h, w), activation, alpha.
inputs: x, weights (KH, KW, C_IN, C_OUT), bias (C_OUT,) or "" for none.
"""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused, out_size, pad_nhwc, windows


def infer_shapes(graph, op):
    n, h, w, _ = graph.tensors[op.inputs[0]].shape
    kh, kw, _, co = graph.tensors[op.inputs[1]].shape
    sh, sw = op.attrs.get("stride", (1, 1))
    dh, dw = op.attrs.get("dilation", (1, 1))
    t, b, lft, r = op.attrs.get("pads", (0, 0, 0, 0))
    return [(n, out_size(h, kh, sh, t, b, dh), out_size(w, kw, sw, lft, r, dw), co)]


def reference(op, inputs):
    x, w = inputs[0], inputs[1]
    bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    kh, kw, ci, co = w.shape
    xp = pad_nhwc(x.astype(np.float32, copy=False), op.attrs.get("pads", (0, 0, 0, 0)))
    win = windows(xp, (kh, kw), op.attrs.get("stride", (1, 1)), op.attrs.get("dilation", (1, 1)))
    n, oh, ow = win.shape[:3]
    cols = win.reshape(n * oh * ow, kh * kw * ci)
    y = (cols @ w.reshape(kh * kw * ci, co).astype(np.float32, copy=False)).reshape(n, oh, ow, co)
    if bias is not None:
        y += bias.astype(np.float32, copy=False)
    return [fused(op, y).astype(np.float32, copy=False)]


def macs(graph, op):
    _, oh, ow, co = graph.tensors[op.outputs[0]].shape
    kh, kw, ci, _ = graph.tensors[op.inputs[1]].shape
    return oh * ow * co * kh * kw * ci


OPS = [OpDef("conv2d", infer_shapes, reference, macs, __doc__)]
