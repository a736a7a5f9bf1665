"""int8 reference interpreter: runs a quantized IR graph with the TFLite int8 kernels.

It is the integer truth of the STM32/CMSIS-NN path: its outputs equal TFLM's byte for byte (tested on the
MLPerf Tiny models layer by layer), and generated C code is checked against it.

Inputs: int8 arrays, batch first, any batch size; or float arrays, which are quantized with the input's
QuantParams exactly as a TFLite QUANTIZE op does (round half away from zero in float32, clamp) — for a
model whose float interface the frontend stripped this reproduces the original model. Outputs are int8;
dequantize them with emcgen.tflite_int8.quant.dequantize and the output's QuantParams.

Semantics per IR op (all as TFLM's reference kernels):
- conv2d, depthwise_conv2d, dense, add, mul, softmax, pad, concat, mean, reshape: the TFLite op;
- max_pool2d, avg_pool2d: no requantization (TFLite ties input and output parameters);
- identity: QUANTIZE int8 -> int8 (a requantization when input and output parameters differ);
- activation: relu, relu6, sigmoid (LOGISTIC), tanh;
- global_avg_pool: AVERAGE_POOL_2D over the whole map when input and output parameters are equal (what
  arm_avgpool_s8 computes), MEAN over H, W otherwise; global_max_pool: MAX_POOL_2D over the whole map.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import EmcError, UnsupportedError
from ..interpreter import bind_inputs
from ..ir import Graph, Op
from . import kernels as K
from . import params as P
from . import quant as Q

Runner = Callable[[list], np.ndarray]


def _windowed(graph: Graph, op: Op) -> Runner:
    q = P.conv(graph, op)
    w = graph.tensors[op.inputs[1]].data
    b = P.bias(graph, op)
    stride, pads = op.attrs.get("stride", (1, 1)), op.attrs.get("pads", (0, 0, 0, 0))
    dilation = op.attrs.get("dilation", (1, 1))
    fn = K.conv2d if op.type == "conv2d" else K.depthwise_conv2d
    return lambda a: fn(a[0], w, b, q, stride, pads, dilation)


def _dense(graph: Graph, op: Op) -> Runner:
    q, w, b = P.conv(graph, op), graph.tensors[op.inputs[1]].data, P.bias(graph, op)
    return lambda a: K.fully_connected(a[0], w, b, q)


def _pool(graph: Graph, op: Op) -> Runner:
    lo, hi = P.output_range(graph, op)
    kernel = op.attrs["kernel"]
    stride, pads = op.attrs.get("stride", kernel), op.attrs.get("pads", (0, 0, 0, 0))
    fn = K.max_pool2d if op.type == "max_pool2d" else K.avg_pool2d
    return lambda a: fn(a[0], kernel, stride, pads, lo, hi)


def _global_pool(graph: Graph, op: Op) -> Runner:
    x, y = op.inputs[0], op.outputs[0]
    _, h, w, _ = graph.tensors[x].shape
    keep = bool(op.attrs.get("keepdims"))
    lo, hi = P.output_range(graph, op)
    requant = P.requantize(graph, op, x, y)

    def shape(out):
        return out if keep else out.reshape(out.shape[0], out.shape[3])

    if op.type == "global_max_pool":
        return lambda a: shape(K.max_pool2d(a[0], (h, w), (h, w), (0, 0, 0, 0), lo, hi))
    if requant is None:
        return lambda a: shape(K.avg_pool2d(a[0], (h, w), (h, w), (0, 0, 0, 0), lo, hi))
    zp_in, zp_out, m, s = requant
    return lambda a: np.clip(K.mean(a[0], (1, 2), keep, zp_in, zp_out, m, s), lo, hi).astype(np.int8)


def _add(graph: Graph, op: Op) -> Runner:
    q = P.add(graph, op)
    return lambda a: K.add(a[0], a[1], q)


def _mul(graph: Graph, op: Op) -> Runner:
    q = P.mul(graph, op)
    return lambda a: K.mul(a[0], a[1], q)


def _softmax(graph: Graph, op: Op) -> Runner:
    q = P.softmax(graph, op)
    return lambda a: K.softmax(a[0], q)


def _requantizer(graph: Graph, op: Op, src: str, dst: str):
    r = P.requantize(graph, op, src, dst)
    if r is None:
        return lambda x: x
    return lambda x: K.requantize_int8(x, *r)


def _identity(graph: Graph, op: Op) -> Runner:
    P.check_int8(graph, op, [op.inputs[0], op.outputs[0]])
    f = _requantizer(graph, op, op.inputs[0], op.outputs[0])
    return lambda a: f(a[0])


def _concat(graph: Graph, op: Op) -> Runner:
    P.check_int8(graph, op, op.inputs + op.outputs)
    if op.attrs.get("activation"):
        raise UnsupportedError(f"op {op.name!r}: a fused activation on an int8 concat is not supported")
    fs = [_requantizer(graph, op, n, op.outputs[0]) for n in op.inputs]
    axis = op.attrs.get("axis", -1)
    return lambda a: K.concatenation([f(x) for f, x in zip(fs, a, strict=True)], axis)


def _reshape(graph: Graph, op: Op) -> Runner:
    shape = tuple(graph.tensors[op.outputs[0]].shape[1:])
    return lambda a: a[0].reshape((a[0].shape[0],) + shape)


def _pad(graph: Graph, op: Op) -> Runner:
    s, zp = P.per_tensor(graph, op.outputs[0], op)
    value = int(np.clip(Q.quantize_scalar(op.attrs.get("value", 0.0), s, zp), Q.QMIN, Q.QMAX))
    pads = op.attrs["pads"]
    return lambda a: K.pad(a[0], pads, value)


def _mean(graph: Graph, op: Op) -> Runner:
    P.check_int8(graph, op, [op.inputs[0], op.outputs[0]])
    s_in, zp_in = P.per_tensor(graph, op.inputs[0], op)
    s_out, zp_out = P.per_tensor(graph, op.outputs[0], op)
    m, s = Q.requantize_params(s_in, s_out)
    axes, keep = tuple(op.attrs["axes"]), bool(op.attrs.get("keepdims"))
    return lambda a: K.mean(a[0], axes, keep, zp_in, zp_out, m, s)


def _activation(graph: Graph, op: Op) -> Runner:
    x, y = op.inputs[0], op.outputs[0]
    P.check_int8(graph, op, [x, y])
    fn = op.attrs["function"]
    s_in, zp_in = P.per_tensor(graph, x, op)
    s_out, zp_out = P.per_tensor(graph, y, op)
    if fn == "relu":
        m, s = Q.relu_params(s_in, s_out)
        return lambda a: K.relu(a[0], zp_in, zp_out, m, s, max(Q.QMIN, zp_out), Q.QMAX)
    if fn == "relu6":
        six = int(np.clip(Q.quantize_scalar(6.0, s_in, zp_in), Q.QMIN, Q.QMAX))
        return lambda a: K.relu6(a[0], zp_in, six)
    if fn in ("sigmoid", "tanh"):
        want = (1.0 / 256.0, -128) if fn == "sigmoid" else (1.0 / 128.0, 0)
        if (float(s_out), zp_out) != want:
            raise UnsupportedError(f"op {op.name!r}: int8 {fn} output must have scale {want[0]} and "
                                   f"zero point "
                                   f"{want[1]}, got {float(s_out)!r} and {zp_out}")
        p = Q.logistic_tanh_params(s_in, zp_in)
        kernel = K.logistic if fn == "sigmoid" else K.tanh
        return lambda a: kernel(a[0], p)
    raise UnsupportedError(f"op {op.name!r}: activation {fn!r} has no int8 kernel; supported: relu, relu6, "
                           "sigmoid, tanh")


_PREPARE: dict[str, Callable[[Graph, Op], Runner]] = {
    "conv2d": _windowed, "depthwise_conv2d": _windowed, "dense": _dense,
    "max_pool2d": _pool, "avg_pool2d": _pool,
    "global_avg_pool": _global_pool, "global_max_pool": _global_pool,
    "add": _add, "mul": _mul, "softmax": _softmax, "identity": _identity, "concat": _concat,
    "reshape": _reshape, "pad": _pad, "mean": _mean, "activation": _activation,
}


def prepare(graph: Graph) -> list[tuple[Op, Runner]]:
    """Turn every op into a closure over its integer parameters (done once per run_int8 call)."""
    plan = []
    for op in graph.ops:
        if op.type not in _PREPARE:
            raise UnsupportedError(f"op {op.name!r} of type {op.type!r} has no int8 kernel; supported: "
                                   f"{', '.join(sorted(_PREPARE))}")
        plan.append((op, _PREPARE[op.type](graph, op)))
    return plan


def _bind_inputs(graph: Graph, inputs) -> dict[str, np.ndarray]:
    values = bind_inputs(graph, inputs)
    for name in graph.inputs:
        x = values[name]
        if x.dtype == np.int8:
            values[name] = x
        elif np.issubdtype(x.dtype, np.floating):
            s, zp = P.per_tensor(graph, name, Op("input", name, [], [name]))
            values[name] = Q.quantize_float(x, s, zp)
        else:
            raise EmcError(f"input {name!r} is {x.dtype}; give int8 values or float values to be quantized")
    return values


def run_int8(graph: Graph, inputs, keep_all: bool = False, batch_size: int = 64) -> dict[str, np.ndarray]:
    """Execute a quantized graph. Returns {name: int8 array} for the outputs (every activation if keep_all).

    Large batches run in chunks of batch_size items to bound the memory of the im2col buffers; the
    results are the same as one call per item.
    """
    values = _bind_inputs(graph, inputs)
    plan = prepare(graph)
    n = next(iter(values.values())).shape[0] if values else 0
    if n <= batch_size:
        return _execute(graph, plan, values, keep_all)
    parts = [_execute(graph, plan, {k: v[i:i + batch_size] for k, v in values.items()}, keep_all)
             for i in range(0, n, batch_size)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _execute(graph: Graph, plan, values: dict[str, np.ndarray], keep_all: bool) -> dict[str, np.ndarray]:
    values = dict(values)
    last_use: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        for n in op.inputs:
            last_use[n] = i
    keep = set(graph.outputs)
    for i, (op, run) in enumerate(plan):
        args = [values[n] if n in values else graph.tensors[n].data for n in op.inputs if n]
        values[op.outputs[0]] = run(args)
        if not keep_all:
            for n in op.inputs:
                if n and last_use.get(n) == i and n not in keep and n in values:
                    del values[n]
    if keep_all:
        return values
    return {n: values[n] for n in graph.outputs}
