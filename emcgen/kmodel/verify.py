"""Check the parts of a kmodel v3 that the arithmetic ignores but the K210 runtime and KPU need.

    problems = check(km)                     # [] when the model is fine for the official SDK
    check(km, runtime="maix-emc")            # ... for Maix-EMC's patched kpu.c (types 6, 21 allowed)
    check(km, runtime=None)                  # structural checks only, no runtime-support check
    verify(km)                               # FormatError with the first problem

Covered (docs/kmodel_v3.md §7.2 and the sections named in each message): header values, first/last
layer rules, which layer types the chosen runtime executes, body and payload alignment, every
K210_CONV register that must agree with the shapes (layout of input and output in KPU RAM, DMA byte
counts, weight loads, fixed option bits, size limits), KPU-RAM bounds and input/output overlap,
main-buffer bounds including the runtime's rounding, max_start_address, and read-before-write of every
main-buffer and KPU-RAM range (a wrong address usually shows up there).
"""

from __future__ import annotations

import numpy as np

from ..errors import EmcError, FormatError
from .access import input_access, layer_access, lowest_kpu_line
from .format import (
    ACT_TABLE_SIZE,
    BY_CODE,
    K210_SRAM_BYTES,
    KMODEL_VERSION,
    KPU_RAM_LINES,
    REGISTERS_SIZE,
    RUNTIME_NAMES,
    RUNTIMES,
)
from .layout import POOL_TYPES, ConvGeometry, pooled_size, row_layout
from .writer import CONV_BODY_SIZE, plan

MIN_X_START = -(1 << 35)


def verify(km, runtime: str | None = "sdk") -> None:
    """Raise FormatError naming the first problem check() finds."""
    problems = check(km, runtime)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise FormatError(problems[0] + more)


def check(km, runtime: str | None = "sdk") -> list[str]:
    """Every problem found, one line each; empty when the model is fine."""
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r} (choose {', '.join(RUNTIMES)} or None)")
    problems: list[str] = []
    _header(km, problems)
    if not km.layers:
        return problems
    _runtime(km, runtime, problems)
    _placement(km, problems)
    for i, layer in enumerate(km.layers):
        where = f"layer {i} ({layer.name})"
        if layer.type.tail == "conv":
            _conv(km, layer, where, problems)
        else:
            _cpu(layer, where, problems)
    _memory(km, problems)
    return problems


# ---- header, runtime, placement ------------------------------------------------------------------------


def _header(km, p: list[str]) -> None:
    if km.version != KMODEL_VERSION:
        p.append(f"header: version {km.version}; the SDK loads only version 3 (§1.7)")
    if km.arch != 0:
        p.append(f"header: arch {km.arch}; the SDK requires 0 (§1.7)")
    if km.flags & ~1:
        p.append(
            f"header: flags 0x{km.flags:x} sets undefined bits (only bit 0, eight_bit_mode, exists; §1.2)"
        )
    if km.main_mem_usage > K210_SRAM_BYTES:
        p.append(f"header: main_mem_usage {km.main_mem_usage} bytes exceeds the K210's 6 MiB of SRAM (§4.1)")
    if not km.layers:
        p.append("header: no layers")
    if not km.outputs:
        p.append("header: no outputs (kpu_get_output would have nothing to return)")
    for k, o in enumerate(km.outputs):
        if o.size == 0 or o.address + o.size > km.main_mem_usage:
            p.append(
                f"output {k}: bytes [{o.address}, {o.address + o.size}) are not inside the main buffer "
                f"of main_mem_usage {km.main_mem_usage} bytes"
            )
    if km.layers:
        lowest = lowest_kpu_line(km)
        if km.max_start_address not in (lowest, 0):
            p.append(
                f"header: max_start_address {km.max_start_address}, but the lowest KPU-RAM line used is "
                f"{lowest} (nncase writes that; Maix-EMC writes 0; §1.9)"
            )


