"""Lowering of a quantized IR graph to CMSIS-NN calls, and the static memory plan of a generated project.

Why a separate step: the C templates should only place numbers, never decide them. `lower(graph)` turns
every IR op into a `Layer`: the CMSIS-NN (v7.0.0 API) or emc_nn function it becomes, every integer
argument (derived with emcgen.tflite_int8.params, the same functions the int8 reference interpreter uses,
so the C code and run_int8 cannot disagree), the constant arrays it needs in the C layouts (conv OHWI,
depthwise 1HWC, fully connected [OUT][IN]) and its scratch needs per CMSIS-NN build flavour.
`plan_memory(graph, layers)` then places every activation in ONE arena with emcgen.memory.planner.

In-place rules (checked against the loops of emc_nn and CMSIS-NN v7.0.0, all of which read element i of
every input before they write element i of the output, in blocks of at most 16 that never straddle):
- reshape and an identity without requantization are views: the output IS the input;
- elementwise add/mul, requantize and lookup-table activations may write over an input of the same
  size that is read for the last time by that op (exact overlap only, never a shifted one);
- everything else (conv, depthwise, fully connected, pools, softmax, pad, concat, mean) gets an output
  that does not overlap any input: those kernels read inputs after they have started writing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import UnsupportedError
from ...ir import Graph, Op, QuantParams
from ...memory.planner import MemoryPlanner, Plan
from ...tflite_int8 import params as P
from ...tflite_int8 import quant as Q
from . import cmsis_buffers as CB

# Scratch is sized for the MCU's flavour plus these two: emc_nn (the default library) and pure C (a host
# build linked against real CMSIS-NN), so one buffer fits every library the project can be built with.
ALWAYS_FLAVOURS = ("emc_nn", "pure_c")
ARENA_ALIGN = 4

SUPPORTED_OPS = ("conv2d", "depthwise_conv2d", "dense", "max_pool2d", "avg_pool2d", "global_avg_pool",
                 "global_max_pool", "add", "mul", "softmax", "identity", "concat", "reshape", "pad", "mean",
                 "activation")


@dataclass
class CArray:
    """A constant array emitted into model.c (flash)."""

    name: str
    ctype: str                 # "int8_t" or "int32_t"
    data: np.ndarray           # 1-D
    comment: str = ""

    @property
    def nbytes(self) -> int:
        return int(self.data.size) * (1 if self.ctype == "int8_t" else 4)


@dataclass
class Layer:
    """One IR op as the generated code executes it."""

    index: int
    name: str                  # IR op name
    op_type: str
    kind: str                  # template macro: conv, depthwise, fc, max_pool, avg_pool, ...
    function: str              # the main C function called ("" for a view)
    inputs: list[str]          # activation tensors read from the arena
    output: str
    args: dict = field(default_factory=dict)
    arrays: list[CArray] = field(default_factory=list)
    scratch: dict[str, int] = field(default_factory=dict)   # flavour -> bytes
    inplace_inputs: tuple[int, ...] = ()   # indices into `inputs` the output may overwrite
    view: bool = False         # no code: the output is the input's memory

    @property
    def weights_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


@dataclass
class MemoryLayout:
    offsets: dict[str, int]    # activation tensor -> byte offset in the arena
    arena_bytes: int
    lower_bound: int           # live-set bound over the planner's buffers (no plan can be smaller)
    strategy: str
    groups: dict[str, str]     # tensor -> root tensor whose memory it shares
    inplace: dict[str, str]    # layer output -> input it overwrites (in-place layers only)
    plan: Plan | None = None


# ---- helpers -------------------------------------------------------------------------------------------

def _dims4(shape) -> tuple[int, int, int, int]:
    """NHWC dims of an activation; rank-2 (N, F) is (N, 1, 1, F), rank 3 (N, W, C) is (N, 1, W, C)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 4:
        return shape
    if len(shape) == 3:
        return shape[0], 1, shape[1], shape[2]
    if len(shape) == 2:
        return shape[0], 1, 1, shape[1]
    if len(shape) == 1:
        return 1, 1, 1, shape[0]
    return 1, 1, 1, 1


def _size(graph: Graph, name: str) -> int:
    return graph.tensors[name].size


