"""Run a kmodel v3 the way the K210 does: the standalone SDK's runtime plus the KPU, in numpy.

    outputs = run(km, image)                 # one array per output-table entry
    emu = trace(km, image)                   # also every layer's output (emu.layers[i].data)

The input is what kpu_run_kmodel receives: raw bytes (uint8 CHW for a model whose first layer is a
K210_CONV, float32 for a FULLY_CONNECTED first layer), a uint8 array (H, W, C) or (C, H, W) that is
packed to CHW, or a float array for FC-first models. The runtime puts it where the SDK does (CPU
relayout into KPU RAM, or a DMA copy when the width is a multiple of 64; floats into the main buffer),
then every layer runs in order: K210_CONV through kpu.py (bit-exact integer model), the rest through
cpu.py (the SDK's float32 arithmetic). Outputs are read back from the main buffer, as kpu_get_output does.

runtime: "sdk" = the official standalone SDK kpu.c (v3, after 2019-05-31); "maix-emc" = Maix-EMC's
patched kpu.c (adds types 6 and 21, QUANTIZE truncates, FC ignores relu6, no FC-first models). None picks
"sdk" when it executes every layer, else "maix-emc" when that does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EmcError, FormatError, UnsupportedError
from . import cpu, kpu
from .access import layer_access
from .format import BY_CODE, K210_SRAM_BYTES, KPU_RAM_LINES, RUNTIME_NAMES, RUNTIMES
from .layout import ConvGeometry, sdk_byte_addresses

MAIN_SLACK = 7  # docs §7.1: main buffer of main_mem_usage (+7 slack for the last 64-bit DMA word)


@dataclass
class LayerOutput:
    """What one layer produced: the array (shaped where known) and where it went."""

    index: int
    name: str
    data: np.ndarray
    main_address: int | None = None  # main-buffer offset written, if any
    kpu_line: int | None = None  # KPU-RAM line written, if any


@dataclass
class Emulation:
    outputs: list[np.ndarray]
    layers: list[LayerOutput] = field(default_factory=list)
    runtime: str = "sdk"


class Machine:
    """Main buffer + KPU RAM, with bounds-checked typed access and a note of what was written where."""

    def __init__(self, km, runtime: str):
        if km.main_mem_usage > K210_SRAM_BYTES:
            raise FormatError(
                f"main_mem_usage {km.main_mem_usage} bytes exceeds the K210's 6 MiB of SRAM "
                "(kpu_load_kmodel's malloc would fail)"
            )
        self.runtime = runtime
        self.main = np.zeros(km.main_mem_usage + MAIN_SLACK, dtype=np.uint8)
        self.kpu = kpu.KpuRam()
        self.written: dict[int, tuple[np.dtype, tuple[int, ...]]] = {}
        self.where = ""
        self.last_main: int | None = None

    def _range(self, addr: int, nbytes: int, what: str) -> slice:
        if addr + nbytes > self.main.size:
            raise FormatError(
                f"{self.where}: {what} [{addr}, {addr + nbytes}) is outside the main buffer "
                f"(main_mem_usage {self.main.size - MAIN_SLACK} bytes)"
            )
        return slice(addr, addr + nbytes)

    def read_u8(self, addr: int, count: int, what: str) -> np.ndarray:
        return self.main[self._range(addr, count, what)]

    def read_f32(self, addr: int, count: int, what: str) -> np.ndarray:
        return self.main[self._range(addr, 4 * count, what)].view("<f4").astype(np.float32)

    def write(self, addr: int, values: np.ndarray, shape) -> np.ndarray:
        values = np.ascontiguousarray(values)
        raw = values.reshape(-1).view(np.uint8)
        self.main[self._range(addr, raw.size, "output")] = raw
        self.note(addr, raw.size, values.dtype, tuple(shape))
        return values.reshape(shape) if int(np.prod(shape)) == values.size else values

    def note(self, addr: int, nbytes: int, dtype, shape) -> None:
        for a in [a for a in self.written if addr <= a < addr + nbytes]:
            del self.written[a]
        self.written[addr] = (np.dtype(dtype), tuple(shape))
        self.last_main = addr

    def dtype_at(self, addr: int) -> np.dtype:
        """dtype of the tensor last written over byte `addr` (uint8 when unknown)."""
        for start, (dtype, shape) in self.written.items():
            if start <= addr < start + int(np.prod(shape)) * dtype.itemsize:
                return dtype
        return np.dtype(np.uint8)

    def shape_of(self, addr: int, count: int) -> tuple[int, ...]:
        """The shape last written at addr when it has `count` elements, else (count,)."""
        found = self.written.get(addr)
        if found and int(np.prod(found[1])) == count:
            return found[1]
        return (count,)


def choose_runtime(km, runtime: str | None = None) -> str:
    codes = [layer.type.code for layer in km.layers]
    if runtime is None:
        for name in ("sdk", "maix-emc"):
            if all(c in RUNTIMES[name] for c in codes):
                return name
        runtime = "sdk"
    if runtime not in RUNTIMES:
        raise EmcError(f"unknown runtime {runtime!r} (choose {', '.join(RUNTIMES)})")
    for i, c in enumerate(codes):
        if c not in RUNTIMES[runtime]:
            others = [n for n in RUNTIMES if c in RUNTIMES[n]]
            hint = f"; it needs {RUNTIME_NAMES[others[0]]} (runtime={others[0]!r})" if others else ""
            raise UnsupportedError(
                f"layer {i} ({BY_CODE[c].name}) is not executed by {RUNTIME_NAMES[runtime]}{hint}"
            )
    return runtime


def pack_input(km, image) -> bytes:
    """The bytes kpu_run_kmodel expects: uint8 CHW (from HWC or CHW) for a K210_CONV first layer,
    float32 for a FULLY_CONNECTED first layer."""
    first = km.layers[0]
    if first.type.name == "FULLY_CONNECTED":
        n = first.body.in_channels
        if isinstance(image, (bytes, bytearray, memoryview)):
            raw = bytes(image)
            if len(raw) != 4 * n:
                raise EmcError(f"input has {len(raw)} bytes; the first FULLY_CONNECTED reads {n} float32")
            return raw
        x = np.asarray(image, dtype=np.float32).reshape(-1)
        if x.size != n:
            raise EmcError(f"input has {x.size} values; the first FULLY_CONNECTED reads {n}")
        return x.astype("<f4").tobytes()
    if first.type.tail != "conv":
        raise UnsupportedError(
            f"first layer is {first.name}; the runtime starts only with K210_CONV or FULLY_CONNECTED"
        )
    c, h, w = ConvGeometry.of(first.regs).in_shape
    if isinstance(image, (bytes, bytearray, memoryview)):
        raw = bytes(image)
        if len(raw) < c * h * w:
            raise EmcError(f"input has {len(raw)} bytes; the first K210_CONV reads {c}x{h}x{w} = {c * h * w}")
        return raw
    x = np.asarray(image)
    if x.dtype.kind == "f":
        raise EmcError(
            f"a K210_CONV first layer takes uint8 pixels (the runtime does not quantize); got {x.dtype}"
        )
    if x.size and (x.min() < 0 or x.max() > 255):
        raise EmcError(f"input values {x.min()}..{x.max()} do not fit uint8")
    if x.shape == (c, h, w):
        chw = x
    elif x.shape == (h, w, c):
        chw = x.transpose(2, 0, 1)
    elif x.ndim == 1 and x.size == c * h * w:
        chw = x
    else:
        raise EmcError(
            f"input shape {x.shape}; the first K210_CONV takes (H, W, C) = {(h, w, c)} or "
            f"(C, H, W) = {(c, h, w)} uint8"
        )
    return np.ascontiguousarray(chw, dtype=np.uint8).tobytes()


def _load_input(m: Machine, km, raw: bytes) -> None:
    first = km.layers[0]
    if first.type.name == "FULLY_CONNECTED":
        if m.runtime == "maix-emc":
            raise UnsupportedError("Maix-EMC's patched kpu.c only runs models whose first layer is K210_CONV")
        n = first.body.in_channels
        m.where = "model input"
        m.write(first.body.main_mem_in_address, np.frombuffer(raw, "<f4", n).astype(np.float32), (n,))
        return
    g = ConvGeometry.of(first.regs)
    c, h, w = g.in_shape
    if w % 64:  # CPU relayout (kpu_upload_core)
        x = np.frombuffer(raw, np.uint8, c * h * w)
        m.kpu.write(sdk_byte_addresses(g.src_line, c, h, w).reshape(-1), x, "model input")
    else:  # DMA of channel_switch_addr * 64 * IC bytes, straight to the first conv's input line
        n = first.regs.kernel_calc_type_cfg.channel_switch_addr * 64 * c
        m.kpu.write_bytes(g.src_line, raw[:n].ljust(n, b"\0"), "model input DMA")


def _check_ranges(m: Machine, layer) -> None:
    """Refuse, before computing anything, a layer whose ranges leave the main buffer or KPU RAM (so a
    corrupt size can neither index out of bounds nor make the emulator allocate gigabytes)."""
    acc = layer_access(layer)
    for kind, ranges in (("reads", acc.main_reads), ("writes", acc.main_writes)):
        for a, e in ranges:
            if e > m.main.size:
                raise FormatError(
                    f"{m.where}: {kind} main-buffer bytes [{a}, {e}), outside the main buffer "
                    f"(main_mem_usage {m.main.size - MAIN_SLACK})"
                )
    for a, e in acc.kpu_reads + acc.kpu_writes:
        if e > KPU_RAM_LINES:
            raise FormatError(f"{m.where}: KPU-RAM lines [{a}, {e}) run past line {KPU_RAM_LINES}")
    if layer.type.tail == "conv":
        g = ConvGeometry.of(layer.regs)
        for what, n in (("input", g.in_channels * g.in_height * g.in_width), ("output", g.out_bytes)):
            if n > kpu.KPU_RAM_BYTES:
                raise FormatError(f"{m.where}: {what} map of {n} bytes cannot fit the 2 MiB KPU RAM")


def _conv(m: Machine, layer, index: int) -> LayerOutput:
    y = kpu.run_conv(m.kpu, layer, m.where)
    out = LayerOutput(index, layer.name, y, kpu_line=layer.regs.image_addr.image_dst_addr)
    if layer.body.flags & 1:  # DMA of (dma_total_byte + 8) / 8 64-bit words from the output FIFO
        n = (layer.regs.dma_parameter.dma_total_byte + 8) // 8 * 8
        stream = y.reshape(-1)
        if n > -(-stream.size // 8) * 8:
            raise FormatError(f"{m.where}: DMA waits for {n} bytes but the KPU streams only {stream.size}")
        data = np.zeros(n, np.uint8)  # the last word's padding content is unknown; 0 here
        data[: min(n, stream.size)] = stream[:n]
        m.write(layer.body.main_mem_out_address, data, (n,))
        m.note(
            layer.body.main_mem_out_address, min(n, stream.size), np.uint8, y.shape if n >= y.size else (n,)
        )
        out.main_address = layer.body.main_mem_out_address
    return out


def trace(km, data, runtime: str | None = None, keep: bool = True) -> Emulation:
    """Run every layer; with keep, also return each layer's output (LayerOutput list)."""
    rt = choose_runtime(km, runtime)
    m = Machine(km, rt)
    _load_input(m, km, pack_input(km, data))
    layers = []
    for i, layer in enumerate(km.layers):
        m.where = f"layer {i} ({layer.name})"
        m.last_main = None
        _check_ranges(m, layer)
        if layer.type.tail == "conv":
            out = _conv(m, layer, i)
        elif not (acc := layer_access(layer)).main_writes and not acc.kpu_writes:
            out = LayerOutput(i, layer.name, np.zeros(0, np.uint8))  # writes nothing: nothing to compute
        else:
            arr = cpu.HANDLERS[layer.name](m, layer)
            line = getattr(layer.body, "kpu_mem_out_address", None)
            out = LayerOutput(i, layer.name, arr, main_address=m.last_main, kpu_line=line)
        if keep:
            out.data = np.array(out.data, copy=True)
            layers.append(out)
    return Emulation(_outputs(m, km), layers, rt)


def run(km, data, runtime: str | None = None) -> list[np.ndarray]:
    """The model's outputs, one array per output-table entry (float32 or uint8 as written)."""
    return trace(km, data, runtime, keep=False).outputs


def _outputs(m: Machine, km) -> list[np.ndarray]:
    outs = []
    for k, o in enumerate(km.outputs):
        m.where = f"output {k}"
        raw = m.read_u8(o.address, o.size, "output range").copy()
        dtype, shape = m.written.get(o.address, (np.dtype(np.uint8), (o.size,)))
        if raw.size % dtype.itemsize:
            dtype, shape = np.dtype(np.uint8), (o.size,)
        arr = raw.view(dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype).astype(dtype)
        outs.append(arr.reshape(shape) if int(np.prod(shape)) == arr.size else arr)
    return outs
