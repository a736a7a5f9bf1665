"""Constructors for building a kmodel v3 layer by layer (what the K210 lowering uses).

`layer(kind, **fields)` builds any layer from its body fields, as named in format.CDEF; the counts that
follow from the data (FC in/out channels, CONCAT input_count, CHANNELWISE_DEQUANTIZE channels) are
filled in from the arrays. `conv_registers(...)` derives every shape- and layout-dependent register field
of a K210_CONV from its shapes (docs §3.4, §3.7, §3.8), `k210_conv(...)` wraps registers and payload
into a layer, and `assemble(...)` assembles the model. Values are range-checked when written; a bad one
raises EmcError naming the field.
"""

from __future__ import annotations

import numpy as np

from ..errors import EmcError
from .format import cs, layer_type, new
from .layout import POOL_TYPES, pooled_size, row_layout
from .model import Activation, BatchNorm, KModel, Layer

# nncase's per-load weight budget (docs §3.7): 30 KiB of 8-bit or 60 KiB of 16-bit weights.
DEFAULT_LOAD_BYTES = {8: 30 * 1024, 16: 60 * 1024}
MAX_LOADS = 64
MAX_PARA_SIZE = (1 << 17) - 1


def output(address: int, size: int):
    """One output-table entry: `size` bytes at `address` of the main buffer."""
    return cs.output_entry(address=address, size=size)


def _record(struct_type, value, where: str):
    if isinstance(value, struct_type):
        return value
    if isinstance(value, dict):
        return struct_type(**value)
    names = [f.name for f in struct_type.__fields__]
    try:
        values = list(value)
    except TypeError:
        raise EmcError(f"{where} must be a {struct_type.__name__} ({', '.join(names)})") from None
    if len(values) != len(names):
        raise EmcError(f"{where} needs {len(names)} values ({', '.join(names)}), got {len(values)}")
    return struct_type(**dict(zip(names, values, strict=True)))


def layer(kind, *, weights=None, bias=None, inputs=None, quant_params=None, **fields) -> Layer:
    """Any layer type with a known body, e.g. layer("QUANTIZE", main_mem_in_address=0,
    mem_out_address=64, count=16, quant_param=(scale, bias)). `flags` defaults to 0."""
    lt = layer_type(kind)
    if lt.struct is None:
        raise EmcError(f"layer type {lt.name} has no known body layout; build Layer({lt.name}, body=bytes)")
    if lt.tail == "conv":
        raise EmcError("build K210_CONV layers with builder.k210_conv()")
    st = lt.body_struct
    if lt.tail == "fc":
        weights = np.asarray(weights, dtype=np.float32)
        if weights.ndim != 2:
            raise EmcError(f"{lt.name}: weights must be 2-D (out_channels, in_channels), got {weights.shape}")
        fields.setdefault("out_channels", weights.shape[0])
        fields.setdefault("in_channels", weights.shape[1])
        fields.setdefault("act", 0)
        bias = np.zeros(weights.shape[0], np.float32) if bias is None else np.asarray(bias, np.float32)
    elif lt.tail == "concat":
        inputs = [_record(cs.memory_range, r, f"{lt.name} input {k}") for k, r in enumerate(inputs or [])]
        fields.setdefault("input_count", len(inputs))
    elif lt.tail == "channelwise":
        quant_params = np.asarray(quant_params, dtype=np.float32).reshape(-1, 2)
        fields.setdefault("channels", quant_params.shape[0])
    fields.setdefault("flags", 0)
    names = [f.name for f in st.__fields__]
    unknown = sorted(set(fields) - set(names))
    missing = [n for n in names if n not in fields]
    if unknown or missing:
        raise EmcError(
            f"{lt.name}: "
            + "; ".join(
                ([f"unknown field(s) {', '.join(unknown)}"] if unknown else [])
                + ([f"missing field(s) {', '.join(missing)}"] if missing else [])
            )
            + f" (fields: {', '.join(names)})"
        )
    values = {}
    for f in st.__fields__:
        v = fields[f.name]
        if hasattr(f.type, "__fields__"):
            v = _record(f.type, v, f"{lt.name}.{f.name}")
        elif getattr(f.type, "num_entries", None) is not None:
            v = [int(x) for x in np.asarray(v).reshape(-1)]
        values[f.name] = v
    return Layer(
        lt,
        st(**values),
        weights=weights if lt.tail == "fc" else None,
        bias=bias if lt.tail == "fc" else None,
        inputs=inputs,
        quant_params=quant_params,
    )


