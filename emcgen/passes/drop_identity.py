"""drop_identity: remove identity ops (Dropout at inference, copies) and no-op activations."""
from __future__ import annotations

from ..ir import Graph
from ._util import bypass


def drop_identity(graph: Graph) -> Graph:
    g = graph.copy()
    for op in list(g.ops):
        linear = op.type == "activation" and op.attrs.get("function") in (None, "linear", "identity")
        if op.type == "identity" or linear:
            bypass(g, op)
    return g
