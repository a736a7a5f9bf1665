"""In-memory kmodel v3: the KModel, its layers and the K210_CONV payload tables.

A KModel is plain data: header values, the output table and a list of Layer objects. Fixed-size records
(layer bodies, output entries, the 12 KPU register words) are dissect.cstruct instances of the structs in
format.py, with signed bitfields already sign-extended; bulk data (weights, batch-norm and activation
tables) are numpy arrays. A model read from disk remembers where everything was (`source`) so that
`to_bytes()` reproduces the file byte for byte; a model built in memory gets the recommended layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .format import KMODEL_VERSION, KPU_RAM_LINES, LayerType, check_range, cs, decode_words, encode_words
from .layout import ConvGeometry


@dataclass(eq=False)
class BatchNorm:
    """K210_CONV batch-norm table, one entry per output channel: bn = ((acc*mul) >> shift) + add."""

    norm_mul: np.ndarray
    norm_add: np.ndarray
    norm_shift: np.ndarray
    reserved: np.ndarray | None = None  # top 4 bits of each word; kept only so files round-trip

    def __post_init__(self):
        self.norm_mul = np.asarray(self.norm_mul, dtype=np.int64).reshape(-1)
        n = self.norm_mul.size
        self.norm_add = np.broadcast_to(np.asarray(self.norm_add, dtype=np.int64), (n,)).copy()
        self.norm_shift = np.broadcast_to(np.asarray(self.norm_shift, dtype=np.int64), (n,)).copy()

    def __len__(self) -> int:
        return int(self.norm_mul.size)

    @classmethod
    def from_bytes(cls, raw: bytes) -> BatchNorm:
        f = decode_words(np.frombuffer(raw, dtype="<u8"), cs.batchnorm_word)
        reserved = f["reserved"] if f["reserved"].any() else None
        return cls(f["norm_mul"], f["norm_add"], f["norm_shift"], reserved)

    def to_bytes(self, where: str = "batch norm") -> bytes:
        fields = {
            "norm_mul": self.norm_mul,
            "norm_add": self.norm_add,
            "norm_shift": self.norm_shift,
            "reserved": self.reserved,
        }
        return encode_words(fields, cs.batchnorm_word, len(self), where).astype("<u8").tobytes()


@dataclass(eq=False)
class Activation:
    """K210_CONV activation table: 16 segments (x_start, y_mul, shift_number) and 16 uint8 biases.

    out = clamp(round((bn - x_start[s]) * y_mul[s] / 2^shift[s]) + bias[s], 0, 255) with s the last
    segment whose x_start < bn (docs §3.6, §3.9.4)."""

    x_start: np.ndarray
    y_mul: np.ndarray
    shift_number: np.ndarray
    bias: np.ndarray
    reserved: np.ndarray | None = None

    def __post_init__(self):
        for name in ("x_start", "y_mul", "shift_number", "bias"):
            setattr(
                self, name, np.broadcast_to(np.asarray(getattr(self, name), dtype=np.int64), (16,)).copy()
            )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Activation:
        f = decode_words(np.frombuffer(raw[:128], dtype="<u8"), cs.activate_segment_word)
        reserved = f["reserved"] if f["reserved"].any() else None
        bias = np.frombuffer(raw[128:144], dtype=np.uint8)
        return cls(f["x_start"], f["y_mul"], f["shift_number"], bias, reserved)

    def to_bytes(self, where: str = "activation") -> bytes:
        fields = {
            "x_start": self.x_start,
            "y_mul": self.y_mul,
            "shift_number": self.shift_number,
            "reserved": self.reserved,
        }
        segs = encode_words(fields, cs.activate_segment_word, 16, where).astype("<u8").tobytes()
        bias = check_range(self.bias, 0, 255, where + ".bias")
        return segs + bias.astype(np.uint8).tobytes()


@dataclass
class Placement:
    """Where a layer read from disk sat in its file; lets the writer reproduce the file exactly."""

    body_offset: int
    body_size: int
    content_size: int  # fixed struct + tail actually present in the body
    conv_blocks: tuple[int, int, int, int] | None = None  # regs, weights, bn, act absolute offsets
    conv_sizes: tuple[int, int, int, int] | None = None


@dataclass(eq=False)
class Layer:
    """One layer: its type (format.LAYER_TYPES entry), fixed body and variable parts.

    body:         cstruct instance of type.body_struct; bytes for types without a known body
    weights:      FULLY_CONNECTED float32 (out, in); K210_CONV uint8/uint16 OIHW or (C, k, k) depthwise
    bias:         FULLY_CONNECTED float32 (out,)
    inputs:       CONCAT / QUANTIZED_CONCAT: list of cs.memory_range
    quant_params: CHANNELWISE_DEQUANTIZE float32 (channels, 2) = (scale, bias) per channel
    regs, bn, act: K210_CONV: cs.kpu_layer_argument, BatchNorm, Activation
    For K210_CONV the body's *_offset fields are owned by the writer (it places the payload).
    """

    type: LayerType
    body: Any
    weights: np.ndarray | None = None
    bias: np.ndarray | None = None
    inputs: list | None = None
    quant_params: np.ndarray | None = None
    regs: Any = None
    bn: BatchNorm | None = None
    act: Activation | None = None
    source: Placement | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.type.name

    @property
    def code(self) -> int:
        return self.type.code

    @property
    def geometry(self) -> ConvGeometry:
        """Shapes described by a K210_CONV's registers."""
        return ConvGeometry.of(self.regs)

    @property
    def main_mem_out(self) -> bool:
        return bool(self.type.struct and self.body.flags & 1)

    def __repr__(self) -> str:
        return f"<Layer {self.type.name}>"


@dataclass(eq=False)
class KModel:
    """A kmodel v3: header values, output table (cs.output_entry list) and layers.

    layers_length and output_count are not stored: the writer takes them from the lists.
    flags bit 0 = eight_bit_mode (1: uint8 KPU weights, 0: uint16)."""

    layers: list[Layer] = field(default_factory=list)
    outputs: list = field(default_factory=list)
    main_mem_usage: int = 0
    flags: int = 1
    max_start_address: int = KPU_RAM_LINES
    version: int = KMODEL_VERSION
    arch: int = 0
    source: Any = field(default=None, repr=False)  # reader.Source of a model read from disk

    @property
    def eight_bit(self) -> bool:
        return bool(self.flags & 1)

    @property
    def weight_dtype(self) -> np.dtype:
        return np.dtype(np.uint8) if self.eight_bit else np.dtype("<u2")

    def to_bytes(self, layout: str = "auto") -> bytes:
        """Serialize; layout 'auto' keeps a read file's layout when possible, 'recommended' re-lays out."""
        from .writer import to_bytes

        return to_bytes(self, layout)

    def save(self, path, layout: str = "auto") -> None:
        data = self.to_bytes(layout)
        with open(path, "wb") as f:
            f.write(data)

    def __repr__(self) -> str:
        names = ", ".join(layer.name for layer in self.layers[:6]) + (" ..." if len(self.layers) > 6 else "")
        return (
            f"<KModel v{self.version} {len(self.layers)} layers [{names}] main_mem {self.main_mem_usage} B>"
        )