def fully_connected(
    main_mem_in_address: int, main_mem_out_address: int, weights, bias=None, act: int = 0, flags: int = 0
) -> Layer:
    """Float FC: weights (out, in), act 0 linear / 1 relu / 2 relu6."""
    return layer(
        "FULLY_CONNECTED",
        main_mem_in_address=main_mem_in_address,
        main_mem_out_address=main_mem_out_address,
        weights=weights,
        bias=bias,
        act=act,
        flags=flags,
    )


def concat(main_mem_out_address: int, inputs, quantized: bool = False, flags: int = 0) -> Layer:
    """Byte-copy each (start, size) range in order to main_mem_out_address."""
    return layer(
        "QUANTIZED_CONCAT" if quantized else "CONCAT",
        main_mem_out_address=main_mem_out_address,
        inputs=inputs,
        flags=flags,
    )


def channelwise_dequantize(
    main_mem_in_address: int, main_mem_out_address: int, channel_size: int, quant_params, flags: int = 0
) -> Layer:
    """uint8 -> float32 with one (scale, bias) pair per channel of channel_size elements."""
    return layer(
        "CHANNELWISE_DEQUANTIZE",
        main_mem_in_address=main_mem_in_address,
        main_mem_out_address=main_mem_out_address,
        channel_size=channel_size,
        quant_params=quant_params,
        flags=flags,
    )


def batch_norm(norm_mul, norm_add, norm_shift) -> BatchNorm:
    return BatchNorm(norm_mul, norm_add, norm_shift)


def activation(x_start, y_mul, shift_number, bias) -> Activation:
    """16 segments; x_start[0] should be -2**35 so that every value finds a segment."""
    return Activation(x_start, y_mul, shift_number, bias)


def k210_conv(
    regs, weights, bn: BatchNorm, act: Activation, main_mem_out_address: int | None = None
) -> Layer:
    """A K210_CONV layer; with main_mem_out_address the output is also DMA'd to the main buffer
    (flags bit 0). The payload offsets are filled in by the writer."""
    flags = 0 if main_mem_out_address is None else 1
    body = cs.k210_conv_body(
        flags=flags,
        main_mem_out_address=main_mem_out_address or 0,
        layer_offset=0,
        weights_offset=0,
        bn_offset=0,
        act_offset=0,
    )
    return Layer(layer_type("K210_CONV"), body, weights=np.asarray(weights), regs=regs, bn=bn, act=act)


