"""Lowering an IR graph to the layer sequence of a kmodel v3 (before addresses are assigned).

What runs where:
- conv2d / depthwise_conv2d with 1x1 or 3x3 kernels, stride 1 or 2, pads <= 1, maps >= 4x4, <= 1024
  channels -> one K210_CONV (BN, bias and activation fused into its tables). A following max/mean pool
  2x2 or 4x4 (stride = kernel) is fused into the KPU pool stage; a stride-2 conv whose sampling grid
  starts at the first pixel (symmetric pad, even size: Keras' explicit ZeroPadding + VALID) uses the
  KPU's left-top select pool. Every other sampling grid (TF "SAME" stride 2 samples the odd pixels,
  VALID crops the border) runs the conv at stride 1 on the KPU and picks the right pixels on the CPU
  with a 1x1 QUANTIZED_MAX_POOL2D whose input address is shifted by the grid's phase. A depthwise
  stride-2 conv (the KPU never pools depthwise layers) defers its left-top select to the 1x1 conv that
  follows it, when there is one (a 1x1 conv commutes with subsampling).
- dense (and a 1x1 conv on a 1x1 map) -> FULLY_CONNECTED (float32; the weights are re-ordered so it
  reads the channel-major map directly, no flatten layer), or, for big layers (<= 1024 in and out; option
  fc=auto|float|kpu), a KPU 1x1 conv on a 4x4 map between K210_ADD_PADDING and K210_REMOVE_PADDING.
- Everything else runs on the CPU with the SDK's layer types: add ->
  QUANTIZED_ADD, concat (channels) -> QUANTIZED_CONCAT (+ REQUANTIZE tables when scales differ),
  max pool -> QUANTIZED_MAX_POOL2D, average pool / global average pool -> AVERAGE_POOL2D /
  GLOBAL_AVERAGE_POOL2D (float), global max pool -> QUANTIZED_MAX_POOL2D over the whole map, softmax
  -> SOFTMAX, sigmoid -> LOGISTIC (float) or a REQUANTIZE table (uint8), upsample -> QUANTIZED_RESIZE_
  NEAREST_NEIGHBOR, flatten of a map that is an output -> TENSORFLOW_FLATTEN.
- Tensors move between KPU RAM and main memory on demand: a conv streams its result to main memory
  (flags bit 0) when a CPU layer reads it, K210_UPLOAD puts a main-memory map back into KPU RAM,
  QUANTIZE / DEQUANTIZE convert between uint8 and float32. Model outputs are float32 in main memory.

The result is a list of Step records naming abstract buffers; layout.py (planner) gives the buffers KPU
RAM lines and main-memory offsets and emit.py turns steps into kmodel layers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ... import ops as oplib
from ...errors import UnsupportedError
from ...ir import Graph, Op
from .kpu_quant import (
    KpuConvParams,
    UQuant,
    affine_input_quant,
    kpu_conv_params,
    uint8_quant,
)

MAX_CHANNELS = 1024
MAX_HEIGHT = 256          # nncase maintainer (issue #48): the KPU cannot take taller maps without first_stride
MAX_WIDTH = 960           # row_switch_addr has 4 bits: at most 15 lines of 64 bytes per row
MIN_MAP = 4               # maps smaller than 4x4 are not supported natively (nncase #533)
POOL_CODES = {("max", 2): 1, ("avg", 2): 2, ("max", 4): 3, ("avg", 4): 4}
FC_FLOAT_LIMIT = 256 * 1024      # fc='auto': float weights bigger than this go to the KPU as uint8
LINEAR_FAMILY_AND_CURVES = (None, "", "linear", "relu", "relu6", "leaky_relu", "sigmoid", "tanh")


@dataclass
class Buffer:
    """A tensor in one memory: 'kpu' (uint8, 64-byte-line layout), 'u8' or 'f32' (dense NCHW, main)."""

    name: str
    kind: str
    shape: tuple[int, int, int]          # (C, H, W); vectors are (C, 1, 1)
    quant: UQuant | None = None
    tensor: str = ""                     # the IR tensor it holds ("" for internal buffers)

    @property
    def count(self) -> int:
        c, h, w = self.shape
        return c * h * w


@dataclass
class Step:
    """One kmodel layer to emit: its kind, the buffers it reads/writes and its parameters."""

    kind: str
    reads: list[str]
    writes: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    ir_ops: list[str] = field(default_factory=list)


@dataclass
class Lowered:
    steps: list[Step]
    buffers: dict[str, Buffer]
    input_buffer: str
    output_buffers: list[str]
    tensor_quant: dict[str, UQuant]
    notes: list[str] = field(default_factory=list)


def chw(shape) -> tuple[int, int, int]:
    """IR shape (batch first, NHWC or (N, C)) -> (C, H, W)."""
    if len(shape) == 4:
        return int(shape[3]), int(shape[1]), int(shape[2])
    if len(shape) == 2:
        return int(shape[1]), 1, 1
    raise UnsupportedError(f"tensors of rank {len(shape)} are not supported by the K210 target")


class Lowering:
    """Walks the graph once; keeps, per IR tensor, the buffers that hold it (by kind)."""

    def __init__(self, graph: Graph, ranges, input_affine, weight_bits: int = 8, samples=None, fc: str = "auto"):
        if fc not in ("auto", "float", "kpu"):
            raise UnsupportedError(f"fc mode {fc!r}: use auto, float or kpu")
        self.fc_mode = fc
        self.g = graph
        self.samples = samples
        self._acts = None
        self.ranges = ranges
        self.weight_bits = weight_bits
        self.steps: list[Step] = []
        self.buffers: dict[str, Buffer] = {}
        self.homes: dict[str, dict[str, str]] = {}        # IR tensor -> {kind: buffer name}
        self.quant: dict[str, UQuant] = {}
        self.producer_step: dict[str, Step] = {}          # kpu buffer -> the conv step that writes it
        self.skip: set[str] = set()                       # IR ops fused into a previous step
        self.deferred_pool5: dict[str, str] = {}          # 1x1 conv op name -> dw output tensor it subsamples
        self.aliases: dict[str, str] = {}                 # IR tensor -> tensor with the same bytes (reshape)
        self.notes: list[str] = []
        if len(graph.inputs) != 1:
            raise UnsupportedError(f"the K210 target takes models with one input; this one has {len(graph.inputs)}")
        self.input = graph.inputs[0]
        if input_affine is None:
            raise UnsupportedError("the dataset function is not affine, so it cannot be folded into the first "
                                   "layer (the kmodel takes raw uint8 pixels); use img_0_1, img_neg1_1 or img_0_255")
        self.input_affine = input_affine

    def float_values(self, tensor: str):
        """Float values of an IR tensor on the first calibration samples (for weight rounding), or None."""
        if self.samples is None:
            return None
        if self._acts is None:
            from ... import interpreter
            self._acts = interpreter.run(self.g, self.samples, keep_all=True)
        return self._acts.get(tensor)

    # ---- quantization of IR tensors ---------------------------------------------------------------------
    def resolve(self, tensor: str) -> str:
        while tensor in self.aliases:
            tensor = self.aliases[tensor]
        return tensor

    def q(self, tensor: str) -> UQuant:
        tensor = self.resolve(tensor)
        if tensor not in self.quant:
            if tensor == self.input:
                self.quant[tensor] = affine_input_quant(*self.input_affine)
            else:
                lo, hi = self.ranges[tensor]
                self.quant[tensor] = uint8_quant(lo, hi)
        return self.quant[tensor]

    # ---- buffers and representation changes -----------------------------------------------------------
    def new_buffer(self, kind: str, shape, tensor: str = "", quant=None, hint: str = "") -> str:
        base = f"{kind}:{hint or tensor or 'tmp'}"
        name = base
        i = 1
        while name in self.buffers:
            name = f"{base}#{i}"
            i += 1
        self.buffers[name] = Buffer(name, kind, tuple(shape), quant, tensor)
        if tensor:
            self.homes.setdefault(tensor, {})[kind] = name
        return name

    def need(self, tensor: str, kind: str) -> str:
        """A buffer holding `tensor` in memory `kind`, adding conversion layers when necessary."""
        tensor = self.resolve(tensor)
        homes = self.homes.get(tensor, {})
        if kind in homes:
            return homes[kind]
        shape = chw(self.g.tensors[tensor].shape)
        if kind == "u8":
            if "kpu" in homes:
                conv = self.producer_step.get(homes["kpu"])
                if conv is None:
                    raise UnsupportedError(f"tensor {tensor!r} is only in KPU RAM (the model input?) but a CPU "
                                           "layer needs it; the K210 runtime cannot copy it to main memory")
                out = self.new_buffer("u8", shape, tensor, self.q(tensor))
                conv.params["main_out"] = out
                conv.writes.append(out)
                return out
            if "f32" in homes:
                out = self.new_buffer("u8", shape, tensor, self.q(tensor))
                self.emit("quantize", [homes["f32"]], [out], quant=self.q(tensor))
                return out
        elif kind == "f32":
            src = self.need(tensor, "u8")
            out = self.new_buffer("f32", shape, tensor)
            self.emit("dequantize", [src], [out], quant=self.buffers[src].quant)
            return out
        elif kind == "kpu":
            src = self.need(tensor, "u8")
            out = self.new_buffer("kpu", shape, tensor, self.buffers[src].quant)
            self.emit("upload", [src], [out])
            return out
        raise UnsupportedError(f"cannot provide tensor {tensor!r} as {kind}")

    def emit(self, kind: str, reads, writes, ops=(), **params) -> Step:
        step = Step(kind, list(reads), list(writes), params, list(ops))
        self.steps.append(step)
        return step

    # ---- driver ----------------------------------------------------------------------------------------------
    def run(self) -> Lowered:
        g = self.g
        in_shape = chw(g.tensors[self.input].shape)
        first_users = g.consumers(self.input)
        if first_users and all(op.type == "dense" for op in first_users):
            self.input_buffer = self.new_buffer("f32", in_shape, self.input)
            self.notes.append("the first layer is FULLY_CONNECTED: needs a standalone SDK newer than V0.5.6 "
                              "(develop from 2019-05-31 or V0.5.7)")
        else:
            if not first_users or any(op.type not in ("conv2d", "depthwise_conv2d") for op in first_users):
                names = ", ".join(f"{op.name} ({op.type})" for op in first_users)
                raise UnsupportedError(f"the first layer must be a convolution the KPU runs (the K210 runtime "
                                       f"uploads the raw image into KPU RAM); the input feeds: {names}")
            self.input_buffer = self.new_buffer("kpu", in_shape, self.input, self.q(self.input))
        for op in g.ops:
            if op.name in self.skip:
                continue
            handler = getattr(self, f"lower_{op.type}", None)
            if handler is None:
                raise UnsupportedError(f"layer {op.name!r} ({op.type}) has no K210 lowering; supported: "
                                       f"{', '.join(sorted(SUPPORTED))}")
            handler(op)
        outputs = [self.need(t, "f32") for t in g.outputs]
        return Lowered(self.steps, self.buffers, self.input_buffer, outputs, dict(self.quant), self.notes)

    # ---- convolutions ---------------------------------------------------------------------------------------
    def _sole_consumer(self, tensor: str) -> Op | None:
        if tensor in self.g.outputs:
            return None
        users = self.g.consumers(tensor)
        return users[0] if len(users) == 1 else None

    def _kpu_shape_checks(self, op: Op, c: int, h: int, w: int, where: str):
        if c > MAX_CHANNELS:
            raise UnsupportedError(f"layer {op.name!r}: {c} {where} channels; the KPU takes at most {MAX_CHANNELS}")
        if h > MAX_HEIGHT or w > MAX_WIDTH:
            raise UnsupportedError(f"layer {op.name!r}: {where} map {w}x{h} (WxH) is larger than the KPU's "
                                   f"{MAX_WIDTH}x{MAX_HEIGHT}")
        if h < MIN_MAP or w < MIN_MAP:
            raise UnsupportedError(f"layer {op.name!r}: {where} map {w}x{h} is smaller than the KPU's minimum "
                                   f"{MIN_MAP}x{MIN_MAP}")

    def lower_batch_norm(self, op: Op):
        """A BatchNorm that could not be folded: a depthwise 1x1 conv on the KPU."""
        from ...ops.batch_norm import scale_and_offset
        gamma, beta, mean, var = (self.g.const(n) for n in op.inputs[1:5])
        scale, offset = scale_and_offset(gamma, beta, mean, var, op.attrs.get("epsilon", 1e-3))
        fake = Op("depthwise_conv2d", op.name, [op.inputs[0], "", ""], op.outputs,
                  {"stride": (1, 1), "pads": (0, 0, 0, 0), "activation": op.attrs.get("activation"),
                   "alpha": op.attrs.get("alpha", 0.2)})
        self._conv(fake, scale.reshape(1, 1, -1, 1).astype(np.float32), offset, depthwise=True)

    def lower_conv2d(self, op: Op):
        w = self.g.const(op.inputs[1])
        b = self.g.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else None
        _, h, wd, _ = self.g.tensors[op.inputs[0]].shape
        if w.shape[:2] == (1, 1) and h == wd == 1 and tuple(op.attrs.get("stride", (1, 1))) == (1, 1):
            # a 1x1 conv on a 1x1 map (a classifier after global pooling) is a fully connected layer
            self._fully_connected(op, op.inputs[0], w.reshape(w.shape[2], w.shape[3]), b)
            return
        self._conv(op, w, b, depthwise=False)

    def lower_depthwise_conv2d(self, op: Op):
        w = self.g.const(op.inputs[1])
        b = self.g.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else None
        if w.shape[3] != 1:
            # multiplier > 1: the same numbers as a normal conv whose kernels are zero off the diagonal
            kh, kw, c, m = w.shape
            full = np.zeros((kh, kw, c, c * m), w.dtype)
            for ci in range(c):
                full[:, :, ci, ci * m:(ci + 1) * m] = w[:, :, ci, :]
            self._conv(op, full, b, depthwise=False)
            return
        self._conv(op, w, b, depthwise=True)

    def _conv(self, op: Op, w: np.ndarray, b, depthwise: bool):
        g = self.g
        x, y = op.inputs[0], op.outputs[0]
        kh, kw = w.shape[:2]
        cout, oh, ow = chw(g.tensors[y].shape)
        stride = tuple(op.attrs.get("stride", (1, 1)))
        dil = tuple(op.attrs.get("dilation", (1, 1)))
        t, bpad, lpad, rpad = op.attrs.get("pads", (0, 0, 0, 0))
        if kh != kw or kh not in (1, 3):
            raise UnsupportedError(f"layer {op.name!r}: kernel {kh}x{kw}; the KPU runs 1x1 and 3x3 kernels only")
        if dil != (1, 1):
            raise UnsupportedError(f"layer {op.name!r}: dilation {dil} is not supported by the KPU (only 1)")
        if stride[0] != stride[1] or stride[0] not in (1, 2):
            raise UnsupportedError(f"layer {op.name!r}: stride {stride}; the KPU supports stride 1 and 2")
        half = kh // 2
        if max(t, bpad, lpad, rpad) > half:
            raise UnsupportedError(f"layer {op.name!r}: padding {(t, bpad, lpad, rpad)} is larger than the KPU's "
                                   f"built-in {half}-pixel border")
        _, h_ir, w_ir = chw(g.tensors[x].shape)
        if (h_ir < MIN_MAP or w_ir < MIN_MAP) and "kpu" not in self.homes.get(self.resolve(x), {}):
            in_buf = self._expanded_small_map(op, x, kh)
        else:
            in_buf = self.need(x, "kpu")
        cin, hin, win = self.buffers[in_buf].shape          # physical: full resolution when a select is deferred
        self._kpu_shape_checks(op, cin, hin, win, "input")
        s = stride[0]
        phase = (half - t, half - lpad)
        pool = 0
        cpu_subsample = None
        out_h, out_w = hin, win                       # what the KPU writes
        final = y
        if op.name in self.deferred_pool5:
            pool, out_h, out_w = 5, hin // 2, win // 2
        elif s == 1 and phase == (0, 0) and (oh, ow) == (hin, win):
            pass
        elif (s == 2 and phase == (0, 0) and (oh, ow) == (hin // 2, win // 2)) and not depthwise \
                and min(oh, ow) >= MIN_MAP:
            pool, out_h, out_w = 5, hin // 2, win // 2
        elif s == 2 and phase == (0, 0) and (oh, ow) == (hin // 2, win // 2) and depthwise and \
                min(oh, ow) >= MIN_MAP and self._can_defer_pool5(y):
            self.deferred_pool5[self._sole_consumer(y).name] = y
        else:
            cpu_subsample = dict(stride=s, phase=phase, out=(oh, ow))
        if not pool and cpu_subsample is None and not depthwise and op.name not in self.deferred_pool5:
            fused = self._fusable_pool(y, hin, win)
            if fused is not None:
                pool_op, pool, (out_h, out_w) = fused
                self.skip.add(pool_op.name)
                final = pool_op.outputs[0]
        if depthwise and pool:
            raise AssertionError("depthwise layers never pool on the KPU")
        self._kpu_shape_checks(op, cout, out_h, out_w, "output")

        in_q = self.buffers[in_buf].quant
        out_q = self.q(y)
        self.quant[final] = out_q
        params: KpuConvParams = kpu_conv_params(
            w, b, in_q, out_q, depthwise=depthwise, activation=op.attrs.get("activation"),
            alpha=op.attrs.get("alpha", 0.2), weight_bits=self.weight_bits, calib_inputs=self.float_values(x))
        self.notes += [f"{op.name}: {n}" for n in params.notes]
        kpu_shape = (cout, out_h, out_w)
        deferred = out_h != chw(g.tensors[final].shape)[1] and cpu_subsample is None
        tensor_of_kpu = "" if (cpu_subsample or deferred) else final
        out_buf = self.new_buffer("kpu", kpu_shape, tensor_of_kpu, out_q, hint=f"{final}@kpu")
        step = self.emit("conv", [in_buf], [out_buf], [op.name] + ([] if final == y else [final]),
                         conv=params, in_shape=(cin, hin, win), out_shape=kpu_shape, kernel=kh,
                         depthwise=depthwise, pool_type=pool, main_out=None)
        self.producer_step[out_buf] = step
        if deferred:
            # full-resolution dw output, subsampled by the next 1x1 conv; only that conv reads it
            self.homes.setdefault(final, {})["kpu"] = out_buf
        if cpu_subsample is not None:
            full_u8 = self.new_buffer("u8", kpu_shape, "", out_q, hint=f"{final}@full")
            step.params["main_out"] = full_u8
            step.writes.append(full_u8)
            (oh2, ow2), (py, px) = cpu_subsample["out"], cpu_subsample["phase"]
            out_u8 = self.new_buffer("u8", (cout, oh2, ow2), final, out_q)
            self.emit("max_pool", [full_u8], [out_u8], [op.name], in_shape=kpu_shape, out_shape=(cout, oh2, ow2),
                      kernel=(1, 1), stride=(cpu_subsample["stride"],) * 2, padding=(0, 0),
                      in_offset=py * out_w + px)

    def _expanded_small_map(self, op: Op, x: str, k: int) -> str:
        """A map smaller than the KPU's 4x4 minimum, placed in the top-left corner of a 4x4 map of zeros.

        A 1x1 QUANTIZED_MAX_POOL2D with a larger output shape does it: windows outside the input are
        empty and give the pool's start value 0. The conv then runs on 4x4 and its result is cropped on
        the CPU like any other sampling grid. Exact for 1x1 kernels (the extra pixels are never read), and
        for 3x3 kernels when the zero point is 0 (ReLU outputs), where the added zeros are real zeros.
        """
        src = self.need(x, "u8")
        q = self.buffers[src].quant
        c, h, w = self.buffers[src].shape
        if k != 1 and q.zero_point != 0:
            raise UnsupportedError(f"layer {op.name!r}: input map {w}x{h} is smaller than the KPU's minimum "
                                   f"{MIN_MAP}x{MIN_MAP}; a 3x3 conv on it is supported only when its input "
                                   "has zero point 0 (e.g. after ReLU)")
        big = (c, max(h, MIN_MAP), max(w, MIN_MAP))
        padded = self.new_buffer("u8", big, "", q, hint=f"{x}/4x4")
        self.emit("max_pool", [src], [padded], [op.name], in_shape=(c, h, w), out_shape=big, kernel=(1, 1),
                  stride=(1, 1), padding=(0, 0), in_offset=0)
        out = self.new_buffer("kpu", big, "", q, hint=f"{x}/4x4")
        self.emit("upload", [padded], [out], [op.name])
        return out

    def _can_defer_pool5(self, tensor: str) -> bool:
        nxt = self._sole_consumer(tensor)
        if nxt is None or nxt.type != "conv2d" or nxt.inputs[0] != tensor:
            return False
        w = self.g.const(nxt.inputs[1])
        return (w.shape[:2] == (1, 1) and tuple(nxt.attrs.get("stride", (1, 1))) == (1, 1)
                and tuple(nxt.attrs.get("pads", (0, 0, 0, 0))) == (0, 0, 0, 0)
                and self._fusable_pool(nxt.outputs[0], 1 << 30, 1 << 30) is None)

    def _fusable_pool(self, tensor: str, h: int, w: int):
        """(pool op, KPU pool type, output (h, w)) if the sole consumer is a pool the KPU can do."""
        nxt = self._sole_consumer(tensor)
        if nxt is None or nxt.type not in ("max_pool2d", "avg_pool2d") or nxt.attrs.get("activation"):
            return None
        k = tuple(nxt.attrs["kernel"])
        s = tuple(nxt.attrs.get("stride", k))
        pads = tuple(nxt.attrs.get("pads", (0, 0, 0, 0)))
        kind = "max" if nxt.type == "max_pool2d" else "avg"
        if k == s and k[0] == k[1] and (kind, k[0]) in POOL_CODES and pads == (0, 0, 0, 0) \
                and h % k[0] == 0 and w % k[0] == 0 and min(h, w) // k[0] >= MIN_MAP:
            return nxt, POOL_CODES[(kind, k[0])], (h // k[0], w // k[0])
        if kind == "max" and k == (2, 2) and s == (1, 1) and pads == (0, 1, 0, 1):
            return nxt, 9, (h, w)        # window extends down/right; outside counts as 0 = the uint8 minimum
        return None

    # ---- CPU layers -----------------------------------------------------------------------------------------
    def lower_dense(self, op: Op):
        b = self.g.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else None
        self._fully_connected(op, op.inputs[0], self.g.const(op.inputs[1]), b)

    def _fully_connected(self, op: Op, x: str, w: np.ndarray, b):
        """FULLY_CONNECTED (float32) with weights (IN, OUT) whose rows follow the NHWC flatten order."""
        g = self.g
        w = np.asarray(w, np.float32)
        src = x
        prod = g.producer(x)
        if prod is not None and prod.type == "reshape" and len(g.tensors[prod.inputs[0]].shape) == 4:
            src = prod.inputs[0]
        shape = g.tensors[src].shape
        if len(shape) == 4 and shape[1] * shape[2] > 1:
            _, h, wd, c = shape
            # row r of the IR weights is input element (y, x, c) at r = (y*W + x)*C + c; main memory holds
            # the map channel-major: index c*H*W + y*W + x
            idx = np.arange(h * wd * c).reshape(h, wd, c).transpose(2, 0, 1).reshape(-1)
            w = w[idx]
        if self._fc_on_kpu(op, w):
            self._kpu_fully_connected(op, src, w, b)
            return
        in_buf = self.need(src, "f32")
        act = op.attrs.get("activation")
        act_code = {None: 0, "": 0, "linear": 0, "relu": 1, "relu6": 2}.get(act)
        out_shape = chw(g.tensors[op.outputs[0]].shape)
        post = None
        if act_code is None:
            act_code, post = 0, act
        target = op.outputs[0] if post is None else op.outputs[0] + "/pre_activation"
        out = self.new_buffer("f32", out_shape, target if post is None else "", hint=target)
        self.emit("fc", [in_buf], [out], [op.name], weights=w.T.copy(),
                  bias=np.zeros(w.shape[1], np.float32) if b is None else b.astype(np.float32), act=act_code)
        if act_code and act_code > 0:
            self.notes.append(f"{op.name}: FULLY_CONNECTED applies its activation only in SDKs newer than V0.5.6")
        if post is not None:
            self._activation_on(out, op.outputs[0], post, op.attrs.get("alpha", 0.2), op)

    def _fc_on_kpu(self, op: Op, w: np.ndarray) -> bool:
        """The fc option: 'float' (exact FULLY_CONNECTED), 'kpu' (uint8 weights, 1x1 conv on a 4x4 map, as
        nncase does) or 'auto' (KPU when the float weights would take more than FC_FLOAT_LIMIT bytes)."""
        n_in, n_out = w.shape
        fits = n_in <= MAX_CHANNELS and n_out <= MAX_CHANNELS
        act = op.attrs.get("activation")
        if self.fc_mode == "float" or not fits or act not in LINEAR_FAMILY_AND_CURVES:
            if self.fc_mode == "kpu" and not fits:
                self.notes.append(f"{op.name}: {n_in}->{n_out} does not fit one KPU layer (<= {MAX_CHANNELS}); "
                                  "kept as a float FULLY_CONNECTED")
            return False
        return self.fc_mode == "kpu" or w.size * 4 > FC_FLOAT_LIMIT

    def _kpu_fully_connected(self, op: Op, src: str, w: np.ndarray, b):
        """uint8 FC on the KPU: K210_ADD_PADDING puts the vector as pixel (0,0) of a 4x4 map, a 1x1 conv
        computes it (the other 15 pixels hold stale data and are never read), K210_REMOVE_PADDING takes
        pixel (0,0) of every output channel back out of the conv's main-memory copy."""
        n_in, n_out = w.shape
        y = op.outputs[0]
        vec = self.need(src, "u8")
        in_q = self.buffers[vec].quant
        padded = self.new_buffer("kpu", (n_in, 4, 4), "", in_q, hint=f"{y}/padded_in")
        self.emit("add_padding", [vec], [padded], [op.name], channels=n_in)
        out_q = self.q(y)
        samples = self.float_values(src)
        calib = None if samples is None else samples.reshape(samples.shape[0], 1, 1, n_in)
        params = kpu_conv_params(w.reshape(1, 1, n_in, n_out), b, in_q, out_q, depthwise=False,
                                 activation=op.attrs.get("activation"), alpha=op.attrs.get("alpha", 0.2),
                                 weight_bits=self.weight_bits, calib_inputs=calib)
        self.notes += [f"{op.name}: {n}" for n in params.notes]
        out_kpu = self.new_buffer("kpu", (n_out, 4, 4), "", out_q, hint=f"{y}/padded_out")
        full = self.new_buffer("u8", (n_out, 4, 4), "", out_q, hint=f"{y}/padded_out")
        step = self.emit("conv", [padded], [out_kpu, full], [op.name], conv=params, in_shape=(n_in, 4, 4),
                         out_shape=(n_out, 4, 4), kernel=1, depthwise=False, pool_type=0, main_out=full)
        self.producer_step[out_kpu] = step
        out = self.new_buffer("u8", (n_out, 1, 1), y, out_q)
        self.emit("remove_padding", [full], [out], [op.name], channels=n_out)

    def lower_activation(self, op: Op):
        x, y = op.inputs[0], op.outputs[0]
        homes = self.homes.get(self.resolve(x), {})
        if "f32" in homes and "u8" not in homes:
            self._activation_on(homes["f32"], y, op.attrs["function"], op.attrs.get("alpha", 0.2), op)
        else:
            self._lut(op, self.need(x, "u8"), y, op.attrs["function"], op.attrs.get("alpha", 0.2))

    def _activation_on(self, f32_buf: str, y: str, fn: str, alpha: float, op: Op):
        shape = self.buffers[f32_buf].shape
        if fn == "sigmoid":
            out = self.new_buffer("f32", shape, y)
            self.emit("logistic", [f32_buf], [out], [op.name])
            return
        # any other function: quantize, table, (dequantize on demand)
        pre = self.new_buffer("u8", shape, "", self._pre_quant(y, fn), hint=f"{y}/pre")
        self.emit("quantize", [f32_buf], [pre], [op.name], quant=self.buffers[pre].quant)
        self._lut(op, pre, y, fn, alpha)

    def _pre_quant(self, y: str, fn: str) -> UQuant:
        lo, hi = self.ranges[y]
        inv = {"tanh": np.arctanh, "sigmoid": lambda v: np.log(v / (1 - v))}.get(fn)
        if inv is None:
            return uint8_quant(lo, hi)
        eps = 1e-4
        clip = (eps, 1 - eps) if fn == "sigmoid" else (-1 + eps, 1 - eps)
        return uint8_quant(float(inv(np.clip(lo, *clip))), float(inv(np.clip(hi, *clip))))

    def _lut(self, op: Op, src: str, y: str, fn: str, alpha: float):
        from ...ops._common import apply_activation
        qin = self.buffers[src].quant
        qout = self.q(y)
        real = qin.dequantize(np.arange(256))
        table = qout.quantize(apply_activation(real.astype(np.float32), fn, alpha))
        out = self.new_buffer("u8", self.buffers[src].shape, y, qout)
        self.emit("requantize", [src], [out], [op.name], table=table)

    def lower_softmax(self, op: Op):
        shape = chw(self.g.tensors[op.inputs[0]].shape)
        if shape[1] * shape[2] != 1:
            raise UnsupportedError(f"layer {op.name!r}: softmax over a {shape[2]}x{shape[1]} map; the K210 runtime "
                                   "applies softmax to vectors only")
        src = self.need(op.inputs[0], "f32")
        out = self.new_buffer("f32", shape, op.outputs[0])
        self.emit("softmax", [src], [out], [op.name])

    def lower_add(self, op: Op):
        a, b = op.inputs[:2]
        if self.g.tensors[a].shape != self.g.tensors[b].shape:
            raise UnsupportedError(f"layer {op.name!r}: add with broadcasting is not supported on the K210")
        act = op.attrs.get("activation")
        if act not in (None, "", "linear", "relu", "relu6"):
            raise UnsupportedError(f"layer {op.name!r}: activation {act!r} after an add is not supported on the K210")
        qa_buf, qb_buf = self.need(a, "u8"), self.need(b, "u8")
        y = op.outputs[0]
        out = self.new_buffer("u8", chw(self.g.tensors[y].shape), y, self.q(y))
        self.emit("quantized_add", [qa_buf, qb_buf], [out], [op.name])

    def lower_concat(self, op: Op):
        y = op.outputs[0]
        rank = len(self.g.tensors[y].shape)
        axis = op.attrs.get("axis", -1) % rank
        if axis != rank - 1:
            raise UnsupportedError(f"layer {op.name!r}: concat on axis {axis}; the K210 target concatenates "
                                   "channels only")
        qy = self.q(y)
        parts = []
        for t in op.inputs:
            buf = self.need(t, "u8")
            if self.buffers[buf].quant != qy:
                conv = self.new_buffer("u8", self.buffers[buf].shape, "", qy, hint=f"{t}/requant")
                table = qy.quantize(self.buffers[buf].quant.dequantize(np.arange(256)))
                self.emit("requantize", [buf], [conv], [op.name], table=table)
                buf = conv
            parts.append(buf)
        out = self.new_buffer("u8", chw(self.g.tensors[y].shape), y, qy)
        self.emit("concat", parts, [out], [op.name])

    def lower_max_pool2d(self, op: Op):
        if op.attrs.get("activation"):
            raise UnsupportedError(f"layer {op.name!r}: an activation after max pooling is not supported on the K210")
        x, y = op.inputs[0], op.outputs[0]
        src = self.need(x, "u8")
        self.quant[y] = self.buffers[src].quant          # max pooling keeps the input quantization
        t, _, lpad, _ = op.attrs.get("pads", (0, 0, 0, 0))
        out = self.new_buffer("u8", chw(self.g.tensors[y].shape), y, self.quant[y])
        self.emit("max_pool", [src], [out], [op.name], in_shape=self.buffers[src].shape,
                  out_shape=self.buffers[out].shape, kernel=tuple(op.attrs["kernel"]),
                  stride=tuple(op.attrs.get("stride", op.attrs["kernel"])), padding=(t, lpad), in_offset=0)

    def lower_global_max_pool(self, op: Op):
        x, y = op.inputs[0], op.outputs[0]
        src = self.need(x, "u8")
        c, h, w = self.buffers[src].shape
        self.quant[y] = self.buffers[src].quant
        out = self.new_buffer("u8", (c, 1, 1), y, self.quant[y])
        self.emit("max_pool", [src], [out], [op.name], in_shape=(c, h, w), out_shape=(c, 1, 1), kernel=(h, w),
                  stride=(h, w), padding=(0, 0), in_offset=0)

    def lower_avg_pool2d(self, op: Op):
        if op.attrs.get("activation"):
            raise UnsupportedError(f"layer {op.name!r}: an activation after average pooling is not supported")
        src = self.need(op.inputs[0], "f32")
        t, _, lpad, _ = op.attrs.get("pads", (0, 0, 0, 0))
        out = self.new_buffer("f32", chw(self.g.tensors[op.outputs[0]].shape), op.outputs[0])
        self.emit("avg_pool", [src], [out], [op.name], in_shape=self.buffers[src].shape,
                  out_shape=self.buffers[out].shape, kernel=tuple(op.attrs["kernel"]),
                  stride=tuple(op.attrs.get("stride", op.attrs["kernel"])), padding=(t, lpad))

    def lower_global_avg_pool(self, op: Op):
        if op.attrs.get("activation"):
            raise UnsupportedError(f"layer {op.name!r}: an activation after global pooling is not supported")
        src = self.need(op.inputs[0], "f32")
        c, h, w = self.buffers[src].shape
        out = self.new_buffer("f32", (c, 1, 1), op.outputs[0])
        self.emit("global_avg_pool", [src], [out], [op.name], kernel_size=h * w, channels=c)

    def lower_mean(self, op: Op):
        axes = sorted(a % 4 for a in op.attrs["axes"])
        if len(self.g.tensors[op.inputs[0]].shape) != 4 or axes != [1, 2]:
            raise UnsupportedError(f"layer {op.name!r}: mean over axes {op.attrs['axes']}; only the spatial mean "
                                   "(global average pooling) is supported on the K210")
        self.lower_global_avg_pool(op)

    def lower_reshape(self, op: Op):
        x, y = op.inputs[0], op.outputs[0]
        xs, ys = self.g.tensors[x].shape, self.g.tensors[y].shape
        users = self.g.consumers(y)
        if users and all(u.type == "dense" for u in users) and y not in self.g.outputs:
            return                                     # dense reads the map directly (weights re-ordered)
        cx, hx, wx = chw(xs)
        if hx * wx == 1 and len(ys) in (2, 4) and chw(ys) == (cx, 1, 1):
            self.aliases[y] = x                        # a vector stays a vector: same bytes
            return
        if len(ys) == 2:
            src = self.need(x, "f32")
            out = self.new_buffer("f32", chw(ys), y)
            self.emit("flatten", [src], [out], [op.name], shape=self.buffers[src].shape)
            return
        raise UnsupportedError(f"layer {op.name!r}: reshape {list(xs)} -> {list(ys)} is not supported on the K210 "
                               "(flatten only)")

    def lower_upsample_nearest(self, op: Op):
        src = self.need(op.inputs[0], "u8")
        y = op.outputs[0]
        self.quant[y] = self.buffers[src].quant
        out = self.new_buffer("u8", chw(self.g.tensors[y].shape), y, self.quant[y])
        self.emit("resize_nearest", [src], [out], [op.name])


SUPPORTED = {name[len("lower_"):] for name in dir(Lowering) if name.startswith("lower_")}


def lower(graph: Graph, ranges, input_affine, weight_bits: int = 8, samples=None, fc: str = "auto") -> Lowered:
    """Lower a canonical float graph (after emcgen.passes) with calibrated ranges.

    samples: float calibration inputs (N, H, W, C); when given, every KPU conv's weight rounding is
    optimized for its input activations on them (kpu_quant.optimize_rounding).
    """
    for op in graph.ops:
        oplib.get(op.type)
    return Lowering(graph, ranges, input_affine, weight_bits, samples, fc).run()