def _i32(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.int64).reshape(-1)
    if a.size and (a.min() < -(1 << 31) or a.max() >= (1 << 31)):
        raise UnsupportedError(f"value out of int32 range in {a[:4]}")
    return a.astype(np.int32)


def _scratch(fn, *args) -> dict[str, int]:
    return {fl: int(fn(*args, fl)) for fl in CB.FLAVOURS if fl != "mve"}


def _no_scratch() -> dict[str, int]:
    return {fl: 0 for fl in CB.FLAVOURS if fl != "mve"}


def _prefix(index: int) -> str:
    return f"l{index}"


# ---- lowering of each op type --------------------------------------------------------------------------

def _windowed(graph: Graph, op: Op, index: int) -> Layer:
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    q = P.conv(graph, op)
    wt = graph.tensors[w].data
    n, h, wd, ci = _dims4(graph.tensors[x].shape)
    _, oh, ow, co = _dims4(graph.tensors[y].shape)
    sh, sw = op.attrs.get("stride", (1, 1))
    top, _, left, _ = op.attrs.get("pads", (0, 0, 0, 0))
    dh, dw = op.attrs.get("dilation", (1, 1))
    pfx = _prefix(index)
    b = P.bias(graph, op)
    bias = np.zeros(co, np.int32) if b is None else np.asarray(b, np.int32)
    common = {
        "input_offset": q.input_offset, "output_offset": q.output_offset,
        "stride": (int(sw), int(sh)), "padding": (int(left), int(top)), "dilation": (int(dw), int(dh)),
        "act": (q.act_min, q.act_max), "input_dims": (n, h, wd, ci), "output_dims": (n, oh, ow, co),
        "bias_dims": (1, 1, 1, co),
    }
    stride_t, pad_t, dil_t = CB.Tile(sw, sh), CB.Tile(left, top), CB.Tile(dw, dh)
    arrays = [None, CArray(f"{pfx}_bias", "int32_t", _i32(bias), "bias, int32"),
              CArray(f"{pfx}_mult", "int32_t", _i32(q.multiplier), "requantization multipliers (Q31)"),
              CArray(f"{pfx}_shift", "int32_t", _i32(q.shift), "requantization shifts (> 0: left)")]
    if op.type == "conv2d":
        kh, kw, cig, _ = wt.shape
        filter_dims = (co, kh, kw, cig)
        arrays[0] = CArray(f"{pfx}_weights", "int8_t", np.ascontiguousarray(wt.transpose(3, 0, 1, 2)).reshape(-1),
                           f"weights OHWI {co}x{kh}x{kw}x{cig}")
        scratch = _scratch(lambda *a: CB.convolve_wrapper_s8(stride_t, pad_t, dil_t, *a),
                           common["input_dims"], filter_dims, common["output_dims"])
        return Layer(index, op.name, op.type, "conv", "arm_convolve_wrapper_s8", [x], y,
                     {**common, "filter_dims": filter_dims}, arrays, scratch)
    kh, kw, c, mult = wt.shape
    filter_dims = (1, kh, kw, c * mult)
    arrays[0] = CArray(f"{pfx}_weights", "int8_t", np.ascontiguousarray(wt).reshape(-1),
                       f"weights 1HWC 1x{kh}x{kw}x{c * mult}")
    scratch = _scratch(lambda *a: CB.depthwise_conv_wrapper_s8(stride_t, pad_t, dil_t, *a),
                       common["input_dims"], filter_dims, common["output_dims"])
    return Layer(index, op.name, op.type, "depthwise", "arm_depthwise_conv_wrapper_s8", [x], y,
                 {**common, "filter_dims": filter_dims, "ch_mult": int(mult)}, arrays, scratch)


