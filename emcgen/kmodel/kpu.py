"""Bit-accurate model of one K210_CONV layer on the KPU (docs/kmodel_v3.md §3.8-§3.10).

Pipeline per layer: read the input map from KPU RAM through the layout the registers describe; 1x1 or
3x3 stride-1 convolution (3x3 padded with pad_value) with the offset terms applied per input channel and
floor shifts; batch norm with a floor shift; the 16-segment activation with a rounding shift; pooling;
write the output map back to KPU RAM through the write-back layout. All integer arithmetic is exact:
the convolution is a float64 matrix product per kernel tap (integer products < 2^48, sums < 2^53, so
float64 is exact and BLAS-fast) and everything else is int64.

Which choices are hardware-validated (the Maix-EMC cifar10 vector, §3.9.6): per-channel offset terms,
floor in conv and BN, round-to-nearest in the activation, pool 0, 3x3 normal conv, 8-bit weights.
Everything else follows nncase's simulators; the two open rules are named constants below.
"""

from __future__ import annotations

import numpy as np

from ..errors import FormatError, UnsupportedError
from .format import KPU_LINE_BYTES, KPU_RAM_LINES
from .layout import POOL_TYPES, ConvGeometry, byte_addresses

# Activation rounding on exact ties (bn - x_start) * y_mul = (k + 1/2) * 2^shift: "even" rounds half to
# even like nncase v0.2 (commit 88c80d05c), "up" rounds half up like nncase v0.1. The hardware vector
# cannot tell them apart (docs §3.9.4, §8).
ACTIVATION_TIES = "even"
# A value equal to a segment start belongs to the segment below (strict '>', nncase v0.2); v0.1 used '>='.
SEGMENT_SELECT_STRICT = True
# Pool type 6 selects this pixel of each 2x2 window (nncase v0.2 says right-top; a Sipeed comment says
# right-bottom; unverified).
POOL6_PIXEL = (0, 1)

KPU_RAM_BYTES = KPU_RAM_LINES * KPU_LINE_BYTES


class KpuRam:
    """The 2 MiB of KPU RAM; reads and writes go through explicit address arrays (bounds-checked)."""

    def __init__(self):
        self.mem = np.zeros(KPU_RAM_BYTES, dtype=np.uint8)

    def _check(self, addrs: np.ndarray, what: str) -> None:
        if addrs.size and (addrs.min() < 0 or addrs.max() >= KPU_RAM_BYTES):
            raise FormatError(
                f"{what} reaches KPU-RAM byte {int(addrs.max())} (line "
                f"{int(addrs.max()) // KPU_LINE_BYTES}); KPU RAM has {KPU_RAM_LINES} lines"
            )

    def read(self, addrs: np.ndarray, what: str) -> np.ndarray:
        self._check(addrs, what)
        return self.mem[addrs]

    def write(self, addrs: np.ndarray, values, what: str) -> None:
        self._check(addrs, what)
        self.mem[addrs] = values

    def write_bytes(self, line: int, data: bytes, what: str) -> None:
        start = line * KPU_LINE_BYTES
        if start + len(data) > KPU_RAM_BYTES:
            raise FormatError(f"{what} writes {len(data)} bytes from KPU-RAM line {line}, past the 2 MiB")
        self.mem[start : start + len(data)] = np.frombuffer(data, dtype=np.uint8)


def input_addresses(regs) -> np.ndarray:
    g = ConvGeometry.of(regs)
    ct = regs.kernel_calc_type_cfg
    return byte_addresses(
        g.src_line,
        g.in_channels,
        g.in_height,
        g.in_width,
        ct.channel_switch_addr,
        ct.row_switch_addr,
        _groups(ct.coef_group, "coef_group"),
    )


def output_addresses(regs) -> np.ndarray:
    g = ConvGeometry.of(regs)
    wb = regs.write_back_cfg
    return byte_addresses(
        g.dst_line,
        g.out_channels,
        g.out_height,
        g.out_width,
        wb.wb_channel_switch_addr,
        wb.wb_row_switch_addr,
        _groups(wb.wb_group, "wb_group"),
    )


