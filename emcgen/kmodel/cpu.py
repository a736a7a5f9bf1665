"""The CPU layers of the kmodel v3 runtime, as the Kendryte SDK's kpu.c computes them (docs §2.3).

Each function takes the emulator's Machine and a Layer, reads its inputs from the main buffer (or writes
KPU RAM), writes its output, and returns the array it produced (for tracing). float32 arithmetic is
numpy float32 with the SDK's evaluation order: sequential sums, fused multiply-add where the compiler
contracts `a*b + c` (FULLY_CONNECTED, DEQUANTIZE, CHANNELWISE_DEQUANTIZE, L2_NORMALIZATION), newlib's
expf replaced by numpy's float32 exp (may differ by an ulp). Differences of Maix-EMC's patched kpu.c
(runtime "maix-emc") are marked where they apply.
"""

from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from .floatmath import fma32, roundf, sequential_sum, to_int32
from .layout import sdk_byte_addresses

FLT_MIN = np.float32(1.17549435e-38)
F32 = np.float32


def add(m, layer):
    b = layer.body
    a = m.read_f32(b.main_mem_in_a_address, b.count, "input a")
    c = m.read_f32(b.main_mem_in_b_address, b.count, "input b")
    with np.errstate(all="ignore"):
        out = (a + c).astype(np.float32)
    return m.write(b.main_mem_out_address, out, m.shape_of(b.main_mem_in_a_address, b.count))


def carry_shift(v: np.ndarray, shift: int) -> np.ndarray:
    """The SDK's kpu_carry_shift, quirk included: odd negative intermediates round one too low."""
    if shift <= 0:
        return v
    v = v >> (shift - 1)
    odd = (v & 1) == 1
    return np.where(odd, np.where(v < 0, (v >> 1) - 1, (v >> 1) + 1), v >> 1)


