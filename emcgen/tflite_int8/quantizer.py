"""Float IR graph + calibrated ranges -> int8 IR graph, as TFLite's full-integer post-training quantization.

Why: the STM32 / CMSIS-NN target runs TFLite's int8 arithmetic, so a float model (TensorLayer, Keras, float
.tflite) must become the int8 graph the TF converter would have made from it: then run_int8, TFLM and the
generated C code all compute the same bytes, and the graph looks exactly like one the TFLite frontend reads
from a converter-made file (see the package docstring for the storage conventions).

    g = emcgen.passes.optimize(load_model(...))
    g = prepare_for_int8(g)                 # only needed for fused sigmoid/tanh/leaky_relu (see below)
    ranges = emcgen.calibration.calibrate(g, samples, "minmax")
    q = quantize_graph(g, ranges)           # run_int8(q, float_or_int8_inputs)

The rules, each checked against the TF 2.21 converter (tests/tflite/test_quantizer_converter.py):
- activations: asymmetric int8 from the tensor's calibrated (min, max) through quant.choose_qparams (range
  widened to include 0, float32 arithmetic). A fused relu / relu6 / relu_n1_to_1 uses the op's output range
  (the calibrated post-activation range), intersected with the activation's own range.
- same-scale ops (TFLite int8 kernels that copy bytes): max_pool2d, avg_pool2d, reshape, pad,
  global_max_pool (REDUCE_MAX), identity and a standalone relu give their output the input's parameters.
- concat: like the converter's stats pruning (MLIR RemoveRedundantStatsOps, forward then backward pass),
  a concat keeps its own calibrated parameters and pushes them backwards onto its inputs and through
  same-scale ops above them, so no input needs a requantization. Where two concats claim the same tensor,
  the one later in the graph wins and the other requantizes that input (TFLite inserts a QUANTIZE; the IR
  concat and the writer do the same).
- fixed outputs: softmax and sigmoid 1/256 with zero point -128, tanh 1/128 with 0.
- conv2d / depthwise_conv2d: symmetric int8 weights per output channel (per tensor with per_channel=False):
  half range r = max |w| (at least 5e-7), scale r / 127, q = round(w * (1 / scale)) in float32 (per tensor:
  round(w * (127 / r))), clamped to [-127, 127];
  dense: per tensor by default, because CMSIS-NN's arm_fully_connected_s8 is per tensor, or per channel
  with per_channel_dense=True (the TF >= 2.16 converter's default; a converter made per tensor dense layers
  with _experimental_disable_per_channel_quantization_for_dense_layers).
- biases: int32 with scale s_in * s_w[c] (float32), q = round(b * (1 / scale)) in float32. A channel whose
  bias would not fit gets a larger weight range first, as the converter does: when
  |b| >= s_in * s_w * (2^31 - 1) / 2 the range becomes 2 |b| / (2^31 - 1) * 127 / s_in (per channel; per
  tensor with the largest |b|), so a channel of zero weights and a non-zero bias gets a bias near 2^30.
- float constants read by add / mul: asymmetric per-tensor int8 from their own min / max.

Where emcgen deliberately differs from the converter (both are converter inconsistencies):
- a standalone relu6 keeps its input's parameters. The converter gives it its own calibrated [0, 6]
  parameters, but TFLM's int8 RELU6 (and CMSIS-NN's arm_relu6_s8) clamp in the input's domain and ignore
  the output parameters, so that model computes wrong values in TFLM; with equal parameters all agree.
- per-tensor weights whose range the converter widens (max |w| below 5e-7, or a bias too large for int32
  at the natural scale): it stores the widened scale but quantizes the values with the true range (up to
  +-127), so its int8 weights are too large by that factor; emcgen quantizes with the scale it stores.

Fused activations without an int8 form (sigmoid, tanh, leaky_relu, hard_sigmoid fused into a conv by
passes.fuse_activation) cannot be quantized: the pre-activation range was never calibrated. prepare_for_int8
splits them back into standalone activation ops; calibrate the graph it returns.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..errors import EmcError, UnsupportedError
from ..ir import Graph, Op, QuantParams
from . import quant as Q

F32 = np.float32
_NO_ACT = (None, "", "linear", "identity", "none")
_FUSED_INT8 = {"relu": (0.0, None), "relu6": (0.0, 6.0), "relu_n1_to_1": (-1.0, 1.0)}
_SAME_SCALE = ("max_pool2d", "avg_pool2d", "reshape", "pad", "global_max_pool", "identity")
_SAME_SCALE_ACTIVATIONS = ("relu", "relu6")
_FIXED = {"softmax": Q.SOFTMAX_OUTPUT, "sigmoid": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)}
_WEIGHTED = ("conv2d", "depthwise_conv2d", "dense")
_FUSABLE_TYPES = _WEIGHTED + ("max_pool2d", "avg_pool2d", "add", "mul", "concat")
_OWN = _WEIGHTED + ("add", "mul", "mean", "global_avg_pool")
SUPPORTED_OPS = tuple(sorted(_OWN + _SAME_SCALE + ("concat", "softmax"))) + ("activation",)
SUPPORTED_ACTIVATIONS = ("relu", "relu6", "sigmoid", "tanh")
_SUPPORTED_TEXT = (", ".join(t for t in SUPPORTED_OPS if t != "activation")
                   + ", activation (" + ", ".join(SUPPORTED_ACTIVATIONS) + ")")
_BIAS_LIMIT = 2147483647              # int32 max: the converter's bias range check and clamp
_MIN_HALF_RANGE = F32(5e-7)           # the converter's smallest weight range per channel (+-5e-7)


# ---- public API -----------------------------------------------------------------------------------------
def quantize_graph(graph: Graph, ranges: Mapping, *, per_channel: bool = True,
                   per_channel_dense: bool = False) -> Graph:
    """Return the int8 version of a canonical float graph (after emcgen.passes.optimize).

    ranges: tensor name -> (min, max) for every graph input and op output (emcgen.calibration.Ranges or a
    plain mapping). per_channel: conv2d / depthwise_conv2d weights per output channel (else per tensor).
    per_channel_dense: dense weights per output channel (default per tensor, what CMSIS-NN supports).
    The result has int8 activations, int8 weights, int32 biases and graph.meta["quantized"] = True, and runs
    in emcgen.tflite_int8.run_int8 (int8 inputs, or float inputs quantized with meta["input_quant"]).
    """
    _check(graph)
    g = graph.copy()
    kinds = {op.name: _kind(op) for op in g.ops}
    params = _activation_params(g, ranges, kinds)
    for name, (scale, zp) in params.items():
        t = g.tensors[name]
        t.dtype = "int8"
        t.quant = QuantParams(np.float32(scale), int(zp))
    for op in list(g.ops):
        _canonical_attrs(g, op)
        if op.type in _WEIGHTED:
            _quantize_weights(g, graph, op, params[op.inputs[0]][0], per_channel, per_channel_dense)
        elif op.type in ("add", "mul"):
            for k, name in enumerate(op.inputs):
                if graph.tensors[name].is_const:
                    op.inputs[k] = _quantize_const_operand(g, op, name, graph.tensors[name].data)
    g.prune()
    _fill_meta(g, graph, ranges)
    return g


def prepare_for_int8(graph: Graph) -> Graph:
    """Split fused activations that TFLite int8 cannot fuse (anything but relu, relu6, relu_n1_to_1) back
    into standalone activation ops, so that calibration records the pre-activation range the int8 op needs.
    Returns a new graph; the float result is unchanged. Run it after optimize and before calibrate."""
    g = graph.copy()
    ops = []
    for op in g.ops:
        ops.append(op)
        act = op.attrs.get("activation")
        if act in _NO_ACT or act in _FUSED_INT8:
            continue
        out = op.outputs[0]
        pre = g.unique_name(f"{out}/pre_activation")
        g.add_tensor(pre, g.tensors[out].shape)
        op.outputs = [pre]
        attrs = {"function": act}
        if "alpha" in op.attrs:
            attrs["alpha"] = op.attrs.pop("alpha")
        op.attrs["activation"] = None
        ops.append(Op("activation", f"{op.name}/{act}", [pre], [out], attrs))
    g.ops = ops
    g.validate()
    return g


# ---- checks ---------------------------------------------------------------------------------------------
def _check(graph: Graph) -> None:
    if graph.meta.get("quantized"):
        raise EmcError(f"model {graph.name!r} is already quantized; quantize_graph takes a float graph")
    for name, t in graph.tensors.items():
        if t.dtype != "float32":
            raise UnsupportedError(f"tensor {name!r} is {t.dtype}; quantize_graph takes a float32 graph")
    for op in graph.ops:
        where = f"layer {op.name!r} ({op.type})"
        if op.type not in SUPPORTED_OPS:
            hint = "; run emcgen.passes.optimize first" if op.type == "batch_norm" else ""
            raise UnsupportedError(f"{where} has no TFLite int8 form{hint}; supported: {_SUPPORTED_TEXT}")
        if op.type == "activation" and op.attrs.get("function") not in SUPPORTED_ACTIVATIONS:
            raise UnsupportedError(f"{where}: activation {op.attrs.get('function')!r} has no int8 kernel; "
                                   f"supported: {', '.join(SUPPORTED_ACTIVATIONS)}")
        act = op.attrs.get("activation")
        if act not in _NO_ACT and act not in _FUSED_INT8:
            raise UnsupportedError(f"{where} has a fused {act!r} activation, which TFLite int8 cannot fuse; "
                                   "split it with emcgen.tflite_int8.quantizer.prepare_for_int8 before "
                                   "calibrating; fusable: relu, relu6, relu_n1_to_1")
        if act not in _NO_ACT and op.type in ("concat", "mean", "global_avg_pool", "global_max_pool"):
            raise UnsupportedError(f"{where}: a fused activation on this op has no int8 form")
        if op.type in _SAME_SCALE + ("concat",) + _OWN and not graph.activation_inputs(op):
            raise UnsupportedError(f"{where} reads only constants; fold it into a constant first")
        if op.type in _WEIGHTED and not graph.tensors[op.inputs[1]].is_const:
            raise UnsupportedError(f"{where}: the weights must be constant")


def _kind(op: Op) -> str:
    """'same' (output takes the input's parameters), 'concat', 'fixed' or 'own' (calibrated range)."""
    if op.type in _SAME_SCALE:
        return "same"
    if op.type == "activation":
        fn = op.attrs["function"]
        return "same" if fn in _SAME_SCALE_ACTIVATIONS else "fixed"
    if op.type == "concat":
        return "concat" if len(op.inputs) > 1 else "same"
    if op.type == "softmax":
        return "fixed"
    return "own"


# ---- activation parameters --------------------------------------------------------------------------------
def _activation_params(g: Graph, ranges: Mapping, kinds: dict[str, str]) -> dict[str, tuple]:
    """(scale, zero point) of every activation tensor; see the module docstring for the rules."""
    producer = {out: op for op in g.ops for out in op.outputs}
    owner = _concat_owners(g, producer, kinds)

    def own(name: str):
        root = owner.get(name, name)
        if root not in ranges:
            made_by = producer.get(root)
            what = f"output of {made_by.type} {made_by.name!r}" if made_by else "model input"
            raise EmcError(f"no calibration range for tensor {root!r} ({what}); calibrate the graph that is "
                           "quantized (after emcgen.passes.optimize and prepare_for_int8)")
        lo, hi = (float(v) for v in ranges[root])
        made_by = producer.get(root)
        act = made_by.attrs.get("activation") if made_by is not None else None
        if act in _FUSED_INT8:
            a_lo, a_hi = _FUSED_INT8[act]
            lo, hi = max(lo, a_lo), hi if a_hi is None else min(hi, a_hi)
            hi = max(hi, lo)
        return Q.choose_qparams(lo, hi)

    params = {name: own(name) for name in g.inputs}
    for op in g.ops:
        out, kind = op.outputs[0], kinds[op.name]
        if kind == "same":
            params[out] = params[g.activation_inputs(op)[0]]
        elif kind == "fixed":
            fn = op.type if op.type == "softmax" else op.attrs["function"]
            params[out] = (F32(_FIXED[fn][0]), _FIXED[fn][1])
        else:
            params[out] = own(out)
    return params


def _concat_owners(g: Graph, producer: dict[str, Op], kinds: dict[str, str]) -> dict[str, str]:
    """tensor -> the concat output whose parameters it takes (the converter's backward stats pruning).

    Each concat, the last in the graph first, claims its inputs and, through same-scale ops and other
    concats, the tensors above them; a claimed concat passes on the parameters of the concat that claimed it.
    """
    owner: dict[str, str] = {}
    for op in reversed(g.ops):
        if kinds[op.name] != "concat":
            continue
        root = owner.get(op.outputs[0], op.outputs[0])
        stack = list(reversed(g.activation_inputs(op)))
        while stack:
            name = stack.pop()
            if name in owner:
                continue
            owner[name] = root
            up = producer.get(name)
            if up is not None and kinds[up.name] in ("same", "concat"):
                stack.extend(reversed(g.activation_inputs(up)))
    return owner


# ---- weights, biases, constants ---------------------------------------------------------------------------
def _quantize_weights(g: Graph, source: Graph, op: Op, s_in, per_channel: bool, per_channel_dense: bool) -> None:
    """Quantize the op's weights and bias in g, reading the float values from the source graph."""
    w_name = op.inputs[1]
    w = np.asarray(source.tensors[w_name].data, dtype=F32)
    b_name = op.inputs[2] if len(op.inputs) > 2 else ""
    b = np.asarray(source.tensors[b_name].data, dtype=F32) if b_name else None
    if op.type == "conv2d":
        flat, axis = w, 3 if per_channel else None
    elif op.type == "depthwise_conv2d":   # output channel c * MULT + m: quantize the (KH, KW, C * MULT) view
        flat, axis = w.reshape(w.shape[0], w.shape[1], -1), 2 if per_channel else None
    else:
        flat, axis = w, 1 if per_channel_dense else None
    other = tuple(i for i in range(flat.ndim) if i != axis)
    half_range = np.maximum(np.atleast_1d(np.abs(flat).max(axis=other)).astype(F32), _MIN_HALF_RANGE)
    scales = (half_range / F32(127.0)).astype(F32)
    if b is not None:
        scales, half_range = _widen_for_bias(scales, half_range, b, s_in)
    if axis is None:   # the converter's per-tensor path multiplies by 127 / range, its per-axis path by 1 / scale
        inverse = (F32(127.0) / half_range).astype(F32).reshape((1,) * flat.ndim)
    else:
        inverse = Q.reciprocal_f32(scales).reshape(tuple(-1 if i == axis else 1 for i in range(flat.ndim)))
    q = np.clip(Q.round_half_away((flat * inverse).astype(F32)), -127, 127).astype(np.int8)
    w_axis = None if scales.size == 1 else (2 if op.type == "depthwise_conv2d" else w.ndim - 1)
    op.inputs[1] = _replace_const(g, op, w_name, q.reshape(w.shape),
                                  QuantParams(scales, np.zeros(scales.size, np.int64), w_axis))
    if b is not None:
        b_scale = (F32(s_in) * scales).astype(F32)
        bq = Q.quantize_bias(b, np.broadcast_to(b_scale, b.shape))
        op.inputs[2] = _replace_const(g, op, b_name, bq, QuantParams(b_scale, np.zeros(b_scale.size, np.int64),
                                                                       None if b_scale.size == 1 else 0))


def _widen_for_bias(scales: np.ndarray, half_range: np.ndarray, bias: np.ndarray, s_in):
    """Widen the weight ranges whose int32 bias (bias / (s_in * s_w)) would not fit, as the converter does.

    Per channel the new scale is 2 |b| / ((2^31 - 1) * s_in) in double (the converter's float32 is one ulp
    larger on about 1 in 200 widened channels); per tensor the new half range is that times 127, rounded to
    float32, and the scale half range / 127 in float32. Returns (scales, half ranges)."""
    s_in = float(F32(s_in))
    scales, half_range = scales.copy(), half_range.copy()
    k = float(_BIAS_LIMIT)
    if scales.size > 1:
        for c in range(scales.size):
            mag = abs(float(bias[c]))
            if mag >= 0.5 * s_in * float(scales[c]) * k:
                scales[c] = F32(2.0 * mag / k * (127.0 / s_in) / 127.0)
    else:
        biggest = F32(np.abs(bias).max()) if bias.size else F32(0.0)
        if float(F32(biggest / F32(k))) >= 0.5 * s_in * float(scales[0]):
            half_range[0] = F32(2.0 * float(biggest) / k * (127.0 / s_in))
            scales[0] = F32(half_range[0] / F32(127.0))
    return scales, half_range


def _quantize_const_operand(g: Graph, op: Op, name: str, data) -> str:
    data = np.asarray(data, dtype=F32)
    scale, zp = Q.choose_qparams(float(data.min()), float(data.max()))
    return _replace_const(g, op, name, Q.quantize_float(data, scale, zp), QuantParams(scale, zp))


def _replace_const(g: Graph, op: Op, name: str, data: np.ndarray, quant: QuantParams) -> str:
    """Store a quantized constant under the float constant's name (float values are read from the source
    graph, so the first reader may overwrite it). Another reader of the same constant shares that tensor when
    its result is identical and gets "<name>/<op>" otherwise (a bias depends on its reader's input scale)."""
    t = g.tensors[name]
    if t.dtype == "float32":
        t.data, t.dtype, t.shape, t.quant = data, str(data.dtype), tuple(data.shape), quant
        return name
    for other in (name, *(n for n in g.tensors if n.startswith(f"{name}/"))):
        if _same_const(g.tensors[other], data, quant):
            return other
    return g.add_const(f"{name}/{op.name}", data, quant=quant)


def _same_const(t, data: np.ndarray, quant: QuantParams) -> bool:
    return (t.data.dtype == data.dtype and np.array_equal(t.data, data) and t.quant is not None
            and t.quant.axis == quant.axis and np.array_equal(t.quant.scale, quant.scale)
            and np.array_equal(t.quant.zero_point, quant.zero_point))


def _canonical_attrs(g: Graph, op: Op) -> None:
    """The attrs the TFLite frontend gives the same op (defaults filled in, tuples, no stale alpha)."""
    a = op.attrs
    if op.type in _FUSABLE_TYPES:
        a["activation"] = None if a.get("activation") in _NO_ACT else a["activation"]
        if "alpha" in a:
            del a["alpha"]
    if op.type in ("conv2d", "depthwise_conv2d"):
        a["stride"] = _ints(a.get("stride", (1, 1)))
        a["dilation"] = _ints(a.get("dilation", (1, 1)))
        a["pads"] = _ints(a.get("pads", (0, 0, 0, 0)))
    elif op.type in ("max_pool2d", "avg_pool2d"):
        a["kernel"] = _ints(a["kernel"])
        a["stride"] = _ints(a.get("stride", a["kernel"]))
        a["pads"] = _ints(a.get("pads", (0, 0, 0, 0)))
    elif op.type == "concat":
        a["axis"] = int(a.get("axis", -1)) % len(g.tensors[op.outputs[0]].shape)
    elif op.type == "reshape":
        a["shape"] = tuple(g.tensors[op.outputs[0]].shape[1:])
    elif op.type == "softmax":
        a["beta"] = float(a.get("beta", 1.0))
    elif op.type == "pad":
        a["pads"], a["value"] = _ints(a["pads"]), float(a.get("value", 0.0))
    elif op.type == "mean":
        rank = len(g.tensors[op.inputs[0]].shape)
        a["axes"] = tuple(sorted({int(x) % rank for x in a["axes"]}))
        a["keepdims"] = bool(a.get("keepdims"))
    elif op.type in ("global_avg_pool", "global_max_pool"):
        a["keepdims"] = bool(a.get("keepdims"))


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in values)


# ---- metadata -----------------------------------------------------------------------------------------------
def _fill_meta(g: Graph, source: Graph, ranges: Mapping) -> None:
    meta = dict(source.meta)
    meta.pop("tflite_tensors", None)    # indices of a float .tflite file: meaningless for the int8 graph
    meta.setdefault("framework", None)
    meta.setdefault("source", None)
    meta.setdefault("source_format", None)
    meta.setdefault("framework_version", None)
    meta.setdefault("preprocessing", {})
    meta["input_names"] = list(g.inputs)
    meta["output_names"] = list(g.outputs)
    meta["quantized"] = True
    meta["input_quant"] = {n: g.tensors[n].quant.to_json() for n in g.inputs}
    meta["output_quant"] = {n: g.tensors[n].quant.to_json() for n in g.outputs}
    meta["float_interface"] = {"inputs": list(g.inputs), "outputs": list(g.outputs)}
    meta["calibration"] = {"method": getattr(ranges, "method", None),
                           "options": dict(getattr(ranges, "options", {}) or {}),
                           "samples": getattr(ranges, "samples", None)}
    g.meta = meta


__all__ = ["SUPPORTED_ACTIVATIONS", "SUPPORTED_OPS", "prepare_for_int8", "quantize_graph"]