def _groups(value: int, name: str) -> int:
    if value not in (1, 2, 4):
        raise UnsupportedError(f"K210_CONV {name} = {value}; the KPU packs 1, 2 or 4 channels per line")
    return value


def _unsupported_options(regs) -> None:
    checks = [
        ("kernel_pool_type_cfg.pad_type", regs.kernel_pool_type_cfg.pad_type, 0),
        ("kernel_pool_type_cfg.first_stride", regs.kernel_pool_type_cfg.first_stride, 0),
        ("kernel_pool_type_cfg.bypass_conv", regs.kernel_pool_type_cfg.bypass_conv, 0),
        ("kernel_pool_type_cfg.load_para", regs.kernel_pool_type_cfg.load_para, 1),
        ("kernel_load_cfg.load_coor", regs.kernel_load_cfg.load_coor, 1),
        ("kernel_calc_type_cfg.load_act", regs.kernel_calc_type_cfg.load_act, 1),
        ("interrupt_enabe.full_add", regs.interrupt_enabe.full_add, 0),
    ]
    for name, value, want in checks:
        if value != want:
            raise UnsupportedError(
                f"K210_CONV {name} = {value}: the emulator models only {want} "
                "(the hardware behaviour of other values is not documented)"
            )


def convolve(x: np.ndarray, weights: np.ndarray, regs) -> np.ndarray:
    """int64 accumulator (OC, H, W) of docs §3.9.2, offset terms per input channel."""
    g = ConvGeometry.of(regs)
    k = g.kernel
    p = k // 2
    cv = regs.conv_value
    pad = regs.kernel_pool_type_cfg.pad_value
    h, w = g.in_height, g.in_width
    xp = np.pad(x, ((0, 0), (p, p), (p, p)), constant_values=pad).astype(np.int64)
    taps = [(ky, kx) for ky in range(k) for kx in range(k)]
    if cv.arg_x:
        sx = sum(xp[:, ky : ky + h, kx : kx + w] for ky, kx in taps)  # (IC, H, W) window sums
        tx = (cv.arg_x * sx) >> cv.shr_x  # per input channel, floored
    else:
        tx = np.zeros((x.shape[0], h, w), dtype=np.int64)
    wts = weights.astype(np.int64)
    if g.depthwise:
        wts = wts.reshape(g.out_channels, k, k)
        acc = sum(xp[:, ky : ky + h, kx : kx + w] * wts[:, ky, kx, None, None] for ky, kx in taps)
        tw = (cv.arg_w * wts.sum(axis=(1, 2))) >> cv.shr_w
        return acc + tx + tw[:, None, None] + regs.conv_value2.arg_add
    wts = wts.reshape(g.out_channels, g.in_channels, k, k)
    wf, xf = wts.astype(np.float64), xp.astype(np.float64)
    acc = np.zeros((g.out_channels, h * w), dtype=np.float64)
    for ky, kx in taps:
        acc += wf[:, :, ky, kx] @ xf[:, ky : ky + h, kx : kx + w].reshape(g.in_channels, h * w)
    tw = ((cv.arg_w * wts.sum(axis=(2, 3))) >> cv.shr_w).sum(axis=1)  # (OC,) summed over c
    const = tw + g.in_channels * regs.conv_value2.arg_add
    return acc.astype(np.int64).reshape(g.out_channels, h, w) + tx.sum(axis=0)[None] + const[:, None, None]


def batch_norm(acc: np.ndarray, bn) -> np.ndarray:
    """bn = ((acc * norm_mul) >> norm_shift) + norm_add per output channel, floor shift (docs §3.9.3)."""
    mul, add, shift = (a[:, None, None] for a in (bn.norm_mul, bn.norm_add, bn.norm_shift))
    if acc.size and int(np.abs(acc).max()) * int(np.abs(bn.norm_mul).max()) >= 1 << 62:
        raise UnsupportedError(
            "K210_CONV accumulator x norm_mul exceeds 62 bits; the hardware's widths there are undocumented"
        )
    return ((acc * mul) >> shift) + add