def _dense(graph: Graph, op: Op, index: int) -> Layer:
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    q = P.conv(graph, op)
    wt = graph.tensors[w].data                      # (IN, OUT)
    n_in, n_out = wt.shape
    batch = graph.tensors[x].shape[0]
    if _size(graph, x) != batch * n_in:
        raise UnsupportedError(f"op {op.name!r}: input {x!r} has {_size(graph, x)} values, the weights expect "
                               f"{batch} x {n_in}")
    pfx = _prefix(index)
    b = P.bias(graph, op)
    bias = np.zeros(n_out, np.int32) if b is None else np.asarray(b, np.int32)
    weights = CArray(f"{pfx}_weights", "int8_t", np.ascontiguousarray(wt.T).reshape(-1),
                     f"weights [OUT][IN] {n_out}x{n_in}")
    bias_arr = CArray(f"{pfx}_bias", "int32_t", _i32(bias), "bias, int32")
    per_channel = q.multiplier.size > 1 and not (np.all(q.multiplier == q.multiplier[0])
                                                 and np.all(q.shift == q.shift[0]))
    common = {"input_offset": q.input_offset, "output_offset": q.output_offset, "act": (q.act_min, q.act_max)}
    if per_channel:
        # Per-channel fully connected as the 1x1 convolution it is (identical arithmetic, and a kernel
        # both libraries have): input {N, 1, 1, IN}, filter {OUT, 1, 1, IN}, output {N, 1, 1, OUT}.
        args = {**common, "stride": (1, 1), "padding": (0, 0), "dilation": (1, 1),
                "input_dims": (batch, 1, 1, n_in), "filter_dims": (n_out, 1, 1, n_in),
                "output_dims": (batch, 1, 1, n_out), "bias_dims": (1, 1, 1, n_out)}
        arrays = [weights, bias_arr,
                  CArray(f"{pfx}_mult", "int32_t", _i32(q.multiplier), "requantization multipliers (Q31)"),
                  CArray(f"{pfx}_shift", "int32_t", _i32(q.shift), "requantization shifts (> 0: left)")]
        scratch = _scratch(lambda *a: CB.convolve_wrapper_s8((1, 1), (0, 0), (1, 1), *a),
                           args["input_dims"], args["filter_dims"], args["output_dims"])
        return Layer(index, op.name, op.type, "conv", "arm_convolve_wrapper_s8", [x], y, args, arrays, scratch)
    args = {**common, "multiplier": int(q.multiplier[0]), "shift": int(q.shift[0]),
            "input_dims": (batch, 1, 1, n_in), "filter_dims": (n_in, 1, 1, n_out),
            "output_dims": (batch, 1, 1, n_out), "bias_dims": (1, 1, 1, n_out)}
    scratch = _scratch(lambda dims, fl: CB.fully_connected_s8(dims, fl), args["filter_dims"])
    return Layer(index, op.name, op.type, "fc", "arm_fully_connected_s8", [x], y, args,
                 [weights, bias_arr], scratch)


def _pool_layer(graph: Graph, op: Op, index: int, kind: str, kernel, stride, pads) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    P.check_int8(graph, op, [x, y])
    lo, hi = P.output_range(graph, op)
    n, h, w, c = _dims4(graph.tensors[x].shape)
    n_out = graph.tensors[y].size
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in stride)
    oh = (h + pads[0] + pads[1] - kh) // sh + 1
    ow = (w + pads[2] + pads[3] - kw) // sw + 1
    if n * oh * ow * c != n_out:
        raise UnsupportedError(f"op {op.name!r}: output {y!r} has {n_out} values, the pool window gives "
                               f"{n}x{oh}x{ow}x{c}")
    args = {"stride": (sw, sh), "padding": (int(pads[2]), int(pads[0])), "act": (lo, hi),
            "input_dims": (n, h, w, c), "filter_dims": (1, kh, kw, 1), "output_dims": (n, oh, ow, c)}
    if kind == "max_pool":
        return Layer(index, op.name, op.type, kind, "arm_max_pool_s8", [x], y, args, [], _no_scratch())
    scratch = _scratch(CB.avgpool_s8, ow, c)
    return Layer(index, op.name, op.type, kind, "arm_avgpool_s8", [x], y, args, [], scratch)


def _pool(graph: Graph, op: Op, index: int) -> Layer:
    kernel = op.attrs["kernel"]
    stride = op.attrs.get("stride", kernel)
    pads = tuple(int(p) for p in op.attrs.get("pads", (0, 0, 0, 0)))
    kind = "max_pool" if op.type == "max_pool2d" else "avg_pool"
    return _pool_layer(graph, op, index, kind, kernel, stride, pads)