def quantized_add(m, layer):
    b = layer.body
    n = -(-b.count // 8) * 8  # the SDK's loop is unrolled by 8
    for name in ("in_a_shift", "in_b_shift", "out_shift"):
        if not 0 <= getattr(b, name) <= 63:
            raise UnsupportedError(f"QUANTIZED_ADD {name} = {getattr(b, name)} (C shifts need 0..63)")
    a = m.read_u8(b.main_mem_in_a_address, n, "input a").astype(np.int64) + b.in_a_offset
    c = m.read_u8(b.main_mem_in_b_address, n, "input b").astype(np.int64) + b.in_b_offset
    with np.errstate(over="ignore"):
        a, c = a * b.in_a_mul, c * b.in_b_mul
        if b.in_a_shift == b.in_b_shift:
            v = (a + c) >> b.in_a_shift
        else:
            v = (a >> b.in_a_shift) + (c >> b.in_b_shift)
        v = carry_shift(v * b.out_mul, b.out_shift) + b.out_offset
    out = np.clip(v, 0, 255).astype(np.uint8)
    return m.write(b.main_mem_out_address, out, (n,))


def global_average_pool2d(m, layer):
    b = layer.body
    x = m.read_f32(b.main_mem_in_address, b.kernel_size * b.channels, "input").reshape(b.channels, -1)
    with np.errstate(all="ignore"):
        out = sequential_sum(x, axis=1) / F32(b.kernel_size)
    return m.write(b.main_mem_out_address, out.astype(np.float32), (b.channels,))


def quantized_global_average_pool2d(m, layer):
    """Maix-EMC's patched kpu.c only: uint32 sum, integer division (truncating)."""
    b = layer.body
    x = m.read_u8(b.main_mem_in_address, b.kernel_size * b.channels, "input").reshape(b.channels, -1)
    out = x.astype(np.int64).sum(axis=1) // max(b.kernel_size, 1)
    return m.write(b.main_mem_out_address, (out & 0xFF).astype(np.uint8), (b.channels,))


MAX_WINDOW_TAPS = 1 << 16


def _useful_taps(kernel: int, in_size: int, out_size: int, stride: int, pad: int) -> list[int]:
    """Kernel offsets that land inside the input for at least one output position (the others add
    nothing), so a corrupt kernel size cannot make the emulator loop for ever."""
    starts = np.arange(out_size, dtype=np.int64) * stride - pad
    lo, hi = np.maximum(-starts, 0), np.minimum(in_size - starts, kernel)
    if int(np.clip(hi - lo, 0, None).sum()) > MAX_WINDOW_TAPS:
        raise UnsupportedError(f"pooling window of {kernel} taps is beyond what the emulator runs")
    return sorted({t for a, e in zip(lo.tolist(), hi.tolist(), strict=True) for t in range(a, e)})


def _window_taps(b):
    """Per kernel tap: flat input index and validity for every output element of a 2-D pool."""
    ins, outs = b.in_shape, b.out_shape
    oy = np.arange(outs.height)[:, None] * b.stride_height - b.padding_height
    ox = np.arange(outs.width)[None, :] * b.stride_width - b.padding_width
    for ky in _useful_taps(b.kernel_height, ins.height, outs.height, b.stride_height, b.padding_height):
        for kx in _useful_taps(b.kernel_width, ins.width, outs.width, b.stride_width, b.padding_width):
            y, x = oy + ky, ox + kx
            valid = (y >= 0) & (y < ins.height) & (x >= 0) & (x < ins.width)
            yield np.where(valid, y * ins.width + x, 0), valid


def quantized_max_pool2d(m, layer):
    b = layer.body
    ins, outs = b.in_shape, b.out_shape
    x = m.read_u8(b.main_mem_in_address, ins.width * ins.height * outs.channels, "input")
    x = x.reshape(outs.channels, ins.width * ins.height)
    out = np.zeros((outs.channels, outs.height, outs.width), dtype=np.uint8)  # the SDK starts from 0
    for idx, valid in _window_taps(b):
        out = np.maximum(out, np.where(valid, x[:, idx], 0).astype(np.uint8))
    return m.write(b.main_mem_out_address, out, out.shape)


def average_pool2d(m, layer):
    """The SDK ignores `act` here (docs §2.3)."""
    b = layer.body
    ins, outs = b.in_shape, b.out_shape
    x = m.read_f32(b.main_mem_in_address, ins.width * ins.height * outs.channels, "input")
    x = x.reshape(outs.channels, ins.width * ins.height)
    total = np.zeros((outs.channels, outs.height, outs.width), dtype=np.float32)
    count = np.zeros((outs.height, outs.width), dtype=np.float32)
    for idx, valid in _window_taps(b):
        total = np.where(valid, total + x[:, idx], total).astype(np.float32)
        count = count + valid
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (total / count).astype(np.float32)
    return m.write(b.main_mem_out_address, out, out.shape)


def quantize(m, layer):
    b = layer.body
    x = m.read_f32(b.main_mem_in_address, b.count, "input")
    scale = F32(1) / F32(b.quant_param.scale)
    with np.errstate(all="ignore"):
        v = (x - F32(b.quant_param.bias)) * scale
    # SDK: roundf then (int); Maix-EMC's patched kpu.c: plain (int), i.e. truncation
    q = to_int32(v if m.runtime == "maix-emc" else roundf(v))
    out = np.clip(q, 0, 255).astype(np.uint8)
    return m.write(b.mem_out_address, out, m.shape_of(b.main_mem_in_address, b.count))


def dequantize(m, layer):
    b = layer.body
    q = m.read_u8(b.main_mem_in_address, b.count, "input")
    out = fma32(q.astype(np.float32), F32(b.quant_param.scale), F32(b.quant_param.bias))
    return m.write(b.main_mem_out_address, out, m.shape_of(b.main_mem_in_address, b.count))


def channelwise_dequantize(m, layer):
    b = layer.body
    q = m.read_u8(b.main_mem_in_address, b.channels * b.channel_size, "input").reshape(b.channels, -1)
    qp = layer.quant_params.astype(np.float32)
    out = fma32(q.astype(np.float32), qp[:, :1], qp[:, 1:])
    return m.write(b.main_mem_out_address, out, m.shape_of(b.main_mem_in_address, q.size))


def requantize(m, layer):
    b = layer.body
    q = m.read_u8(b.main_mem_in_address, b.count, "input")
    out = np.asarray(b.table, dtype=np.uint8)[q]
    return m.write(b.main_mem_out_address, out, m.shape_of(b.main_mem_in_address, b.count))


def l2_normalization(m, layer):
    b = layer.body
    x = m.read_f32(b.main_mem_in_address, b.channels, "input")
    s = F32(0)
    for v in x:  # sum += x*x, contracted to fmadd.s
        s = fma32(v, v, s)
    s = max(F32(s), F32(1e-10))
    with np.errstate(all="ignore"):
        out = (x * (F32(1) / np.sqrt(F32(s)))).astype(np.float32)
    return m.write(b.main_mem_out_address, out, m.shape_of(b.main_mem_in_address, b.channels))


def softmax(m, layer):
    """max starts at FLT_MIN, not -inf (an SDK quirk kept on purpose)."""
    b = layer.body
    x = m.read_f32(b.main_mem_in_address, b.channels, "input")
    mx = np.float32(np.fmax(FLT_MIN, np.fmax.reduce(x))) if x.size else FLT_MIN
    with np.errstate(all="ignore"):
        e = np.exp((x - mx).astype(np.float32)).astype(np.float32)
        out = (e / sequential_sum(e)).astype(np.float32)
    return m.write(b.main_mem_out_address, out, m.shape_of(b.main_mem_in_address, b.channels))


def logistic(m, layer):
    b = layer.body
    x = m.read_f32(b.main_mem_in_address, b.channels, "input")
    with np.errstate(all="ignore"):
        out = (F32(1) / (F32(1) + np.exp(-x).astype(np.float32))).astype(np.float32)
    return m.write(b.main_mem_out_address, out, m.shape_of(b.main_mem_in_address, b.channels))


def concat(m, layer):
    b = layer.body
    pos, parts = b.main_mem_out_address, []
    for r in layer.inputs:  # sequential memcpy, in order
        part = m.read_u8(r.start, r.size, "input").copy()
        m.write(pos, part, (r.size,))
        parts.append(part)
        pos += r.size
    out = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    dtypes = {m.dtype_at(r.start) for r in layer.inputs}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.uint8)  # bytes are bytes; keep a common type
    if out.size % dtype.itemsize:
        dtype = np.dtype(np.uint8)
    out = out.view(dtype)
    m.note(b.main_mem_out_address, out.nbytes, dtype, (out.size,))
    return out