def conv_registers(
    *,
    in_shape,
    out_channels: int,
    kernel: int,
    src_line: int,
    dst_line: int,
    pool_type: int = 0,
    depthwise: bool = False,
    pad_value: int = 0,
    weight_bits: int = 8,
    load_bytes: int | None = None,
    oc_per_load: int | None = None,
    arg_x: int = 0,
    shr_x: int = 0,
    arg_w: int = 0,
    shr_w: int = 0,
    arg_add: int = 0,
):
    """The 12 register words of a K210_CONV from its shapes, per the recipe of docs §3.4.

    in_shape is (channels, height, width); the output size follows from the pool type. Weights are
    split into loads as nncase does (docs §3.7): whole output kernels per load, at most `load_bytes`
    (default 30 KiB for 8-bit, 60 KiB for 16-bit weights); a depthwise layer uses one load.
    `oc_per_load` overrides the split (e.g. to reproduce Maix-EMC's 72 KiB rule).
    The three runtime-patched addresses, int_en and send_data_out are 0 (the SDK sets them)."""
    ic, h, w = (int(v) for v in in_shape)
    oc = int(out_channels)
    if kernel not in (1, 3):
        raise EmcError(f"K210_CONV kernel {kernel}x{kernel}: the KPU supports 1x1 and 3x3")
    if pool_type not in POOL_TYPES:
        raise EmcError(f"K210_CONV pool_type {pool_type}: supported {sorted(POOL_TYPES)}")
    if weight_bits not in DEFAULT_LOAD_BYTES:
        raise EmcError(f"K210_CONV weight_bits {weight_bits}: the KPU supports 8 and 16")
    if depthwise and ic != oc:
        raise EmcError(f"depthwise K210_CONV needs as many output as input channels ({oc} != {ic})")
    oh, ow = pooled_size(h, w, pool_type)
    if min(ic, oc, h, w, oh, ow) < 1:
        raise EmcError(f"K210_CONV shapes {in_shape} -> {oc} channels, pool {pool_type}: empty map")
    wbytes = weight_bits // 8
    per_kernel = kernel * kernel * (1 if depthwise else ic) * wbytes
    if oc_per_load is not None:
        per_load = int(oc_per_load)
        if not 1 <= per_load <= oc:
            raise EmcError(f"K210_CONV oc_per_load {per_load}: must be 1..{oc}")
    elif depthwise:
        per_load = oc
    else:
        budget = DEFAULT_LOAD_BYTES[weight_bits] if load_bytes is None else int(load_bytes)
        per_load = min(oc, budget // per_kernel)
        if per_load < 1:
            raise EmcError(
                f"K210_CONV: one output kernel ({per_kernel} bytes) exceeds the {budget}-byte load"
            )
    loads, para_size = -(-oc // per_load), per_kernel * per_load
    if loads > MAX_LOADS or para_size > MAX_PARA_SIZE:
        raise EmcError(
            f"K210_CONV: {loads} weight loads of {para_size} bytes; the KPU allows at most "
            f"{MAX_LOADS} loads of < 128 KiB"
        )
    g_in, row_in, _ = row_layout(w)
    g_out, row_out, _ = row_layout(ow)
    r = new(cs.kpu_layer_argument)
    r.interrupt_enabe.depth_wise_layer = int(depthwise)
    r.image_addr.image_src_addr, r.image_addr.image_dst_addr = src_line, dst_line
    ch = r.image_channel_num
    ch.i_ch_num, ch.o_ch_num, ch.o_ch_num_coef = ic - 1, oc - 1, per_load - 1
    sz = r.image_size
    sz.i_row_wid, sz.i_col_high, sz.o_row_wid, sz.o_col_high = w - 1, h - 1, ow - 1, oh - 1
    kp = r.kernel_pool_type_cfg
    kp.kernel_type, kp.pool_type, kp.load_para, kp.dma_burst_size = int(kernel == 3), pool_type, 1, 15
    kp.pad_value = pad_value
    kl = r.kernel_load_cfg
    kl.load_coor, kl.load_time, kl.para_size = 1, loads - 1, para_size
    ct = r.kernel_calc_type_cfg
    ct.channel_switch_addr, ct.row_switch_addr, ct.coef_group, ct.load_act = row_in * h, row_in, g_in, 1
    wb = r.write_back_cfg
    wb.wb_channel_switch_addr, wb.wb_row_switch_addr, wb.wb_group = row_out * oh, row_out, g_out
    cv = r.conv_value
    cv.shr_w, cv.shr_x, cv.arg_w, cv.arg_x = shr_w, shr_x, arg_w, arg_x
    r.conv_value2.arg_add = arg_add
    r.dma_parameter.channel_byte_num = ow * oh - 1
    r.dma_parameter.dma_total_byte = ow * oh * oc - 1
    return r


def assemble(
    layers, outputs, main_mem_usage: int, eight_bit: bool = True, max_start_address: int | None = None
) -> KModel:
    """Assemble a model; max_start_address defaults to the lowest KPU-RAM line the model uses
    (32768 when it uses none), as nncase writes it (docs §1.9)."""
    from .access import lowest_kpu_line

    outputs = [o if isinstance(o, cs.output_entry) else output(*o) for o in outputs]
    km = KModel(layers=list(layers), outputs=outputs, main_mem_usage=main_mem_usage, flags=int(eight_bit))
    km.max_start_address = lowest_kpu_line(km) if max_start_address is None else max_start_address
    return km
