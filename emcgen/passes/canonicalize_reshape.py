"""canonicalize_reshape: one reshape per flatten/reshape chain, and none that changes nothing.

Frontends emit Flatten as reshape (-1,); chains (Flatten then Reshape) collapse into the last one, and a
reshape whose output shape equals its input shape disappears.
"""
from __future__ import annotations

from ..ir import Graph
from ._util import bypass, sole_consumer


def canonicalize_reshape(graph: Graph) -> Graph:
    g = graph.copy()
    for op in [o for o in g.ops if o.type == "reshape"]:
        nxt = sole_consumer(g, op.outputs[0])
        if nxt is not None and nxt.type == "reshape":
            nxt.inputs[0] = op.inputs[0]
            g.remove_op(op)
            del g.tensors[op.outputs[0]]
    for op in [o for o in g.ops if o.type == "reshape"]:
        if g.tensors[op.inputs[0]].shape == g.tensors[op.outputs[0]].shape:
            bypass(g, op)
    return g