def fully_connected(m, layer):
    """Sequential fused multiply-add from 0, then + bias ([hw]-matched, docs §3.9.6)."""
    b = layer.body
    x = m.read_f32(b.main_mem_in_address, b.in_channels, "input")
    w = np.asarray(layer.weights, dtype=np.float32)
    acc = np.zeros(b.out_channels, dtype=np.float32)
    for i in range(b.in_channels):
        acc = fma32(x[i], w[:, i], acc)
    out = (acc + np.asarray(layer.bias, dtype=np.float32)).astype(np.float32)
    if b.act == 1:
        out = np.maximum(out, F32(0))
    elif b.act == 2 and m.runtime != "maix-emc":  # Maix-EMC's kpu.c prints "not support yet" for relu6
        out = np.minimum(np.maximum(out, F32(0)), F32(6))
    return m.write(b.main_mem_out_address, out, (b.out_channels,))


def _flatten(m, layer, item):
    b = layer.body
    s = b.shape
    n = s.width * s.height * s.channels
    read = m.read_f32 if item == 4 else m.read_u8
    x = read(b.main_mem_in_address, n, "input").reshape(s.channels, s.height, s.width)
    out = np.ascontiguousarray(x.transpose(1, 2, 0))  # NCHW -> NHWC
    return m.write(b.main_mem_out_address, out, out.shape)


