"""Serialize a KModel to kmodel v3 bytes.

Two layouts:
- "source": a model read from disk is written back exactly where its parts were, over a copy of the
  original bytes, so an unmodified (or same-size-modified) file round-trips byte for byte, including
  nncase's missing final padding and any bytes between blocks.
- "recommended" (docs §1.5, §3.2, §7.2): header, outputs, layer headers, then bodies each padded to 8
  with the padding written; a K210_CONV body is its 24-byte struct, the registers at the next 8-aligned
  file offset, weights and batch-norm table at 128-aligned and the activation table at a 256-aligned
  offset. The conv body's *_offset fields are filled in here.
"auto" (default) uses "source" when the model still fits its source layout, else "recommended".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import EmcError
from .format import (
    ACT_TABLE_SIZE,
    HEADER_SIZE,
    LAYER_HEADER_SIZE,
    OUTPUT_SIZE,
    REGISTERS_SIZE,
    cs,
    pack,
)
from .layout import ConvGeometry

LAYOUTS = ("auto", "source", "recommended")
CONV_BODY_SIZE = len(cs.k210_conv_body)


@dataclass
class Encoded:
    """One layer turned into bytes: `content` = fixed struct + tail (conv: struct filled in later)."""

    content: bytes
    conv_blocks: tuple[bytes, bytes, bytes, bytes] | None = None  # regs, weights, bn, act


@dataclass
class Plan:
    """Where every layer goes: body offsets/sizes and, for convs, the four payload offsets."""

    body_start: int
    bodies: list[tuple[int, int]]
    conv_offsets: list[tuple[int, int, int, int] | None]
    total: int  # body_start + sum of body sizes
    file_size: int  # bytes written (a source layout keeps the source's length)


def align(value: int, to: int) -> int:
    return -(-value // to) * to


def to_bytes(km, layout: str = "auto") -> bytes:
    if layout not in LAYOUTS:
        raise EmcError(f"unknown kmodel layout {layout!r} (choose one of {', '.join(LAYOUTS)})")
    encoded = [encode_layer(km, i, layer) for i, layer in enumerate(km.layers)]
    if not km.layers:
        raise EmcError("a kmodel needs at least one layer")
    reason = None if layout == "recommended" else _source_mismatch(km, encoded)
    if layout != "recommended" and reason is None:
        return _write_source(km, encoded)
    if layout == "source":
        raise EmcError(f"cannot keep the source layout: {reason}")
    plan = plan_recommended(km, encoded)
    return bytes(_write(km, encoded, plan, bytearray(plan.total)))


def plan(km, layout: str = "auto") -> Plan:
    """The placement `to_bytes(km, layout)` uses (for verify/inspect of models not yet written)."""
    encoded = [encode_layer(km, i, layer) for i, layer in enumerate(km.layers)]
    if layout != "recommended" and _source_mismatch(km, encoded) is None:
        return _source_plan(km)
    return plan_recommended(km, encoded)


# ---- encoding one layer --------------------------------------------------------------------------------


def encode_layer(km, i: int, layer) -> Encoded:
    lt = layer.type
    where = f"layer {i} ({lt.name})"
    if lt.struct is None:
        if not isinstance(layer.body, (bytes, bytearray)):
            raise EmcError(f"{where}: body must be bytes (no known body struct for type {lt.code})")
        return Encoded(bytes(layer.body))
    if type(layer.body) is not lt.body_struct:
        raise EmcError(f"{where}: body is {type(layer.body).__name__}, expected cs.{lt.struct}")
    if lt.tail == "conv":
        return Encoded(b"", _conv_blocks(km, where, layer))
    content = pack(layer.body, f"{where}.body")
    b = layer.body
    if lt.tail == "fc":
        w = _float_array(layer.weights, (b.out_channels, b.in_channels), f"{where}: weights")
        bias = _float_array(layer.bias, (b.out_channels,), f"{where}: bias")
        content += w.astype("<f4").tobytes() + bias.astype("<f4").tobytes()
    elif lt.tail == "concat":
        inputs = layer.inputs or []
        if len(inputs) != b.input_count:
            raise EmcError(
                f"{where}: body.input_count = {b.input_count} but {len(inputs)} input ranges given"
            )
        content += b"".join(pack(r, f"{where}.inputs[{k}]") for k, r in enumerate(inputs))
    elif lt.tail == "channelwise":
        qp = _float_array(layer.quant_params, (b.channels, 2), f"{where}: quant_params")
        content += qp.astype("<f4").tobytes()
    return Encoded(content)


def _float_array(value, shape, where: str) -> np.ndarray:
    if value is None:
        raise EmcError(f"{where} missing (expected float32 array of shape {shape})")
    arr = np.asarray(value)
    if arr.shape != shape:
        raise EmcError(f"{where} has shape {arr.shape}, the body fields say {shape}")
    return arr


def _conv_blocks(km, where: str, layer) -> tuple[bytes, bytes, bytes, bytes]:
    if layer.regs is None or layer.bn is None or layer.act is None or layer.weights is None:
        raise EmcError(f"{where}: needs regs, weights, bn and act")
    regs = pack(layer.regs, f"{where}.regs")
    g = ConvGeometry.of(layer.regs)
    if g.kernel is None:
        raise EmcError(
            f"{where}: kernel_type {layer.regs.kernel_pool_type_cfg.kernel_type} "
            "(supported: 0 = 1x1, 1 = 3x3)"
        )
    w = np.asarray(layer.weights)
    want = km.weight_dtype
    if w.dtype.kind != "u" or w.dtype.itemsize != want.itemsize:
        mode = "8-bit (header flags bit 0 = 1)" if km.eight_bit else "16-bit (header flags bit 0 = 0)"
        raise EmcError(f"{where}: weights are {w.dtype}, the model is {mode} so they must be {want.name}")
    if w.size != g.weight_count:
        raise EmcError(
            f"{where}: {w.size} weights, the registers describe {g.weight_shape} = {g.weight_count}"
        )
    if len(layer.bn) != g.out_channels:
        raise EmcError(
            f"{where}: batch-norm table has {len(layer.bn)} entries, the layer has "
            f"{g.out_channels} output channels"
        )
    return (
        regs,
        w.astype(want).tobytes(),
        layer.bn.to_bytes(f"{where}.bn"),
        layer.act.to_bytes(f"{where}.act"),
    )


def _conv_body(layer, where: str, offsets) -> bytes:
    b = layer.body
    body = cs.k210_conv_body(
        flags=b.flags,
        main_mem_out_address=b.main_mem_out_address,
        layer_offset=offsets[0],
        weights_offset=offsets[1],
        bn_offset=offsets[2],
        act_offset=offsets[3],
    )
    return pack(body, f"{where}.body")


# ---- layouts --------------------------------------------------------------------------------------------


def _body_start(km) -> int:
    return HEADER_SIZE + OUTPUT_SIZE * len(km.outputs) + LAYER_HEADER_SIZE * len(km.layers)


def _source_mismatch(km, encoded) -> str | None:
    """None when every part still fits where it was read from, else the reason it does not."""
    src = km.source
    if src is None:
        return "the model was not read from a file"
    if _body_start(km) != src.body_start:
        return "the number of outputs or layers changed"
    pos = src.body_start
    for i, (layer, enc) in enumerate(zip(km.layers, encoded, strict=True)):
        p = layer.source
        if p is None or p.body_offset != pos:
            return f"layer {i} is new or moved"
        if enc.conv_blocks is None:
            if len(enc.content) != p.content_size:
                return f"layer {i} changed size"
        else:
            b = layer.body
            offsets = (b.layer_offset, b.weights_offset, b.bn_offset, b.act_offset)
            if offsets != p.conv_blocks or tuple(len(x) for x in enc.conv_blocks) != p.conv_sizes:
                return f"layer {i} changed its payload size or offsets"
        pos += p.body_size
    if pos != src.body_end:
        return "the layer bodies changed"
    return None


def _source_plan(km) -> Plan:
    bodies = [(layer.source.body_offset, layer.source.body_size) for layer in km.layers]
    convs = [layer.source.conv_blocks for layer in km.layers]
    return Plan(km.source.body_start, bodies, convs, km.source.body_end, len(km.source.data))


def _write_source(km, encoded) -> bytes:
    src = km.source
    buf = bytearray(src.data)
    if len(buf) < src.body_end:
        buf.extend(bytes(src.body_end - len(buf)))
    out = _write(km, encoded, _source_plan(km), buf)
    return bytes(out[: len(src.data)])


def plan_recommended(km, encoded) -> Plan:
    pos = _body_start(km)
    bodies, convs = [], []
    for enc in encoded:
        start = pos
        if enc.conv_blocks is None:
            end = align(start + len(enc.content), 8)
            convs.append(None)
        else:
            regs = align(start + CONV_BODY_SIZE, 8)
            weights = align(regs + REGISTERS_SIZE, 128)
            bn = align(weights + len(enc.conv_blocks[1]), 128)
            act = align(bn + len(enc.conv_blocks[2]), 256)
            end = align(act + ACT_TABLE_SIZE, 8)
            convs.append((regs, weights, bn, act))
        bodies.append((start, end - start))
        pos = end
    if pos >= 1 << 32:
        raise EmcError(f"the kmodel would be {pos} bytes; kmodel v3 offsets are 32-bit")
    return Plan(_body_start(km), bodies, convs, pos, pos)


def _write(km, encoded, plan: Plan, buf: bytearray) -> bytearray:
    header = cs.kmodel_header(
        version=km.version,
        flags=km.flags,
        arch=km.arch,
        layers_length=len(km.layers),
        max_start_address=km.max_start_address,
        main_mem_usage=km.main_mem_usage,
        output_count=len(km.outputs),
    )
    pos = _put(buf, 0, pack(header, "header"))
    for k, out in enumerate(km.outputs):
        if isinstance(out, tuple):
            out = cs.output_entry(address=out[0], size=out[1])
        pos = _put(buf, pos, pack(out, f"outputs[{k}]"))
    for layer, (_, size) in zip(km.layers, plan.bodies, strict=True):
        pos = _put(buf, pos, pack(cs.layer_header(type=layer.type.code, body_size=size), "layer header"))
    for i, (layer, enc, (start, _), offsets) in enumerate(
        zip(km.layers, encoded, plan.bodies, plan.conv_offsets, strict=True)
    ):
        if enc.conv_blocks is None:
            _put(buf, start, enc.content)
        else:
            _put(buf, start, _conv_body(layer, f"layer {i} ({layer.type.name})", offsets))
            for off, block in zip(offsets, enc.conv_blocks, strict=True):
                _put(buf, off, block)
    return buf


def _put(buf: bytearray, offset: int, data: bytes) -> int:
    buf[offset : offset + len(data)] = data
    return offset + len(data)
