"""What each layer reads and writes: main-buffer byte ranges and KPU-RAM line ranges.

Shared by the verifier (bounds, overlap, read-before-write) and the inspector (the per-layer table).
Ranges are half-open [start, end). The sizes include the runtime's rounding: K210_CONV's DMA to main
memory moves ceil(N/8)*8 bytes (docs §3.12) and QUANTIZED_ADD processes ceil(count/8)*8 elements
(§2.3); `needs` lists the part of the reads that must hold data written earlier (without that slack).
K210_CONV KPU-RAM regions follow the register fields the hardware uses (channel_switch_addr, coef_group).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .format import KPU_RAM_LINES
from .layout import ConvGeometry, map_lines


@dataclass
class Access:
    main_reads: list[tuple[int, int]] = field(default_factory=list)
    main_writes: list[tuple[int, int]] = field(default_factory=list)
    kpu_reads: list[tuple[int, int]] = field(default_factory=list)
    kpu_writes: list[tuple[int, int]] = field(default_factory=list)
    needs: list[tuple[int, int]] = field(default_factory=list)  # main reads that must be initialised

    def to_json(self) -> dict:
        return {
            k: [list(r) for r in getattr(self, k)]
            for k in ("main_reads", "main_writes", "kpu_reads", "kpu_writes")
        }


def ceil8(n: int) -> int:
    return -(-n // 8) * 8


def _rw(reads, writes, kpu_reads=(), kpu_writes=(), needs=None) -> Access:
    reads = [r for r in reads if r[1] > r[0]]
    return Access(
        reads,
        [w for w in writes if w[1] > w[0]],
        list(kpu_reads),
        list(kpu_writes),
        reads if needs is None else [r for r in needs if r[1] > r[0]],
    )


def _same(in_bytes, out_bytes):
    """Layers reading n_in elements at main_mem_in_address and writing n_out at the output address."""

    def access(b):
        out = getattr(b, "main_mem_out_address", None)
        if out is None:
            out = b.mem_out_address
        i, o = in_bytes(b), out_bytes(b)
        return _rw([(b.main_mem_in_address, b.main_mem_in_address + i)], [(out, out + o)])

    return access


def _quantized_add(b):
    n = ceil8(b.count)
    a, bb, o = b.main_mem_in_a_address, b.main_mem_in_b_address, b.main_mem_out_address
    return _rw([(a, a + n), (bb, bb + n)], [(o, o + n)], needs=[(a, a + b.count), (bb, bb + b.count)])


def _add(b):
    n = 4 * b.count
    return _rw(
        [
            (b.main_mem_in_a_address, b.main_mem_in_a_address + n),
            (b.main_mem_in_b_address, b.main_mem_in_b_address + n),
        ],
        [(b.main_mem_out_address, b.main_mem_out_address + n)],
    )


def _concat(b, inputs):
    total = sum(r.size for r in inputs)
    return _rw(
        [(r.start, r.start + r.size) for r in inputs],
        [(b.main_mem_out_address, b.main_mem_out_address + total)],
    )


def _pool(item):
    def access(b):
        # the SDK walks out_shape.channels input channels of in_shape size; windows are clipped to the
        # input, so the last byte read is that of the last window's bottom-right in-bounds pixel (a
        # subsampling pool whose input address is shifted by a phase reads no further than that)
        w, h = b.in_shape.width, b.in_shape.height
        c = b.out_shape.channels
        n_out = b.out_shape.width * b.out_shape.height * c
        y_last = min(h, (b.out_shape.height - 1) * b.stride_height - b.padding_height + b.kernel_height) - 1
        x_last = min(w, (b.out_shape.width - 1) * b.stride_width - b.padding_width + b.kernel_width) - 1
        end = ((c - 1) * h * w + max(y_last, 0) * w + max(x_last, 0) + 1) if n_out else 0
        return _rw(
            [(b.main_mem_in_address, b.main_mem_in_address + item * end)],
            [(b.main_mem_out_address, b.main_mem_out_address + item * n_out)],
        )

    return access


def _resize(item):
    def access(b):
        s = b.in_shape
        return _rw(
            [(b.main_mem_in_address, b.main_mem_in_address + item * s.width * s.height * s.channels)],
            [
                (
                    b.main_mem_out_address,
                    b.main_mem_out_address + item * b.out_width * b.out_height * s.channels,
                )
            ],
        )

    return access


def _add_padding(b):
    lines = map_lines(4, 4, b.channels)
    return _rw(
        [(b.main_mem_in_address, b.main_mem_in_address + b.channels)],
        [],
        kpu_writes=[(b.kpu_mem_out_address, b.kpu_mem_out_address + lines)] if b.channels else [],
    )


def _remove_padding(b):
    n = 16 * (b.channels - 1) + 1 if b.channels else 0
    return _rw(
        [(b.main_mem_in_address, b.main_mem_in_address + n)],
        [(b.main_mem_out_address, b.main_mem_out_address + b.channels)],
    )


def _upload(b):
    lines = map_lines(b.width, b.height, b.channels) if b.width and b.height else 0
    return _rw(
        [(b.main_mem_in_address, b.main_mem_in_address + b.width * b.height * b.channels)],
        [],
        kpu_writes=[(b.kpu_mem_out_address, b.kpu_mem_out_address + lines)] if lines else [],
    )


def conv_regions(regs) -> tuple[tuple[int, int], tuple[int, int]]:
    """KPU-RAM line ranges a K210_CONV reads and writes, from its layout registers."""
    g = ConvGeometry.of(regs)
    ct, wb = regs.kernel_calc_type_cfg, regs.write_back_cfg
    groups_in, groups_out = max(ct.coef_group, 1), max(wb.wb_group, 1)
    n_in = ct.channel_switch_addr * -(-g.in_channels // groups_in)
    n_out = wb.wb_channel_switch_addr * -(-g.out_channels // groups_out)
    return (g.src_line, g.src_line + n_in), (g.dst_line, g.dst_line + n_out)


def _conv(layer):
    read, write = conv_regions(layer.regs)
    writes = []
    if layer.body.flags & 1:
        n = ceil8(layer.regs.dma_parameter.dma_total_byte + 1)
        writes = [(layer.body.main_mem_out_address, layer.body.main_mem_out_address + n)]
    return Access([], writes, [read], [write], [])


_F32 = 4
ACCESS = {
    "ADD": _add,
    "QUANTIZED_ADD": _quantized_add,
    "GLOBAL_AVERAGE_POOL2D": _same(lambda b: _F32 * b.kernel_size * b.channels, lambda b: _F32 * b.channels),
    "QUANTIZED_GLOBAL_AVERAGE_POOL2D": _same(lambda b: b.kernel_size * b.channels, lambda b: b.channels),
    "QUANTIZED_MAX_POOL2D": _pool(1),
    "AVERAGE_POOL2D": _pool(_F32),
    "QUANTIZE": _same(lambda b: _F32 * b.count, lambda b: b.count),
    "DEQUANTIZE": _same(lambda b: b.count, lambda b: _F32 * b.count),
    "REQUANTIZE": _same(lambda b: b.count, lambda b: b.count),
    "L2_NORMALIZATION": _same(lambda b: _F32 * b.channels, lambda b: _F32 * b.channels),
    "SOFTMAX": _same(lambda b: _F32 * b.channels, lambda b: _F32 * b.channels),
    "LOGISTIC": _same(lambda b: _F32 * b.channels, lambda b: _F32 * b.channels),
    "FULLY_CONNECTED": _same(lambda b: _F32 * b.in_channels, lambda b: _F32 * b.out_channels),
    "TENSORFLOW_FLATTEN": _same(
        lambda b: _F32 * b.shape.width * b.shape.height * b.shape.channels,
        lambda b: _F32 * b.shape.width * b.shape.height * b.shape.channels,
    ),
    "QUANTIZED_TENSORFLOW_FLATTEN": _same(
        lambda b: b.shape.width * b.shape.height * b.shape.channels,
        lambda b: b.shape.width * b.shape.height * b.shape.channels,
    ),
    "RESIZE_NEAREST_NEIGHBOR": _resize(_F32),
    "QUANTIZED_RESIZE_NEAREST_NEIGHBOR": _resize(1),
    "CHANNELWISE_DEQUANTIZE": _same(
        lambda b: b.channels * b.channel_size, lambda b: _F32 * b.channels * b.channel_size
    ),
    "K210_ADD_PADDING": _add_padding,
    "K210_REMOVE_PADDING": _remove_padding,
    "K210_UPLOAD": _upload,
}


def layer_access(layer) -> Access | None:
    """The layer's accesses, or None for types whose body layout is unknown."""
    if layer.type.tail == "conv":
        return _conv(layer)
    if layer.type.tail == "concat":
        return _concat(layer.body, layer.inputs or [])
    fn = ACCESS.get(layer.type.name)
    return fn(layer.body) if fn else None


def input_access(km) -> Access:
    """Where kpu_run_kmodel puts the model input before the first layer runs (docs §4.3)."""
    first = km.layers[0] if km.layers else None
    if first is None:
        return Access()
    if first.type.name == "FULLY_CONNECTED":
        a = first.body.main_mem_in_address
        return Access(main_writes=[(a, a + _F32 * first.body.in_channels)])
    if first.type.tail == "conv":
        g = ConvGeometry.of(first.regs)
        if g.in_width % 64:
            lines = map_lines(g.in_width, g.in_height, g.in_channels)
        else:  # DMA of channel_switch_addr * 64 * IC bytes
            lines = first.regs.kernel_calc_type_cfg.channel_switch_addr * g.in_channels
        return Access(kpu_writes=[(g.src_line, g.src_line + lines)])
    return Access()


def lowest_kpu_line(km) -> int:
    """max_start_address as nncase defines it: the lowest KPU-RAM line any layer uses, 32768 if none."""
    lines = [KPU_RAM_LINES]
    for layer in km.layers:
        acc = layer_access(layer)
        if acc is not None:
            lines += [r[0] for r in acc.kpu_reads + acc.kpu_writes]
    return min(lines)
