"""identity: passes its input through (Dropout at inference, Keras InputLayer copies, etc.)."""
from __future__ import annotations

from . import OpDef


def infer_shapes(graph, op):
    return [graph.tensors[op.inputs[0]].shape]


def reference(op, inputs):
    return [inputs[0]]


OPS = [OpDef("identity", infer_shapes, reference, doc=__doc__)]
