"""depthwise_conv2d: per-channel NHWC convolution with a channel multiplier.

attrs: stride, pads, dilation, activation, alpha.
inputs: x, weights (KH, KW, C_IN, MULT), bias (C_IN*MULT,) or "".
Output channel c*MULT + m reads input channel c (TensorFlow's order).
"""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused, out_size, pad_nhwc


def infer_shapes(graph, op):
    n, h, w, c = graph.tensors[op.inputs[0]].shape
    kh, kw, _, m = graph.tensors[op.inputs[1]].shape
    sh, sw = op.attrs.get("stride", (1, 1))
    dh, dw = op.attrs.get("dilation", (1, 1))
    t, b, lft, r = op.attrs.get("pads", (0, 0, 0, 0))
    return [(n, out_size(h, kh, sh, t, b, dh), out_size(w, kw, sw, lft, r, dw), c * m)]


def reference(op, inputs):
    x, w = inputs[0].astype(np.float32), inputs[1].astype(np.float32)
    bias = inputs[2] if len(inputs) > 2 and inputs[2] is not None else None
    kh, kw, c, m = w.shape
    sh, sw = op.attrs.get("stride", (1, 1))
    dh, dw = op.attrs.get("dilation", (1, 1))
    xp = pad_nhwc(x, op.attrs.get("pads", (0, 0, 0, 0)))
    n, hp, wp, _ = xp.shape
    oh = (hp - (kh - 1) * dh - 1) // sh + 1
    ow = (wp - (kw - 1) * dw - 1) // sw + 1
    y = np.zeros((n, oh, ow, c, m), np.float32)
    for i in range(kh):          # loop over the kernel taps only; each step is a whole-map multiply
        for j in range(kw):
            sl = xp[:, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw, :]
            y += sl[..., None] * w[i, j]
    y = y.reshape(n, oh, ow, c * m)
    if bias is not None:
        y = y + bias.astype(np.float32)
    return [fused(op, y).astype(np.float32)]


def macs(graph, op):
    _, oh, ow, co = graph.tensors[op.outputs[0]].shape
    kh, kw, _, _ = graph.tensors[op.inputs[1]].shape
    return oh * ow * co * kh * kw


OPS = [OpDef("depthwise_conv2d", infer_shapes, reference, macs, __doc__)]