def _global_pool(graph: Graph, op: Op, index: int) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    n, h, w, c = _dims4(graph.tensors[x].shape)
    if op.type == "global_max_pool":
        return _pool_layer(graph, op, index, "max_pool", (h, w), (h, w), (0, 0, 0, 0))
    requant = P.requantize(graph, op, x, y)
    if requant is None:
        return _pool_layer(graph, op, index, "avg_pool", (h, w), (h, w), (0, 0, 0, 0))
    zp_in, zp_out, m, s = requant
    lo, hi = P.output_range(graph, op)
    args = {"input_dims": (n, h, w, c), "input_offset": -zp_in, "multiplier": m, "shift": s,
            "output_offset": zp_out, "act": (lo, hi), "size": n * c}
    return Layer(index, op.name, op.type, "mean", "emc_nn_mean_s8", [x], y, args, [], _no_scratch())


def _mean(graph: Graph, op: Op, index: int) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    P.check_int8(graph, op, [x, y])
    shape = graph.tensors[x].shape
    axes = tuple(sorted(int(a) % len(shape) for a in op.attrs["axes"]))
    if len(shape) != 4 or axes != (1, 2):
        raise UnsupportedError(f"op {op.name!r}: int8 mean over axes {list(axes)} of a rank-{len(shape)} "
                               "tensor; the stm32 target supports the mean over H and W of an NHWC tensor")
    s_in, zp_in = P.per_tensor(graph, x, op)
    s_out, zp_out = P.per_tensor(graph, y, op)
    m, s = Q.requantize_params(s_in, s_out)
    n, h, w, c = _dims4(shape)
    args = {"input_dims": (n, h, w, c), "input_offset": -zp_in, "multiplier": m, "shift": s,
            "output_offset": zp_out, "act": (Q.QMIN, Q.QMAX), "size": n * c}
    return Layer(index, op.name, op.type, "mean", "emc_nn_mean_s8", [x], y, args, [], _no_scratch())


def _operands(graph: Graph, op: Op, index: int) -> tuple[list[dict], list[str], list[CArray], int, int]:
    """Operands of a binary elementwise op.

    Returns (operand descriptions, activation inputs, constant arrays, block size, repeat count). An operand
    is {"kind": "act", "input": i, "repeat": bool} or {"kind": "const", "array": name, "repeat": bool};
    `repeat` operands are read from their start for each of the `repeat` blocks (trailing-axes
    broadcasting, e.g. a per-channel vector against an NHWC map); constants are expanded at build time.
    """
    y = op.outputs[0]
    out_shape = tuple(graph.tensors[y].shape)
    out_size = graph.tensors[y].size
    small = [graph.tensors[n] for n in op.inputs[:2] if not graph.tensors[n].is_const
             and graph.tensors[n].size != out_size]
    block = out_size
    if small:
        t = small[0]
        trimmed = list(t.shape)
        while trimmed and trimmed[0] == 1:
            trimmed.pop(0)
        if not trimmed or tuple(trimmed) != out_shape[len(out_shape) - len(trimmed):]:
            raise UnsupportedError(f"op {op.name!r}: broadcasting {list(t.shape)} against {list(out_shape)}; "
                                   "the stm32 target broadcasts only over leading axes (e.g. a per-channel "
                                   "vector against an NHWC map)")
        block = t.size
        if any(graph.tensors[n].size not in (block, out_size) for n in op.inputs[:2]
               if not graph.tensors[n].is_const):
            raise UnsupportedError(f"op {op.name!r}: operand sizes do not broadcast over leading axes")
    operands, acts, arrays = [], [], []
    for k, name in enumerate(op.inputs[:2]):
        t = graph.tensors[name]
        if t.is_const:
            data = np.asarray(t.data)
            if data.dtype != np.int8:
                raise UnsupportedError(f"op {op.name!r}: constant operand {name!r} is {data.dtype}; "
                                       "int8 execution needs int8 constants")
            if data.size == block:
                flat = data.reshape(-1)
            else:
                flat = np.broadcast_to(data, (1,) * (len(out_shape) - data.ndim) + data.shape)
                flat = np.broadcast_to(flat, out_shape).reshape(-1)
                if block != out_size:
                    flat = flat[:block]
            arr = CArray(f"{_prefix(index)}_operand{k}", "int8_t", np.ascontiguousarray(flat, np.int8),
                         f"constant operand {name}")
            arrays.append(arr)
            operands.append({"kind": "const", "array": arr.name, "repeat": block != out_size})
        else:
            operands.append({"kind": "act", "input": len(acts), "repeat": t.size != out_size})
            acts.append(name)
    repeat = out_size // block
    return operands, acts, arrays, block, repeat


