"""KPU quantization: float conv/depthwise layers -> KPU weights, offset registers, BN and activation tables.

The arithmetic the KPU performs (docs: ../shared/docs/kmodel_v3.md §3.9) is, per output channel o:

    acc = sum_c [ sum_win X*W + ((arg_x*sum_win X) >> shr_x) + ((arg_w*sum_win W) >> shr_w) + arg_add ]
    bn  = ((acc * norm_mul) >> norm_shift) + norm_add                 (floor shifts)
    out = clamp(round((bn - x_start[s]) * y_mul[s] / 2^shift[s]) + bias[s], 0, 255)   (16 segments)

How emcgen fills it, and why:
- Weights are symmetric per output channel around one common zero point zw = 128 (8-bit) or 32768
  (16-bit): W = round(w / sw_o) + zw. arg_x is a single register per layer, so the zero point must be
  shared, while the scale may differ per channel because the BN multiplier is per channel.
- arg_x = -zw with shr_x = 0, arg_w = 0, arg_add = 0. Then acc = sum X*(W - zw) exactly: no offset term
  is ever floored, so the result does not depend on the unverified per-channel/all-channel flooring
  question (the doc's closing advice), and it is the register pattern of the hardware-validated fixture
  (arg_w = arg_add = 0). The input zero point term -zx * sum(W - zw) is a per-channel constant: the
  KPU pads with pad_value and the window sum of the weights does not depend on the data, so it folds
  into norm_add together with the bias.
- BN stage: bn = 2^P * (z / s_b + z_b), z the real pre-activation value. For identity/ReLU/ReLU6/leaky
  ReLU the "bn domain" (s_b, z_b) is the output quantization itself, so the activation table is exact:
  a single line y = bn / 2^P (ReLU/ReLU6 come from the clamp to [0, 255] and the calibrated range),
  plus one more line for the leaky slope. For sigmoid/tanh the bn domain spans the pre-activation range
  and 15 segments approximate the curve; the worst error in output LSB is reported.
  P = 10 like nncase (y_mul 1024, shift 20 on the identity line); raised per layer when the BN
  multiplier would otherwise keep fewer than ~20 significant bits.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...errors import UnsupportedError

X_START_MIN = -(1 << 35)          # "minus infinity" of the activation table
X_START_MAX = (1 << 35) - 1
NORM_MUL_MAX = (1 << 23) - 1      # s24
NORM_ADD_MAX = (1 << 31) - 1      # s32
BN_LIMIT = 1 << 34                # keep bn well inside the 36-bit x_start range
DEFAULT_P = 10


@dataclass(frozen=True)
class UQuant:
    """uint8 asymmetric quantization: real = scale * (q - zero_point)."""

    scale: float
    zero_point: float             # an integer for every tensor emcgen quantizes; the raw-pixel input may not be

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(np.asarray(x, np.float64) / self.scale + self.zero_point), 0, 255).astype(np.uint8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return ((np.asarray(q, np.float64) - self.zero_point) * self.scale).astype(np.float32)

    @property
    def range(self) -> tuple[float, float]:
        return (-self.zero_point * self.scale, (255 - self.zero_point) * self.scale)


def uint8_quant(lo: float, hi: float) -> UQuant:
    """Quantization for a calibrated range: includes 0 exactly (integer zero point), like TFLite's nudge."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = (hi - lo) / 255.0
    zp = float(min(max(round(-lo / scale), 0), 255))
    return UQuant(scale, zp)


def affine_input_quant(scale: float, offset: float) -> UQuant:
    """The raw-pixel input of a kmodel: real = pixel * scale + offset (the dataset function)."""
    return UQuant(float(scale), float(-offset / scale))


@dataclass
class ActTable:
    """16 segments (x_start, y_mul, shift, bias); evaluated as the KPU does (see kpu_activation)."""

    x_start: list[int]
    y_mul: list[int]
    shift: list[int]
    bias: list[int]
    max_error_lsb: float = 0.0

    def __post_init__(self):
        assert len(self.x_start) == len(self.y_mul) == len(self.shift) == len(self.bias) == 16
        assert all(a < b for a, b in zip(self.x_start, self.x_start[1:], strict=False)), "x_start must ascend"