def _runtime(km, runtime: str | None, p: list[str]) -> None:
    first, last = km.layers[0], km.layers[-1]
    if first.type.tail != "conv" and first.type.name != "FULLY_CONNECTED":
        p.append(f"layer 0 ({first.name}): the runtime starts only with K210_CONV or FULLY_CONNECTED (§4.3)")
    if last.type.tail == "conv" and not last.body.flags & 1:
        p.append(
            f"layer {len(km.layers) - 1} (K210_CONV): the last layer must be a CPU layer or a conv with "
            "flags bit 0 (main-memory output), else the runtime walks past the layer table (§4.4)"
        )
    if runtime is None:
        return
    if runtime == "maix-emc" and first.type.tail != "conv":
        p.append(f"layer 0 ({first.name}): {RUNTIME_NAMES[runtime]} only starts with K210_CONV (§4.4)")
    for i, layer in enumerate(km.layers):
        if layer.type.code not in RUNTIMES[runtime]:
            others = [RUNTIME_NAMES[n] for n in RUNTIMES if layer.type.code in RUNTIMES[n]]
            need = f"; needs {others[0]}" if others else "; no known runtime executes it"
            p.append(f"layer {i} ({layer.name}): not executed by {RUNTIME_NAMES[runtime]}{need} (§2.1)")


def _placement(km, p: list[str]) -> None:
    """Body alignment, and each conv payload block aligned, inside its own body, not overlapping."""
    try:
        placed = plan(km)
    except EmcError as exc:  # an unserializable model: report why instead of checking placement
        p.append(f"model cannot be serialized: {exc}")
        return
    names = ("registers", "weights", "batch-norm table", "activation table")
    for i, ((start, size), conv) in enumerate(zip(placed.bodies, placed.conv_offsets, strict=True)):
        layer = km.layers[i]
        where = f"layer {i} ({layer.name})"
        if start % 4:
            p.append(
                f"{where}: body at file offset {start} is not 4-byte aligned (fields are read as u32; §1.5)"
            )
        if not conv:
            continue
        g = layer.geometry
        sizes = (
            REGISTERS_SIZE,
            g.weight_count * km.weight_dtype.itemsize,
            8 * g.out_channels,
            ACT_TABLE_SIZE,
        )
        blocks = sorted(zip(conv, sizes, names, strict=True))
        for name, off, need in zip(names, conv, (8, 128, 128, 128), strict=True):
            if off % need:
                p.append(f"{where}: {name} at file offset {off} is not {need}-byte aligned (§3.2)")
        for k, (off, n, name) in enumerate(blocks):
            if off < start + CONV_BODY_SIZE or off + n > start + size:
                p.append(
                    f"{where}: {name} [{off}, {off + n}) lies outside the layer's body "
                    f"[{start + CONV_BODY_SIZE}, {start + size}) (§3.2)"
                )
            if k and blocks[k - 1][0] + blocks[k - 1][1] > off:
                p.append(f"{where}: {blocks[k - 1][2]} and {name} overlap in the file (§3.2)")


# ---- K210_CONV --------------------------------------------------------------------------------------------