def _elementwise(graph: Graph, op: Op, index: int) -> Layer:
    if len(op.inputs) != 2:
        raise UnsupportedError(f"op {op.name!r}: {op.type} with {len(op.inputs)} inputs; supported: 2")
    operands, acts, arrays, block, repeat = _operands(graph, op, index)
    y = op.outputs[0]
    if op.type == "add":
        q = P.add(graph, op)
        args = {"q": q, "act": (q.act_min, q.act_max)}
        fn = "arm_elementwise_add_s8"
    else:
        q = P.mul(graph, op)
        args = {"q": q, "act": (q.act_min, q.act_max)}
        fn = "arm_elementwise_mul_s8"
    args.update(operands=operands, block=block, repeat=repeat)
    inplace = tuple(o["input"] for o in operands if o["kind"] == "act" and not o["repeat"])
    return Layer(index, op.name, op.type, op.type, fn, acts, y, args, arrays, _no_scratch(),
                 inplace_inputs=inplace)


def _softmax(graph: Graph, op: Op, index: int) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    q = P.softmax(graph, op)
    shape = graph.tensors[x].shape
    row = int(shape[-1]) if shape else 1
    rows = graph.tensors[x].size // row
    args = {"rows": rows, "row_size": row, "multiplier": q.multiplier, "shift": q.shift, "diff_min": q.diff_min}
    return Layer(index, op.name, op.type, "softmax", "arm_softmax_s8", [x], y, args, [], _no_scratch())


def _view(graph: Graph, op: Op, index: int) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    if _size(graph, x) != _size(graph, y):
        raise UnsupportedError(f"op {op.name!r}: {op.type} changes the number of values "
                               f"({_size(graph, x)} -> {_size(graph, y)})")
    return Layer(index, op.name, op.type, "view", "", [x], y, {}, [], _no_scratch(), view=True)


def _identity(graph: Graph, op: Op, index: int) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    P.check_int8(graph, op, [x, y])
    r = P.requantize(graph, op, x, y)
    if r is None:
        return _view(graph, op, index)
    zp_in, zp_out, m, s = r
    args = {"size": _size(graph, x), "input_offset": -zp_in, "multiplier": m, "shift": s, "output_offset": zp_out}
    return Layer(index, op.name, op.type, "requantize", "emc_nn_requantize_s8", [x], y, args, [], _no_scratch(),
                 inplace_inputs=(0,))


def _lookup_table(graph: Graph, op: Op) -> np.ndarray:
    """Output of a unary int8 op for each of the 256 input values, from the int8 reference interpreter.

    Used for standalone activations (relu, relu6, sigmoid, tanh): an int8 -> int8 function of one value
    is exactly a 256-entry table, so the C code cannot round differently from the reference.
    """
    from ...tflite_int8.interpreter import run_int8
    x, y = op.inputs[0], op.outputs[0]
    tx, ty = graph.tensors[x], graph.tensors[y]
    g = Graph(name="lut")
    g.add_tensor(x, (1, 256), "int8", quant=QuantParams(tx.quant.scale, tx.quant.zero_point)
                 if tx.quant is not None else None)
    g.add_tensor(y, (1, 256), "int8", quant=QuantParams(ty.quant.scale, ty.quant.zero_point)
                 if ty.quant is not None else None)
    g.add_op(op.type, op.name, [x], [y], **op.attrs)
    g.inputs, g.outputs = [x], [y]
    values = np.arange(-128, 128, dtype=np.int8).reshape(1, 256)
    return run_int8(g, values)[y].reshape(-1)


def _activation(graph: Graph, op: Op, index: int) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    P.check_int8(graph, op, [x, y])
    table = _lookup_table(graph, op)
    arr = CArray(f"{_prefix(index)}_lut", "int8_t", table.astype(np.int8),
                 f"{op.attrs.get('function')} of every int8 input value -128..127")
    args = {"size": _size(graph, x), "lut": arr.name, "function": op.attrs.get("function")}
    return Layer(index, op.name, op.type, "lut", "emc_model_lut_s8", [x], y, args, [arr], _no_scratch(),
                 inplace_inputs=(0,))