def tensorflow_flatten(m, layer):
    return _flatten(m, layer, 4)


def quantized_tensorflow_flatten(m, layer):
    """Not in the official SDK (its kpu.c asserts); Maix-EMC's patched kpu.c: type 20 on bytes."""
    return _flatten(m, layer, 1)


def _resize(m, layer, item):
    b = layer.body
    s = b.in_shape
    read = m.read_f32 if item == 4 else m.read_u8
    x = read(b.main_mem_in_address, s.width * s.height * s.channels, "input").reshape(
        s.channels, s.height, s.width
    )
    sy = F32(s.height) / F32(b.out_height) if b.out_height else F32(0)
    sx = F32(s.width) / F32(b.out_width) if b.out_width else F32(0)
    iy = np.minimum(np.floor(np.arange(b.out_height, dtype=np.float32) * sy), F32(s.height - 1)).astype(
        np.int64
    )
    ix = np.minimum(np.floor(np.arange(b.out_width, dtype=np.float32) * sx), F32(s.width - 1)).astype(
        np.int64
    )
    out = x[:, iy[:, None], ix[None, :]]
    return m.write(b.main_mem_out_address, out, out.shape)


def resize_nearest_neighbor(m, layer):
    return _resize(m, layer, 4)


def quantized_resize_nearest_neighbor(m, layer):
    return _resize(m, layer, 1)


def k210_add_padding(m, layer):
    """One byte per channel becomes pixel (0,0) of a 4x4 map; the other 15 pixels are left stale."""
    b = layer.body
    x = m.read_u8(b.main_mem_in_address, b.channels, "input")
    addrs = sdk_byte_addresses(b.kpu_mem_out_address, b.channels, 4, 4)[:, 0, 0]
    m.kpu.write(addrs, x, "K210_ADD_PADDING")
    return x.reshape(b.channels, 1, 1)


def k210_remove_padding(m, layer):
    b = layer.body
    x = m.read_u8(b.main_mem_in_address, 16 * (b.channels - 1) + 1 if b.channels else 0, "input")
    return m.write(b.main_mem_out_address, x[::16].copy(), (b.channels,))


def k210_upload(m, layer):
    b = layer.body
    x = m.read_u8(b.main_mem_in_address, b.width * b.height * b.channels, "input")
    m.kpu.write(
        sdk_byte_addresses(b.kpu_mem_out_address, b.channels, b.height, b.width).reshape(-1), x, "K210_UPLOAD"
    )
    return x.reshape(b.channels, b.height, b.width)


HANDLERS = {
    "ADD": add,
    "QUANTIZED_ADD": quantized_add,
    "GLOBAL_AVERAGE_POOL2D": global_average_pool2d,
    "QUANTIZED_GLOBAL_AVERAGE_POOL2D": quantized_global_average_pool2d,
    "QUANTIZED_MAX_POOL2D": quantized_max_pool2d,
    "AVERAGE_POOL2D": average_pool2d,
    "QUANTIZE": quantize,
    "DEQUANTIZE": dequantize,
    "REQUANTIZE": requantize,
    "L2_NORMALIZATION": l2_normalization,
    "SOFTMAX": softmax,
    "CONCAT": concat,
    "QUANTIZED_CONCAT": concat,
    "FULLY_CONNECTED": fully_connected,
    "TENSORFLOW_FLATTEN": tensorflow_flatten,
    "QUANTIZED_TENSORFLOW_FLATTEN": quantized_tensorflow_flatten,
    "RESIZE_NEAREST_NEIGHBOR": resize_nearest_neighbor,
    "QUANTIZED_RESIZE_NEAREST_NEIGHBOR": quantized_resize_nearest_neighbor,
    "CHANNELWISE_DEQUANTIZE": channelwise_dequantize,
    "LOGISTIC": logistic,
    "K210_ADD_PADDING": k210_add_padding,
    "K210_REMOVE_PADDING": k210_remove_padding,
    "K210_UPLOAD": k210_upload,
}