def _conv(km, layer, where: str, p: list[str]) -> None:
    r = layer.regs
    g = ConvGeometry.of(r)
    kp, kl, ct, wb, dma = (
        r.kernel_pool_type_cfg,
        r.kernel_load_cfg,
        r.kernel_calc_type_cfg,
        r.write_back_cfg,
        r.dma_parameter,
    )
    fixed = [
        ("kernel_pool_type_cfg.pad_type", kp.pad_type, 0),
        ("kernel_pool_type_cfg.first_stride", kp.first_stride, 0),
        ("kernel_pool_type_cfg.bypass_conv", kp.bypass_conv, 0),
        ("kernel_pool_type_cfg.load_para", kp.load_para, 1),
        ("kernel_load_cfg.load_coor", kl.load_coor, 1),
        ("kernel_calc_type_cfg.load_act", ct.load_act, 1),
        ("interrupt_enabe.full_add", r.interrupt_enabe.full_add, 0),
    ]
    for name, value, want in fixed:
        if value != want:
            p.append(f"{where}: {name} = {value}, every producer writes {want} (§3.3)")
    if g.kernel is None:
        p.append(f"{where}: kernel_type {kp.kernel_type}; the KPU does 0 = 1x1 and 1 = 3x3 (§3.3)")
        return
    if g.pool_type not in POOL_TYPES:
        p.append(f"{where}: pool_type {g.pool_type} is not one of {sorted(POOL_TYPES)} (§3.10)")
        return
    if g.depthwise and g.in_channels != g.out_channels:
        p.append(f"{where}: depthwise with {g.in_channels} input but {g.out_channels} output channels (§3.3)")
    if g.depthwise and g.pool_type:
        p.append(
            f"{where}: depthwise with pool_type {g.pool_type}; no converter combines them, treat as "
            "unsupported (§3.11)"
        )
    ph, pw = pooled_size(g.in_height, g.in_width, g.pool_type)
    if (ph, pw) != (g.out_height, g.out_width):
        p.append(
            f"{where}: output {g.out_width}x{g.out_height} (o_row_wid/o_col_high) but pool type "
            f"{g.pool_type} on {g.in_width}x{g.in_height} gives {pw}x{ph} (§3.4)"
        )
    if min(g.in_height, g.in_width, g.out_height, g.out_width) < 4:
        p.append(
            f"{where}: maps smaller than 4x4 ({g.in_width}x{g.in_height} -> {g.out_width}x{g.out_height}) "
            "are not supported by the KPU; pad them with K210_ADD_PADDING (§3.11)"
        )
    if g.in_height > 256:
        p.append(
            f"{where}: input height {g.in_height} > 256, which the KPU cannot do without first_stride (§3.11)"
        )
    _layout(
        where,
        "input",
        (g.in_width, g.in_height),
        (ct.channel_switch_addr, ct.row_switch_addr, ct.coef_group),
        ("channel_switch_addr", "row_switch_addr", "coef_group"),
        p,
    )
    _layout(
        where,
        "output",
        (g.out_width, g.out_height),
        (wb.wb_channel_switch_addr, wb.wb_row_switch_addr, wb.wb_group),
        ("wb_channel_switch_addr", "wb_row_switch_addr", "wb_group"),
        p,
    )
    if dma.channel_byte_num != g.out_width * g.out_height - 1:
        p.append(
            f"{where}: channel_byte_num {dma.channel_byte_num}, expected W_out*H_out-1 = "
            f"{g.out_width * g.out_height - 1} (§3.3)"
        )
    if dma.dma_total_byte != g.out_bytes - 1:
        p.append(
            f"{where}: dma_total_byte {dma.dma_total_byte}, expected W_out*H_out*C_out-1 = "
            f"{g.out_bytes - 1} (§3.12)"
        )
    _loads(km, g, r, where, p)
    _kpu_regions(layer, g, where, p)
    _activation(layer.act, where, p)


def _layout(where, what, wh, values, names, p) -> None:
    w, h = wh
    groups, row_len, _ = row_layout(w)
    expected = (row_len * h, row_len, groups)
    for name, got, want in zip(names, values, expected, strict=True):
        if got != want:
            p.append(f"{where}: {name} = {got}, but a {what} map {w} wide and {h} high needs {want} (§3.8)")


