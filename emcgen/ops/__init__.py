"""Operator registry: one module per op type, each with shape inference, MAC count and a float reference.

An op module defines `OPS`, a list of OpDef. The float `reference` functions are the float truth of the
project (calibration and every accuracy figure use them); they are vectorized numpy and were checked
against TensorFlow to 1e-4 (tests/ops). Integer semantics live with the targets that define them
(emcgen.tflite_int8 for TFLite/CMSIS-NN, emcgen.kmodel.emulator for the K210 KPU).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import UnsupportedError


@dataclass(frozen=True)
class OpDef:
    """What the compiler knows about one op type.

    infer_shapes(graph, op) -> list of output shapes (batch 1).
    reference(op, inputs) -> list of float32 output arrays; inputs are numpy arrays in op.inputs order
        (constants included), activations with any batch size.
    macs(graph, op) -> multiply-accumulates for one inference (0 for data movement).
    """

    type: str
    infer_shapes: Callable
    reference: Callable
    macs: Callable = lambda graph, op: 0
    doc: str = ""


_MODULES = [
    "conv2d", "depthwise_conv2d", "dense", "pool2d", "global_pool", "elementwise", "concat",
    "reshape", "pad", "softmax", "activation", "batch_norm", "identity", "upsample", "mean",
]

REGISTRY: dict[str, OpDef] = {}
for _m in _MODULES:
    for _d in importlib.import_module(f"{__name__}.{_m}").OPS:
        REGISTRY[_d.type] = _d


def get(op_type: str) -> OpDef:
    try:
        return REGISTRY[op_type]
    except KeyError:
        raise UnsupportedError(
            f"op type {op_type!r} is not known; known: {', '.join(sorted(REGISTRY))}") from None


def infer_shapes(graph) -> None:
    """Recompute every activation shape from the graph inputs (after a frontend or a pass)."""
    for op in graph.ops:
        shapes = get(op.type).infer_shapes(graph, op)
        for name, shape in zip(op.outputs, shapes, strict=True):
            graph.tensors[name].shape = tuple(int(d) for d in shape)