def _pad(graph: Graph, op: Op, index: int) -> Layer:
    x, y = op.inputs[0], op.outputs[0]
    P.check_int8(graph, op, [x, y])
    s, zp = P.per_tensor(graph, y, op)
    value = int(np.clip(Q.quantize_scalar(op.attrs.get("value", 0.0), s, zp), Q.QMIN, Q.QMAX))
    top, bottom, left, right = (int(p) for p in op.attrs["pads"])
    if min(top, bottom, left, right) < 0:
        raise UnsupportedError(f"op {op.name!r}: negative padding {op.attrs['pads']}")
    args = {"input_dims": _dims4(graph.tensors[x].shape), "pads": (top, bottom, left, right), "value": value}
    return Layer(index, op.name, op.type, "pad", "emc_nn_pad_s8", [x], y, args, [], _no_scratch())


def _concat(graph: Graph, op: Op, index: int) -> Layer:
    y = op.outputs[0]
    P.check_int8(graph, op, op.inputs + op.outputs)
    if op.attrs.get("activation"):
        raise UnsupportedError(f"op {op.name!r}: a fused activation on an int8 concat is not supported")
    out_shape = graph.tensors[y].shape
    axis = op.attrs.get("axis", -1) % len(out_shape)
    if axis == 0:
        raise UnsupportedError(f"op {op.name!r}: concatenation along the batch axis is not supported")
    outer = int(np.prod(out_shape[:axis], dtype=np.int64))
    out_inner = int(np.prod(out_shape[axis:], dtype=np.int64))
    parts, acts, arrays, offset = [], [], [], 0
    for k, name in enumerate(op.inputs):
        t = graph.tensors[name]
        inner = int(np.prod(t.shape[axis:], dtype=np.int64))
        part = {"inner": inner, "offset": offset, "requant": None}
        if t.is_const:
            arr = CArray(f"{_prefix(index)}_part{k}", "int8_t", np.ascontiguousarray(t.data, np.int8).reshape(-1),
                         f"constant input {name}")
            arrays.append(arr)
            part["const"] = arr.name
        else:
            part["input"] = len(acts)
            acts.append(name)
        r = P.requantize(graph, op, name, y)
        if r is not None:
            zp_in, zp_out, m, s = r
            part["requant"] = {"input_offset": -zp_in, "multiplier": m, "shift": s, "output_offset": zp_out}
        parts.append(part)
        offset += inner
    args = {"outer": outer, "out_inner": out_inner, "parts": parts}
    return Layer(index, op.name, op.type, "concat", "emc_nn_concat_s8", acts, y, args, arrays, _no_scratch())


_LOWER = {
    "conv2d": _windowed, "depthwise_conv2d": _windowed, "dense": _dense,
    "max_pool2d": _pool, "avg_pool2d": _pool, "global_avg_pool": _global_pool, "global_max_pool": _global_pool,
    "add": _elementwise, "mul": _elementwise, "softmax": _softmax, "identity": _identity, "concat": _concat,
    "reshape": _view, "pad": _pad, "mean": _mean, "activation": _activation,
}


def check_graph(graph: Graph) -> None:
    """Raise UnsupportedError for what the STM32 target cannot run (before anything is written)."""
    if not graph.meta.get("quantized"):
        raise UnsupportedError(f"model {graph.name!r} is not quantized; the stm32 target needs an int8 graph")
    for name in graph.inputs + graph.outputs:
        t = graph.tensors[name]
        if t.dtype != "int8":
            raise UnsupportedError(f"model {graph.name!r}: tensor {name!r} is {t.dtype}; the stm32 target "
                                   "needs int8 model inputs and outputs")
    for op in graph.ops:
        if op.type not in _LOWER:
            raise UnsupportedError(f"op {op.name!r} of type {op.type!r} is not supported by the stm32 target; "
                                   f"supported: {', '.join(SUPPORTED_OPS)}")
        if len(op.outputs) != 1:
            raise UnsupportedError(f"op {op.name!r} has {len(op.outputs)} outputs; supported: 1")