def _round_shift(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """t / 2^s rounded to nearest, ties per ACTIVATION_TIES (t, s int64; s >= 0)."""
    s = np.minimum(s, 60)  # |t| < 2^57 here, so any larger shift rounds to 0 as well
    q = t >> s
    r = t - (q << s)
    half = (np.int64(1) << s) >> 1
    up = r > half
    tie = (r == half) & (s > 0)
    up |= tie & ((q & 1) == 1) if ACTIVATION_TIES == "even" else tie
    return q + up


def activate(bn: np.ndarray, act) -> np.ndarray:
    """16-segment piecewise-linear activation to uint8 (docs §3.9.4)."""
    if bn.size and int(np.abs(bn).max()) >= 1 << 40:
        raise UnsupportedError(
            f"K210_CONV batch-norm output {int(np.abs(bn).max())} is beyond the 36-bit "
            "range the activation segments compare against"
        )
    xs = act.x_start
    if np.all(np.diff(xs) >= 0):  # the usual sorted table: count the starts below bn
        seg = np.searchsorted(xs, bn, side="left" if SEGMENT_SELECT_STRICT else "right") - 1
        seg = np.maximum(seg, 0)  # below every start: segment 0 (a valid table starts at -2^35)
    else:  # the last segment (in table order) whose start is below bn
        seg = np.zeros(bn.shape, dtype=np.intp)
        for i in range(1, 16):
            seg = np.where(bn > xs[i] if SEGMENT_SELECT_STRICT else bn >= xs[i], i, seg)
    t = (bn - xs[seg]) * act.y_mul[seg]
    y = _round_shift(t, act.shift_number[seg]) + act.bias[seg]
    return np.clip(y, 0, 255).astype(np.uint8)


def pool(y: np.ndarray, pool_type: int) -> np.ndarray:
    """KPU pooling of a (C, H, W) uint8 map (docs §3.10)."""
    if pool_type not in POOL_TYPES:
        raise UnsupportedError(f"K210_CONV pool_type {pool_type}: known types are {sorted(POOL_TYPES)}")
    c, h, w = y.shape
    if pool_type == 0:
        return y
    if pool_type in (8, 9):
        edge = "edge" if pool_type == 8 else "constant"
        yp = np.pad(y, ((0, 0), (0, 1), (0, 1)), mode=edge).astype(np.int64)
        win = np.stack([yp[:, :h, :w], yp[:, :h, 1:], yp[:, 1:, :w], yp[:, 1:, 1:]])
        return (win.sum(0) // 4 if pool_type == 8 else win.max(0)).astype(np.uint8)
    s = POOL_TYPES[pool_type][1]
    oh, ow = h // s, w // s
    blocks = y[:, : oh * s, : ow * s].reshape(c, oh, s, ow, s)
    if pool_type in (1, 3):
        return blocks.max(axis=(2, 4))
    if pool_type in (2, 4):
        return (blocks.astype(np.int64).sum(axis=(2, 4)) // (s * s)).astype(np.uint8)
    dy, dx = POOL6_PIXEL if pool_type == 6 else (0, 0)
    return np.ascontiguousarray(blocks[:, :, dy, :, dx])


def run_conv(ram: KpuRam, layer, where: str) -> np.ndarray:
    """Execute one K210_CONV on `ram`; returns the pooled (C, H, W) uint8 output (also written back)."""
    regs = layer.regs
    g = ConvGeometry.of(regs)
    if g.kernel is None:
        raise FormatError(f"{where}: kernel_type {regs.kernel_pool_type_cfg.kernel_type} is not 1x1 or 3x3")
    _unsupported_options(regs)
    if g.depthwise and g.in_channels != g.out_channels:
        raise FormatError(
            f"{where}: depthwise with {g.in_channels} input but {g.out_channels} output channels"
        )
    x = ram.read(input_addresses(regs), f"{where} input")
    acc = convolve(x, np.asarray(layer.weights), regs)
    y = pool(activate(batch_norm(acc, layer.bn), layer.act), g.pool_type)
    if y.shape[1:] != (g.out_height, g.out_width):
        raise FormatError(
            f"{where}: pool type {g.pool_type} turns {g.in_height}x{g.in_width} into "
            f"{y.shape[1]}x{y.shape[2]}, but the registers say {g.out_height}x{g.out_width}"
        )
    ram.write(output_addresses(regs), y, f"{where} output")
    return y
