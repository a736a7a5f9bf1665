"""activation: a standalone elementwise activation; attrs: function, alpha (leaky_relu slope).

Producers (conv2d, depthwise_conv2d, dense, pools, add) also accept the same function as the fused
attrs 'activation'/'alpha'; the fuse_activation pass moves standalone ones there.
"""
from __future__ import annotations

from . import OpDef
from ._common import apply_activation


def infer_shapes(graph, op):
    return [graph.tensors[op.inputs[0]].shape]


def reference(op, inputs):
    return [apply_activation(inputs[0], op.attrs["function"], op.attrs.get("alpha", 0.2))]


OPS = [OpDef("activation", infer_shapes, reference, doc=__doc__)]
