"""IR op -> the integer parameters of its TFLite int8 kernel (multipliers, shifts, offsets, clamps).

The int8 interpreter and the C code generators (CMSIS-NN) must derive exactly the same integers from a
quantized graph, so both call these functions. Each takes the graph and the op and reads the QuantParams
of its tensors; errors name the op and say what is supported.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Graph, Op
from . import quant as Q


def per_tensor(graph: Graph, name: str, op: Op) -> tuple[np.float32, int]:
    """(scale, zero_point) of an int8 tensor quantized per tensor."""
    t = graph.tensors[name]
    if t.quant is None:
        raise UnsupportedError(f"op {op.name!r}: tensor {name!r} has no quantization parameters; "
                               "int8 execution needs a scale and zero point on every activation")
    if t.quant.scale.size != 1:
        raise UnsupportedError(f"op {op.name!r}: tensor {name!r} is quantized per channel; "
                               "supported for activations: per-tensor")
    return np.float32(t.quant.scale[0]), int(t.quant.zero_point[0])


def check_int8(graph: Graph, op: Op, names) -> None:
    for n in names:
        if n and graph.tensors[n].dtype != "int8":
            raise UnsupportedError(f"op {op.name!r}: tensor {n!r} is {graph.tensors[n].dtype}; "
                                   "int8 execution needs int8 activations and weights")


def weight_scales(graph: Graph, op: Op, n_out: int) -> np.ndarray:
    """Per-output-channel scales of the weights (broadcast from per-tensor); zero points must be 0."""
    w = graph.tensors[op.inputs[1]]
    check_int8(graph, op, [op.inputs[1]])
    if w.quant is None:
        raise UnsupportedError(f"op {op.name!r}: weights {w.name!r} have no quantization parameters")
    if np.any(w.quant.zero_point != 0):
        raise UnsupportedError(f"op {op.name!r}: weights {w.name!r} have a non-zero zero point; "
                               "supported: symmetric int8 weights (TFLite/CMSIS-NN)")
    scales = w.quant.scale.astype(np.float32)
    if scales.size not in (1, n_out):
        raise UnsupportedError(f"op {op.name!r}: weights {w.name!r} have {scales.size} scales for "
                               f"{n_out} output channels")
    return np.broadcast_to(scales, (n_out,)).copy()


def bias(graph: Graph, op: Op) -> np.ndarray | None:
    if len(op.inputs) < 3 or not op.inputs[2]:
        return None
    b = graph.tensors[op.inputs[2]]
    if b.data is None or b.dtype != "int32":
        raise UnsupportedError(f"op {op.name!r}: bias {b.name!r} must be an int32 constant "
                               "for int8 execution")
    return b.data


def conv(graph: Graph, op: Op) -> Q.ConvQuant:
    """conv2d / depthwise_conv2d / dense."""
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    check_int8(graph, op, [x, y])
    shape = graph.tensors[w].shape
    n_out = {"conv2d": shape[-1], "depthwise_conv2d": shape[-2] * shape[-1]}.get(op.type, shape[-1])
    s_in, zp_in = per_tensor(graph, x, op)
    s_out, zp_out = per_tensor(graph, y, op)
    return Q.conv_params(s_in, zp_in, weight_scales(graph, op, n_out), s_out, zp_out,
                         op.attrs.get("activation"))


def output_range(graph: Graph, op: Op) -> tuple[int, int]:
    s, zp = per_tensor(graph, op.outputs[0], op)
    return Q.activation_range(op.attrs.get("activation"), s, zp)


def add(graph: Graph, op: Op) -> Q.AddQuant:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    check_int8(graph, op, [a, b, y])
    return Q.add_params(*per_tensor(graph, a, op), *per_tensor(graph, b, op), *per_tensor(graph, y, op),
                        op.attrs.get("activation"))


def mul(graph: Graph, op: Op) -> Q.MulQuant:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    check_int8(graph, op, [a, b, y])
    return Q.mul_params(*per_tensor(graph, a, op), *per_tensor(graph, b, op), *per_tensor(graph, y, op),
                        op.attrs.get("activation"))


def softmax(graph: Graph, op: Op) -> Q.SoftmaxQuant:
    check_int8(graph, op, [op.inputs[0], op.outputs[0]])
    s_out, zp_out = per_tensor(graph, op.outputs[0], op)
    if (float(s_out), zp_out) != Q.SOFTMAX_OUTPUT:
        raise UnsupportedError(f"op {op.name!r}: int8 softmax output must have scale 1/256 and "
                               "zero point -128, "
                               f"got {float(s_out)!r} and {zp_out}")
    return Q.softmax_params(per_tensor(graph, op.inputs[0], op)[0], op.attrs.get("beta", 1.0))


def requantize(graph: Graph, op: Op, src: str, dst: str) -> tuple[int, int, int, int] | None:
    """(zp_in, zp_out, multiplier, shift) to move src into dst's parameters, or None when they are equal."""
    s_in, zp_in = per_tensor(graph, src, op)
    s_out, zp_out = per_tensor(graph, dst, op)
    if s_in == s_out and zp_in == zp_out:
        return None
    m, s = Q.requantize_params(s_in, s_out)
    return zp_in, zp_out, m, s