def _loads(km, g, r, where, p) -> None:
    per_load = r.image_channel_num.o_ch_num_coef + 1
    loads = r.kernel_load_cfg.load_time + 1
    per_kernel = g.kernel * g.kernel * (1 if g.depthwise else g.in_channels) * km.weight_dtype.itemsize
    if per_load > g.out_channels:
        p.append(
            f"{where}: o_ch_num_coef+1 = {per_load} output channels per load, more than the "
            f"{g.out_channels} the layer has (§3.7)"
        )
    elif loads != -(-g.out_channels // per_load):
        p.append(
            f"{where}: load_time+1 = {loads} weight loads, but {g.out_channels} channels at {per_load} "
            f"per load need {-(-g.out_channels // per_load)} (§3.7)"
        )
    if r.kernel_load_cfg.para_size != per_kernel * per_load:
        p.append(
            f"{where}: para_size {r.kernel_load_cfg.para_size}, but {per_load} kernels of {per_kernel} "
            f"bytes per load are {per_kernel * per_load} (§3.7)"
        )


def _kpu_regions(layer, g, where, p) -> None:
    acc = layer_access(layer)
    (r0, r1), (w0, w1) = acc.kpu_reads[0], acc.kpu_writes[0]
    for what, (a, b) in (("input", (r0, r1)), ("output", (w0, w1))):
        if b > KPU_RAM_LINES:
            p.append(
                f"{where}: {what} map occupies KPU-RAM lines [{a}, {b}), past line {KPU_RAM_LINES} (§3.8)"
            )
    if r0 < w1 and w0 < r1:
        p.append(f"{where}: input lines [{r0}, {r1}) and output lines [{w0}, {w1}) overlap in KPU RAM (§3.8)")


def _activation(act, where, p) -> None:
    if act.x_start[0] != MIN_X_START:
        p.append(
            f"{where}: activation segment 0 starts at {act.x_start[0]}, not -2^35, so small values "
            "find no segment (§3.6)"
        )
    if np.any(np.diff(act.x_start) < 0):
        p.append(f"{where}: activation segments are not in ascending x_start order (§3.6)")


# ---- CPU layers and memory ------------------------------------------------------------------------------


def _cpu(layer, where: str, p: list[str]) -> None:
    b, name = layer.body, layer.name
    if layer.type.struct is None:
        p.append(f"{where}: no runtime defines a body for type {layer.type.code} (§2.1)")
        return
    if name == "QUANTIZED_ADD":
        for f in ("in_a_shift", "in_b_shift", "out_shift"):
            if not 0 <= getattr(b, f) <= 63:
                p.append(f"{where}: {f} = {getattr(b, f)}; a 64-bit shift must be 0..63 (§2.3)")
    if name in ("FULLY_CONNECTED", "AVERAGE_POOL2D") and b.act > 2:
        p.append(f"{where}: act {b.act}; 0 linear, 1 relu, 2 relu6 are defined (§2.3)")
    if name in ("QUANTIZED_MAX_POOL2D", "AVERAGE_POOL2D"):
        if min(b.kernel_width, b.kernel_height, b.stride_width, b.stride_height) < 1:
            p.append(f"{where}: kernel and stride must be at least 1")
        if b.in_shape.channels != b.out_shape.channels:
            p.append(
                f"{where}: in_shape has {b.in_shape.channels} channels, out_shape {b.out_shape.channels}"
            )
    if name in ("K210_UPLOAD", "K210_ADD_PADDING"):
        acc = layer_access(layer)
        for a, e in acc.kpu_writes:
            if e > KPU_RAM_LINES:
                p.append(f"{where}: writes KPU-RAM lines [{a}, {e}), past line {KPU_RAM_LINES} (§3.8)")


def _memory(km, p: list[str]) -> None:
    """Bounds of every main-buffer access and read-before-write of main buffer and KPU RAM."""
    size = km.main_mem_usage
    main = np.zeros(min(size, K210_SRAM_BYTES), dtype=bool)  # a larger buffer is reported by _header
    lines = np.zeros(KPU_RAM_LINES, dtype=bool)

    def mark(acc):
        for a, e in acc.main_writes:
            main[a:e] = True
        for a, e in acc.kpu_writes:
            lines[min(a, KPU_RAM_LINES) : min(e, KPU_RAM_LINES)] = True

    mark(input_access(km))
    for i, layer in enumerate(km.layers):
        acc = layer_access(layer)
        if acc is None:
            continue
        where = f"layer {i} ({BY_CODE[layer.type.code].name})"
        for kind, ranges in (("reads", acc.main_reads), ("writes", acc.main_writes)):
            for a, e in ranges:
                if e > size:
                    p.append(
                        f"{where}: {kind} main-buffer bytes [{a}, {e}), past main_mem_usage {size} "
                        "(sizes include the runtime's 8-byte rounding; §1.8)"
                    )
        for a, e in acc.needs:
            seen = main[a:e]  # slices clip at the buffer's end; bytes past it are reported above
            if seen.size and not seen.all():
                first = a + int(np.argmin(seen))
                p.append(
                    f"{where}: reads main-buffer byte {first} (of [{a}, {e})) before any layer writes it"
                )
        for a, e in acc.kpu_reads:
            if a < KPU_RAM_LINES and not lines[a : min(e, KPU_RAM_LINES)].all():
                first = a + int(np.argmin(lines[a : min(e, KPU_RAM_LINES)]))
                p.append(f"{where}: reads KPU-RAM line {first} (of [{a}, {e})) before anything writes it")
        mark(acc)
    for k, o in enumerate(km.outputs):
        seen = main[o.address : o.address + o.size]
        if seen.size and not seen.all():
            p.append(
                f"output {k}: main-buffer bytes [{o.address}, {o.address + o.size}) are not all written "
                "by any layer"
            )
