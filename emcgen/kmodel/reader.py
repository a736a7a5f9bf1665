"""Read kmodel v3 bytes into a KModel, rejecting anything malformed with a one-line FormatError.

Every count and offset is checked against the bytes actually present before anything is allocated, so
a corrupt or hostile file costs at most its own size and never raises IndexError/struct.error or hangs.
Tolerated on purpose: nncase v0.1 pads each body to 8 bytes by seeking, so the last body's padding is
missing from its files (docs §1.5); up to 7 missing bytes after the last body's content are accepted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..errors import FormatError
from .format import (
    ACT_TABLE_SIZE,
    BN_ENTRY_SIZE,
    BY_CODE,
    HEADER_SIZE,
    KMODEL_VERSION,
    LAYER_HEADER_SIZE,
    OUTPUT_SIZE,
    REGISTERS_SIZE,
    cs,
    sign_fix,
)
from .layout import ConvGeometry
from .model import Activation, BatchNorm, KModel, Layer, Placement


@dataclass
class Source:
    """The bytes a model was read from, kept so the writer can reproduce them exactly."""

    data: bytes
    name: str
    body_start: int
    body_end: int  # body_start + sum(body_size); may exceed len(data) by the missing padding


def load(source) -> KModel:
    """Read a kmodel v3 from a path or from bytes; FormatError (one line) when it is not a valid one."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, name = bytes(source), "kmodel bytes"
    else:
        name = os.fspath(source)
        try:
            with open(name, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise FormatError(f"cannot read {name}: {exc.strerror or exc}") from None
    return _Reader(data, name).read()


class _Reader:
    def __init__(self, data: bytes, name: str):
        self.data, self.name = data, name

    def fail(self, msg: str):
        raise FormatError(f"{self.name}: {msg}")

    def read(self) -> KModel:
        data = self.data
        if len(data) < HEADER_SIZE:
            self.fail(f"{len(data)} bytes, too short for the {HEADER_SIZE}-byte kmodel v3 header")
        hdr = cs.kmodel_header(data[:HEADER_SIZE])
        if hdr.version != KMODEL_VERSION:
            hint = " ('KMDL' = kmodel v4 or later, written by nncase >= 0.2)" if data[:4] == b"KMDL" else ""
            self.fail(f"version {hdr.version}{hint}; only kmodel version 3 is supported")
        if hdr.arch != 0:
            self.fail(f"arch {hdr.arch}; kmodel v3 requires arch 0 (the SDK rejects other values)")
        n_out, n_layers = hdr.output_count, hdr.layers_length
        if n_layers == 0:
            self.fail("layers_length is 0; a kmodel needs at least one layer")
        body_start = HEADER_SIZE + OUTPUT_SIZE * n_out + LAYER_HEADER_SIZE * n_layers
        if body_start > len(data):
            self.fail(
                f"header declares {n_out} outputs and {n_layers} layers, whose tables end at offset "
                f"{body_start}, past the end of the file ({len(data)} bytes)"
            )
        outputs = [
            cs.output_entry(data[HEADER_SIZE + OUTPUT_SIZE * i : HEADER_SIZE + OUTPUT_SIZE * (i + 1)])
            for i in range(n_out)
        ]
        table = np.frombuffer(data, dtype="<u4", count=2 * n_layers, offset=HEADER_SIZE + OUTPUT_SIZE * n_out)
        types, sizes = table[0::2].tolist(), table[1::2].tolist()
        offsets, pos = [], body_start
        for i, (code, size) in enumerate(zip(types, sizes, strict=True)):
            if code not in BY_CODE:
                self.fail(f"layer {i} has unknown type {code} (kmodel v3 types: 0-25 and 10240-10243)")
            if code == 0:
                self.fail(f"layer {i} has type 0 (INVALID)")
            offsets.append(pos)
            pos += size
        body_end = pos
        if body_end > len(data) + 7:
            self.fail(
                f"truncated: the layer bodies end at offset {body_end} but the file has {len(data)} bytes"
            )
        layers = [
            self.layer(i, BY_CODE[code], offsets[i], sizes[i], last=(i == n_layers - 1))
            for i, code in enumerate(types)
        ]
        model = KModel(
            layers=layers,
            outputs=outputs,
            main_mem_usage=hdr.main_mem_usage,
            flags=hdr.flags,
            max_start_address=hdr.max_start_address,
            version=hdr.version,
            arch=hdr.arch,
        )
        model.source = Source(data, self.name, body_start, body_end)
        return model

    # ---- one body ------------------------------------------------------------------------------------
    def layer(self, i: int, lt, off: int, size: int, last: bool) -> Layer:
        avail = min(size, len(self.data) - off)
        where = f"layer {i} ({lt.name}) at offset {off}"
        if not last and avail < size:
            self.fail(f"{where}: body of {size} bytes runs past the end of the file")
        if lt.struct is None:
            body = self.data[off : off + avail]
            return Layer(lt, body, source=Placement(off, size, len(body)))
        fixed = lt.fixed_size
        if avail < fixed:
            self.fail(f"{where}: body has {max(avail, 0)} bytes, its {lt.struct} struct needs {fixed}")
        body = sign_fix(lt.body_struct(self.data[off : off + fixed]))
        layer = Layer(lt, body)
        content = fixed
        if lt.tail == "fc":
            n_w, n_b = body.in_channels * body.out_channels, body.out_channels
            content = self.need(
                where,
                fixed + 4 * (n_w + n_b),
                avail,
                f"{body.in_channels}x{body.out_channels} float weights and bias",
            )
            w = np.frombuffer(self.data, "<f4", n_w + n_b, off + fixed).astype(np.float32)
            layer.weights = w[:n_w].reshape(body.out_channels, body.in_channels)
            layer.bias = w[n_w:]
        elif lt.tail == "concat":
            n = body.input_count
            content = self.need(where, fixed + 8 * n, avail, f"{n} input ranges")
            layer.inputs = [
                cs.memory_range(self.data[off + fixed + 8 * k : off + fixed + 8 * k + 8]) for k in range(n)
            ]
        elif lt.tail == "channelwise":
            n = body.channels
            content = self.need(where, fixed + 8 * n, avail, f"{n} (scale, bias) pairs")
            layer.quant_params = np.frombuffer(self.data, "<f4", 2 * n, off + fixed).astype(np.float32)
            layer.quant_params = layer.quant_params.reshape(n, 2)
        elif lt.tail == "conv":
            self.conv_payload(layer, where)
        layer.source = Placement(off, size, content, *self.conv_placement(layer))
        return layer

    def need(self, where: str, needed: int, avail: int, what: str) -> int:
        if needed > avail:
            self.fail(f"{where}: body has {avail} bytes but its {what} need {needed}")
        return needed

    def block(self, where: str, what: str, offset: int, size: int) -> bytes:
        if offset + size > len(self.data):
            self.fail(
                f"{where}: {what} at file offset {offset} (+{size} bytes) is outside the file "
                f"({len(self.data)} bytes)"
            )
        return self.data[offset : offset + size]

    def conv_payload(self, layer: Layer, where: str) -> None:
        b = layer.body
        regs = sign_fix(
            cs.kpu_layer_argument(self.block(where, "register block", b.layer_offset, REGISTERS_SIZE))
        )
        layer.regs = regs
        g = ConvGeometry.of(regs)
        if g.kernel is None:
            self.fail(
                f"{where}: kernel_type {regs.kernel_pool_type_cfg.kernel_type} (supported: 0 = 1x1, 1 = 3x3)"
            )
        # Weight element size is global: header flags bit 0 (eight_bit_mode), docs §4.5.
        itemsize = 1 if self.eight_bit else 2
        raw = self.block(
            where,
            f"weights ({g.weight_count} x {itemsize} bytes)",
            b.weights_offset,
            g.weight_count * itemsize,
        )
        layer.weights = (
            np.frombuffer(raw, np.uint8 if itemsize == 1 else "<u2")
            .astype(np.uint8 if itemsize == 1 else np.uint16)
            .reshape(g.weight_shape)
        )
        layer.bn = BatchNorm.from_bytes(
            self.block(
                where,
                f"batch-norm table ({g.out_channels} entries)",
                b.bn_offset,
                BN_ENTRY_SIZE * g.out_channels,
            )
        )
        layer.act = Activation.from_bytes(self.block(where, "activation table", b.act_offset, ACT_TABLE_SIZE))

    @property
    def eight_bit(self) -> bool:
        return bool(self.data[4] & 1)

    def conv_placement(self, layer: Layer):
        if layer.type.tail != "conv":
            return None, None
        b = layer.body
        return (
            (b.layer_offset, b.weights_offset, b.bn_offset, b.act_offset),
            (REGISTERS_SIZE, layer.weights.nbytes, BN_ENTRY_SIZE * len(layer.bn), ACT_TABLE_SIZE),
        )