@dataclass
class KpuConvParams:
    """Everything a K210_CONV layer needs besides shapes and addresses."""

    weights: np.ndarray           # uint8/uint16, KPU order: [o][c][ky][kx] (depthwise: [c][ky][kx])
    weight_bits: int
    arg_x: int
    shr_x: int
    arg_w: int
    shr_w: int
    arg_add: int
    pad_value: int
    norm_mul: np.ndarray          # int64 per output channel
    norm_shift: np.ndarray
    norm_add: np.ndarray
    act: ActTable
    bn_exponent: int              # P
    notes: list[str] = field(default_factory=list)


# ---- the KPU's own arithmetic for the BN and activation stages (used to check the tables) ----------------
def kpu_round_shift(t: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Arithmetic right shift with rounding to nearest, ties to even (the emulator's documented rule)."""
    t = np.asarray(t, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    q = t >> shift
    rem = t - (q << shift)
    half = np.where(shift > 0, np.int64(1) << np.maximum(shift - 1, 0), 0)
    up = (rem > half) | ((rem == half) & (shift > 0) & ((q & 1) == 1))
    return q + up


def kpu_activation(bn: np.ndarray, table: ActTable) -> np.ndarray:
    """uint8 outputs of the 16-segment table for int64 bn values (segment = last with bn > x_start)."""
    bn = np.asarray(bn, dtype=np.int64)
    xs = np.asarray(table.x_start, dtype=np.int64)
    seg = np.searchsorted(xs, bn, side="left") - 1
    seg = np.clip(seg, 0, 15)
    t = (bn - xs[seg]) * np.asarray(table.y_mul, np.int64)[seg]
    y = kpu_round_shift(t, np.asarray(table.shift, np.int64)[seg]) + np.asarray(table.bias, np.int64)[seg]
    return np.clip(y, 0, 255).astype(np.uint8)


# ---- helpers --------------------------------------------------------------------------------------------
def mul_shift(v: float, mul_max: int = NORM_MUL_MAX, shift_max: int = 15) -> tuple[int, int]:
    """(mul, shift) with mul / 2^shift ~ v, |mul| <= mul_max, the largest shift that keeps mul in range."""
    if v == 0:
        return 0, 0
    shift = shift_max
    while shift > 0 and abs(v) * (1 << shift) > mul_max:
        shift -= 1
    mul = int(round(v * (1 << shift)))
    if abs(mul) > mul_max:
        raise UnsupportedError(f"BN multiplier {v:.6g} is too large for the KPU (max {mul_max})")
    return mul, shift


def _slope(v: float, mul_min: int = 1 << 14, mul_max: int = (1 << 15) - 1) -> tuple[int, int]:
    """(y_mul, shift) for an activation slope v > 0 with y_mul in [2^14, 2^15) where possible."""
    if v <= 0:
        return 0, 0
    shift = 0
    while v * (1 << shift) < mul_min and shift < 255:
        shift += 1
    while v * (1 << shift) > mul_max and shift > 0:
        shift -= 1
    return int(round(v * (1 << shift))), shift


def _fill(segments: list[tuple[int, int, int, int]], top_bias: int) -> ActTable:
    """Complete (x_start, mul, shift, bias) segments to 16 with unreachable top segments (bn < 2^34)."""
    segs = sorted(segments, key=lambda s: s[0])
    extra = 16 - len(segs)
    segs += [(X_START_MAX - extra + 1 + i, 0, 0, top_bias) for i in range(extra)]
    return ActTable([s[0] for s in segs], [s[1] for s in segs], [s[2] for s in segs], [s[3] for s in segs])


# ---- activation tables --------------------------------------------------------------------------------------
LINEAR_FAMILY = (None, "", "linear", "identity", "none", "relu", "relu6", "relu_n1_to_1", "leaky_relu")


def linear_table(P: int, out_zp: int) -> ActTable:
    """y = round(bn / 2^P): the identity line (ReLU/ReLU6 by the clamp and the output range)."""
    del out_zp
    return _fill([(X_START_MIN, 0, 0, 0), (0, 1024, P + 10, 0)], top_bias=255)


def leaky_table(P: int, out_zp: int, alpha: float) -> ActTable:
    """Two lines meeting at the output zero point: slope 1 above it, slope alpha below, both exact."""
    if not 0 < alpha < 1:
        raise UnsupportedError(f"leaky_relu slope {alpha} is not supported on the KPU (0 < alpha < 1)")
    x0 = int(out_zp) << P
    segs = [(X_START_MIN, 0, 0, 0)]
    if out_zp > 0:
        x1 = x0 - int(round(out_zp * (1 << P) / alpha))   # where the leaky line reaches 0
        m, s = _slope(alpha / (1 << P))
        segs.append((x1, m, s, 0))
        segs.append((x0, 1024, P + 10, int(out_zp)))
    else:
        segs.append((0, 1024, P + 10, 0))
    return _fill(segs, top_bias=255)


def curve_table(g, bn_lo: int, bn_hi: int) -> ActTable:
    """Best 16-segment fit of an increasing function g(bn) -> output LSB over [bn_lo, bn_hi].

    Breakpoints sit where g crosses integers (so every segment bias is exact); several spacings are
    tried (even in output, even in input, and mixes) and the one with the smallest worst-case error
    over a dense grid wins.
    """
    grid = np.linspace(bn_lo, bn_hi, 4097)
    gv = g(grid)
    lo_val = int(np.clip(np.round(gv[0]), 0, 255))
    hi_val = int(np.clip(np.round(gv[-1]), 0, 255))
    best = None
    for mix in (0.0, 0.25, 0.5, 0.75, 1.0):
        # candidate integer breakpoints in output space
        targets_y = np.linspace(gv[0], gv[-1], 16)[1:-1]
        targets_x = np.interp(np.linspace(bn_lo, bn_hi, 16)[1:-1], grid, gv)
        ys = np.unique(np.clip(np.round((1 - mix) * targets_y + mix * targets_x), lo_val, hi_val).astype(int))
        xs = [_inverse(g, y, bn_lo, bn_hi) for y in ys]
        pts = sorted({(int(round(x)), int(y)) for x, y in zip(xs, ys, strict=True)})
        pts = [p for p in pts if bn_lo < p[0] < bn_hi]
        pts = [(int(bn_lo), lo_val)] + pts + [(int(bn_hi), hi_val)]
        segs = [(X_START_MIN, 0, 0, lo_val)]
        for (xa, ya), (xb, yb) in zip(pts, pts[1:], strict=False):
            if xb <= xa:
                continue
            m, s = _slope((yb - ya) / (xb - xa))
            segs.append((xa, m, s, ya))
        segs = segs[:15] + [(int(bn_hi), 0, 0, hi_val)]
        table = _fill(_dedupe(segs), top_bias=hi_val)
        err = float(np.max(np.abs(kpu_activation(grid.astype(np.int64), table).astype(float)
                                  - np.clip(np.round(gv), 0, 255))))
        if best is None or err < best.max_error_lsb:
            table.max_error_lsb = err
            best = table
    return best


def _dedupe(segs):
    out = {}
    for s in segs:
        out[s[0]] = s
    return [out[k] for k in sorted(out)]


def _inverse(g, y, lo, hi) -> float:
    a, b = float(lo), float(hi)
    for _ in range(60):
        m = 0.5 * (a + b)
        if g(np.array([m]))[0] < y:
            a = m
        else:
            b = m
    return 0.5 * (a + b)


# ---- weight rounding -------------------------------------------------------------------------------------------
def input_patches(x: np.ndarray, k: int, max_rows: int = 4096, seed: int = 0) -> np.ndarray:
    """im2col rows (N*H*W, k*k, C) of float input maps (N, H, W, C) on the KPU's stride-1 'same' grid.

    The KPU pads 3x3 maps by one pixel of real zero (pad_value = input zero point), so do we. At most
    max_rows rows, chosen with a fixed seed, keep the cost independent of the map size.
    """
    x = np.asarray(x, np.float32)
    p = k // 2
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    n, h, w, c = x.shape
    rows = np.stack([xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)], axis=3)
    rows = rows.reshape(n * h * w, k * k, c)
    if rows.shape[0] > max_rows:
        rows = rows[np.random.default_rng(seed).choice(rows.shape[0], max_rows, replace=False)]
    return rows


def optimize_rounding(w: np.ndarray, scale: np.ndarray, q: np.ndarray, gram: np.ndarray, qmax: int,
                      passes: int = 8) -> np.ndarray:
    """Choose round-up or round-down per weight to minimize E[(dw . x)^2] over the calibration inputs.

    w, q: (O, K) float weights and their integer codes (nearest rounding to start with); gram: (K, K)
    E[x x^T] shared by all output channels, or (O, K, K) per channel (depthwise). Greedy coordinate
    descent (the idea of AdaRound, without learning): a code moves by one step only toward the other
    neighbour of its float value, and only when that lowers the expected squared output error. The
    objective includes the mean, so the systematic (bias) error shrinks too.
    """
    q = q.astype(np.int64).copy()
    s = scale[:, None]
    e = w - q * s                                            # residual, real units
    per_channel = gram.ndim == 3
    g = np.einsum("ok,okj->oj", e, gram) if per_channel else e @ gram
    diag = np.einsum("okk->ok", gram) if per_channel else np.broadcast_to(np.diag(gram), e.shape)
    O, K = q.shape
    rows = np.arange(O)
    for _ in range(passes):
        changed = False
        for i in range(K):
            t = np.sign(g[:, i])                              # direction that lowers the error
            delta = -2 * scale * np.abs(g[:, i]) + scale ** 2 * diag[:, i]
            new_e = e[:, i] - t * scale
            ok = (delta < -1e-12 * scale ** 2) & (np.abs(new_e) < scale) & (np.abs(q[:, i] + t) <= qmax) & (t != 0)
            if not ok.any():
                continue
            changed = True
            o = rows[ok]
            step = (t * scale)[ok]
            q[o, i] += t[ok].astype(np.int64)
            e[o, i] = new_e[ok]
            if per_channel:
                g[o] -= step[:, None] * gram[o, i, :]
            else:
                g[o] -= step[:, None] * gram[i][None, :]
        if not changed:
            break
    return q


# ---- the whole layer ------------------------------------------------------------------------------------------
def _curve_function(name: str):
    if name == "sigmoid":
        return (lambda z: 1.0 / (1.0 + np.exp(-z))), (lambda y: np.log(y / (1 - y)))
    if name == "tanh":
        return np.tanh, np.arctanh
    if name == "hard_sigmoid":
        return (lambda z: np.clip(z / 6 + 0.5, 0, 1)), None
    raise UnsupportedError(f"activation {name!r} cannot be fused into a KPU layer; supported: identity, relu, "
                           "relu6, leaky_relu, sigmoid, tanh, hard_sigmoid")


def kpu_conv_params(weights: np.ndarray, bias: np.ndarray | None, in_q: UQuant, out_q: UQuant, *,
                    depthwise: bool, activation: str | None = None, alpha: float = 0.2,
                    weight_bits: int = 8, pre_range: tuple[float, float] | None = None,
                    calib_inputs: np.ndarray | None = None) -> KpuConvParams:
    """Quantize one KPU convolution.

    weights: float HWIO (KH, KW, C_IN, C_OUT), or (KH, KW, C, 1) for depthwise.
    in_q/out_q: uint8 quantization of the input map and of the (activated) output map.
    pre_range: calibrated range of the pre-activation value, needed for sigmoid/tanh tables only
        (defaults to the inverse of the output range).
    calib_inputs: float input maps (N, H, W, C) from the calibration set; when given, weight rounding is
        optimized for them (optimize_rounding) and the remaining mean error is folded into the bias.
    """
    if weight_bits not in (8, 16):
        raise UnsupportedError(f"KPU weights are 8 or 16 bits, not {weight_bits}")
    w = np.asarray(weights, np.float64)
    kh, kw, cin, cout = w.shape
    if depthwise:
        w_oc = w[:, :, :, 0].transpose(2, 0, 1)                     # [c][ky][kx]
        per_out = w_oc.reshape(cin, -1)
        cout = cin
    else:
        w_oc = w.transpose(3, 2, 0, 1)                             # [o][c][ky][kx]
        per_out = w_oc.reshape(cout, -1)
    qmax = 127 if weight_bits == 8 else 32767
    zw = 128 if weight_bits == 8 else 32768
    absmax = np.abs(per_out).max(axis=1)
    sw = np.where(absmax > 0, absmax / qmax, 1.0)
    wq_signed = np.clip(np.round(per_out / sw[:, None]), -qmax, qmax)
    b = np.zeros(cout) if bias is None else np.asarray(bias, np.float64).reshape(cout).copy()
    if calib_inputs is not None:
        patches = input_patches(calib_inputs, kh).astype(np.float64)        # (R, k*k, C)
        if depthwise:
            xc = patches.transpose(2, 0, 1)                                  # (C, R, k*k)
            gram = np.einsum("crk,crj->ckj", xc, xc) / xc.shape[1]
            mean = xc.mean(axis=1)                                           # (C, k*k)
        else:
            flat = patches.transpose(0, 2, 1).reshape(patches.shape[0], -1)  # [c][ky][kx] order
            gram = flat.T @ flat / flat.shape[0] if flat.shape[1] <= 4608 else None
            mean = flat.mean(axis=0)
        if gram is not None:
            wq_signed = optimize_rounding(per_out, sw, wq_signed, gram, qmax).astype(np.float64)
        dw = per_out - wq_signed * sw[:, None]                               # what the rounding lost
        b += (dw * mean).sum(axis=1)                                         # bias correction, per channel
    wq = (wq_signed + zw).astype(np.uint8 if weight_bits == 8 else np.uint16).reshape(w_oc.shape)
    sum_w = wq_signed.sum(axis=1)                                 # sum over the whole kernel of (W - zw)

    sx, zx = in_q.scale, in_q.zero_point
    pad_value = int(min(max(round(zx), 0), 255))
    m = sx * sw                                                    # real value of one acc unit, per channel
    const = b - m * zx * sum_w                                     # real pre-activation offset per channel

    act = activation if activation not in ("", "none", "linear", "identity") else None
    notes: list[str] = []
    if act in LINEAR_FAMILY:
        s_b, z_b = out_q.scale, out_q.zero_point
    else:
        f, finv = _curve_function(act)
        if pre_range is None:
            ylo, yhi = out_q.range
            if finv is None:
                raise UnsupportedError(f"activation {act!r} needs the pre-activation range")
            eps = 1e-4
            lo_clip = {"sigmoid": (eps, 1 - eps), "tanh": (-1 + eps, 1 - eps)}[act]
            pre_range = (float(finv(np.clip(ylo, *lo_clip))), float(finv(np.clip(yhi, *lo_clip))))
        lo, hi = min(pre_range[0], 0.0), max(pre_range[1], 0.0)
        s_b, z_b = (hi - lo) / 255.0, -lo / ((hi - lo) / 255.0)

    v = m / s_b                                                    # acc unit -> bn unit, before 2^P
    P = DEFAULT_P
    vmin = float(np.min(np.abs(v[v != 0]))) if np.any(v != 0) else 1.0
    while P < 18 and vmin * (1 << P) * (1 << 15) < (1 << 20):
        P += 1
    add_real = (const / s_b + z_b) * (1 << P)
    while P > DEFAULT_P and (np.max(np.abs(add_real)) >= NORM_ADD_MAX // 4 or 300 * (1 << P) >= BN_LIMIT):
        P -= 1
        add_real = (const / s_b + z_b) * (1 << P)
    if np.max(np.abs(add_real)) >= NORM_ADD_MAX:
        raise UnsupportedError("a BN offset is out of the KPU's 32-bit range (bias far outside the output range)")

    norm_mul = np.zeros(cout, np.int64)
    norm_shift = np.zeros(cout, np.int64)
    norm_add = np.zeros(cout, np.int64)
    for o in range(cout):
        mul, shift = mul_shift(float(v[o] * (1 << P)))
        norm_mul[o], norm_shift[o] = mul, shift
        # + 0.5 bn unit compensates the floor of the BN shift on average
        norm_add[o] = int(math.floor(add_real[o] + (0.5 if shift > 0 else 0.0) + 0.5))

    if act in (None, "relu", "relu6", "relu_n1_to_1"):
        table = linear_table(P, int(out_q.zero_point))
    elif act == "leaky_relu":
        table = leaky_table(P, int(out_q.zero_point), alpha)
    else:
        f, _ = _curve_function(act)

        def g(bn):
            z = (np.asarray(bn, np.float64) / (1 << P) - z_b) * s_b
            return f(z) / out_q.scale + out_q.zero_point

        table = curve_table(g, 0, 255 << P)
        notes.append(f"{act} fitted with 16 segments: max error {table.max_error_lsb:.2f} LSB")

    return KpuConvParams(weights=wq, weight_bits=weight_bits, arg_x=-zw, shr_x=0, arg_w=0, shr_w=0, arg_add=0,
                         pad_value=pad_value, norm_mul=norm_mul, norm_shift=norm_shift, norm_add=norm_add,
                         act=table, bn_exponent=P, notes=notes)
