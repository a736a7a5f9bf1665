"""int8 convolution, depthwise convolution and fully connected, as TFLite's reference integer kernels.

Why float64 matrix products: the accumulators are sums of (x - zp_in) * w with |x - zp_in| <= 255 and
|w| <= 128, so every partial sum is an integer far below 2^53 and float64 BLAS computes it exactly, in any
order, at BLAS speed. The result is converted back to int64 and requantized with TFLite's integer rules.
Padded cells contribute zero after the input offset (TFLite skips them; CMSIS-NN pads with -offset).
"""
from __future__ import annotations

import numpy as np

from ...errors import UnsupportedError
from ...ops._common import pad_nhwc, windows
from ..fixedpoint import wrap32
from ..quant import ConvQuant, requantize


def _finish(acc: np.ndarray, bias, q: ConvQuant) -> np.ndarray:
    """Add the int32 bias, wrap to int32 like the C accumulator, requantize per output channel."""
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return requantize(wrap32(acc), q.multiplier, q.shift, q.output_offset, q.act_min, q.act_max)


def _offset_input(x: np.ndarray, input_offset: int, pads, dtype) -> np.ndarray:
    return pad_nhwc(x.astype(dtype) + dtype(input_offset), pads, 0)


def conv2d(x, w, bias, q: ConvQuant, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)) -> np.ndarray:
    """CONV_2D int8. x (N, H, W, C_IN); w HWIO (KH, KW, C_IN / groups, C_OUT); bias int32 (C_OUT,) or None.

    Grouped convolution (C_IN a multiple of the filter's input depth) follows TFLite/CMSIS-NN: output
    channel o belongs to group o // (C_OUT / groups).
    """
    kh, kw, cig, co = w.shape
    n, _, _, ci = x.shape
    if ci % cig or co % (ci // cig):
        raise UnsupportedError(f"conv2d: input depth {ci} is not a multiple of the filter depth {cig} "
                               f"with {co} output channels")
    groups = ci // cig
    win = windows(_offset_input(x, q.input_offset, pads, np.float64), (kh, kw), stride, dilation)
    n, oh, ow = win.shape[:3]
    wf = w.astype(np.float64) + q.filter_offset
    if groups == 1:
        acc = win.reshape(n * oh * ow, kh * kw * ci) @ wf.reshape(kh * kw * ci, co)
    else:
        cog = co // groups
        acc = np.empty((n * oh * ow, co))
        for g in range(groups):
            cols = win[..., g * cig:(g + 1) * cig].reshape(n * oh * ow, kh * kw * cig)
            acc[:, g * cog:(g + 1) * cog] = cols @ wf[..., g * cog:(g + 1) * cog].reshape(kh * kw * cig, cog)
    return _finish(acc.astype(np.int64).reshape(n, oh, ow, co), bias, q)


def depthwise_conv2d(x, w, bias, q: ConvQuant, stride=(1, 1), pads=(0, 0, 0, 0),
                     dilation=(1, 1)) -> np.ndarray:
    """DEPTHWISE_CONV_2D int8. w (KH, KW, C_IN, MULT); output channel c * MULT + m reads input channel c.

    Loops over the kernel taps only; int32 suffices (|product| <= 32640, at most KH*KW terms).
    """
    kh, kw, c, m = w.shape
    sh, sw = stride
    dh, dw = dilation
    xp = _offset_input(x, q.input_offset, pads, np.int32)
    n, hp, wp, _ = xp.shape
    oh = (hp - (kh - 1) * dh - 1) // sh + 1
    ow = (wp - (kw - 1) * dw - 1) // sw + 1
    w32 = w.astype(np.int32) + np.int32(q.filter_offset)
    acc = np.zeros((n, oh, ow, c, m), np.int32)
    for i in range(kh):
        for j in range(kw):
            sl = xp[:, i * dh: i * dh + (oh - 1) * sh + 1: sh, j * dw: j * dw + (ow - 1) * sw + 1: sw, :]
            acc += sl[..., None] * w32[i, j]
    return _finish(acc.reshape(n, oh, ow, c * m).astype(np.int64), bias, q)


def fully_connected(x, w, bias, q: ConvQuant) -> np.ndarray:
    """FULLY_CONNECTED int8. x (N, ...) flattened to (N, IN); w (IN, OUT); per-tensor or per-channel q."""
    xf = x.reshape(x.shape[0], -1).astype(np.float64) + q.input_offset
    acc = xf @ (w.astype(np.float64) + q.filter_offset)
    return _finish(acc.astype(np.int64), bias, q)
