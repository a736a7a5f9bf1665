"""Helpers shared by the op modules: padding arithmetic, fused activations, sliding windows."""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError

ACTIVATIONS = ("relu", "relu6", "leaky_relu", "sigmoid", "tanh", "relu_n1_to_1", "hard_sigmoid")


def pair(v) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def same_pads(in_size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow SAME padding (before, after): the extra cell goes after (bottom/right)."""
    out = -(-in_size // stride)
    eff = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + eff - in_size, 0)
    return total // 2, total - total // 2


def resolve_pads(padding, in_hw, kernel, stride, dilation=(1, 1)) -> tuple[int, int, int, int]:
    """'same' / 'valid' / explicit (top, bottom, left, right) -> explicit pads."""
    if isinstance(padding, str):
        p = padding.lower()
        if p == "valid":
            return 0, 0, 0, 0
        if p == "same":
            t, b = same_pads(in_hw[0], kernel[0], stride[0], dilation[0])
            lft, r = same_pads(in_hw[1], kernel[1], stride[1], dilation[1])
            return t, b, lft, r
        raise UnsupportedError(f"padding {padding!r} is not supported; supported: SAME, VALID")
    t, b, lft, r = (int(v) for v in padding)
    return t, b, lft, r


def out_size(in_size: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int = 1):
    eff = (kernel - 1) * dilation + 1
    return (in_size + pad_before + pad_after - eff) // stride + 1


def apply_activation(x: np.ndarray, name: str | None, alpha: float = 0.2) -> np.ndarray:
    """The float activation functions, as TensorFlow computes them (float32)."""
    if name in (None, "", "linear", "identity", "none"):
        return x
    if name == "relu":
        return np.maximum(x, np.float32(0), dtype=x.dtype)
    if name == "relu6":
        return np.clip(x, np.float32(0), np.float32(6))
    if name == "relu_n1_to_1":
        return np.clip(x, np.float32(-1), np.float32(1))
    if name == "leaky_relu":
        return np.where(x >= 0, x, x * np.float32(alpha)).astype(np.float32)
    if name == "sigmoid":
        return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)
    if name == "tanh":
        return np.tanh(x).astype(np.float32)
    if name == "hard_sigmoid":
        return np.clip(x * np.float32(1 / 6) + np.float32(0.5), 0, 1).astype(np.float32)
    raise UnsupportedError(f"activation {name!r} is not supported; supported: {', '.join(ACTIVATIONS)}")


def fused(op, x: np.ndarray) -> np.ndarray:
    """Apply an op's fused activation (attrs 'activation' and 'alpha')."""
    return apply_activation(x, op.attrs.get("activation"), op.attrs.get("alpha", 0.2))


def windows(x: np.ndarray, kernel, stride, dilation=(1, 1)) -> np.ndarray:
    """Strided view (N, OH, OW, KH, KW, C) of an already padded NHWC array; no copy."""
    n, h, w, c = x.shape
    kh, kw = kernel
    sh, sw = stride
    dh, dw = dilation
    oh = (h - (kh - 1) * dh - 1) // sh + 1
    ow = (w - (kw - 1) * dw - 1) // sw + 1
    s = x.strides
    return np.lib.stride_tricks.as_strided(
        x, (n, oh, ow, kh, kw, c), (s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False)


def pad_nhwc(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    t, b, lft, r = pads
    if not (t or b or lft or r):
        return x
    return np.pad(x, ((0, 0), (t, b), (lft, r), (0, 0)), constant_values=value)
