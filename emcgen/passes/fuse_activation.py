"""fuse_activation: move a standalone activation into the op that produces its input.

Legal when the producer supports a fused activation, has none yet, and the activation is the only
reader of the producer's output. Targets then see conv+relu as one layer, as TFLite and the KPU do.
"""
from __future__ import annotations

from ..ir import Graph
from ._util import has_activation, sole_consumer

FUSABLE = ("conv2d", "depthwise_conv2d", "dense", "add", "max_pool2d", "avg_pool2d", "mul", "sub")


def fuse_activation(graph: Graph) -> Graph:
    g = graph.copy()
    for act in [op for op in g.ops if op.type == "activation"]:
        prod = g.producer(act.inputs[0])
        if prod is None or prod.type not in FUSABLE or has_activation(prod):
            continue
        if sole_consumer(g, act.inputs[0]) is not act:
            continue
        prod.attrs["activation"] = act.attrs["function"]
        if "alpha" in act.attrs:
            prod.attrs["alpha"] = act.attrs["alpha"]
        old_out = prod.outputs[0]
        prod.outputs = [act.outputs[0]]
        g.remove_op(act)
        del g.tensors[old_out]
    return g