def lower(graph: Graph) -> list[Layer]:
    """Every op of a quantized graph as a Layer (see the module docstring)."""
    check_graph(graph)
    return [_LOWER[op.type](graph, op, i) for i, op in enumerate(graph.ops)]


def scratch_bytes(layers: list[Layer], flavour: str) -> int:
    """One scratch buffer for every layer: the largest need over the layers and the flavours that matter
    (the MCU's, emc_nn's and pure C's), rounded up to whole int32 words."""
    flavours = {flavour, *ALWAYS_FLAVOURS}
    need = max((layer.scratch.get(fl, 0) for layer in layers for fl in flavours), default=0)
    return -(-need // 4) * 4


def layer_scratch(layer: Layer, flavour: str) -> int:
    return max(layer.scratch.get(fl, 0) for fl in {flavour, *ALWAYS_FLAVOURS})


# ---- memory plan ----------------------------------------------------------------------------------------

class _Groups:
    """Union-find over tensor names: tensors in one group share their memory."""

    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        self.parent.setdefault(name, name)
        while self.parent[name] != name:
            self.parent[name] = self.parent[self.parent[name]]
            name = self.parent[name]
        return name

    def union(self, keep: str, other: str) -> None:
        self.parent[self.find(other)] = self.find(keep)


def plan_memory(graph: Graph, layers: list[Layer], *, inplace: bool = True, align: int = ARENA_ALIGN
                ) -> MemoryLayout:
    """Offsets of every activation in one arena (graph inputs and outputs included).

    Lifetimes are in op steps: a graph input lives from step 0, a tensor from the op that writes it, both to
    their last reader; graph outputs live to the end. A view shares its input's memory; an in-place layer
    writes over an input whose group is read for the last time by that layer and is not a graph output.
    """
    n = len(layers)
    groups = _Groups()
    acts = [name for name in graph.inputs]
    for layer in layers:
        acts.extend(layer.inputs)
        acts.append(layer.output)
    for name in dict.fromkeys(acts):
        groups.find(name)
    for layer in layers:
        if layer.view:
            groups.union(layer.inputs[0], layer.output)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    produced = {layer.output: layer.index for layer in layers}

    def touch(root: str, step: int) -> None:
        first[root] = min(first.get(root, step), step)
        last[root] = max(last.get(root, step), step)

    def recompute() -> None:
        first.clear()
        last.clear()
        for name in graph.inputs:
            touch(groups.find(name), 0)
        for layer in layers:
            for name in layer.inputs:
                touch(groups.find(name), layer.index)
            touch(groups.find(layer.output), produced[layer.output])
        for name in graph.outputs:
            touch(groups.find(name), max(n - 1, 0))

    recompute()
    outputs_roots = {groups.find(name) for name in graph.outputs}
    inplace_map: dict[str, str] = {}
    if inplace:
        for layer in layers:
            if layer.view or not layer.inplace_inputs:
                continue
            out_root = groups.find(layer.output)
            for k in layer.inplace_inputs:
                name = layer.inputs[k]
                root = groups.find(name)
                if root == out_root or root in outputs_roots or last[root] != layer.index:
                    continue
                if graph.tensors[name].size != graph.tensors[layer.output].size:
                    continue
                groups.union(root, layer.output)
                inplace_map[layer.output] = name
                recompute()
                outputs_roots = {groups.find(x) for x in graph.outputs}
                break
    planner = MemoryPlanner()
    roots = sorted(first, key=lambda r: (first[r], r))
    for root in roots:
        size = max(graph.tensors[t].nbytes for t in acts if groups.find(t) == root)
        planner.add(root, size, first[root], last[root], align=align)
    plan = planner.plan()
    offsets = {t: plan.offsets[groups.find(t)] for t in dict.fromkeys(acts)}
    return MemoryLayout(offsets, plan.peak, planner.lower_bound(), plan.strategy,
                        {t: groups.find(t) for t in dict.fromkeys(acts)}, inplace_map, plan)


def best_memory_plan(graph: Graph, layers: list[Layer]) -> MemoryLayout:
    """Word-aligned offsets unless byte alignment gives a smaller arena (CMSIS-NN needs no alignment)."""
    aligned = plan_memory(graph, layers, align=ARENA_ALIGN)
    packed = plan_memory(graph, layers, align=1)
    return packed if packed.arena_bytes < aligned.arena_bytes else aligned
