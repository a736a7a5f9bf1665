"""Small graph-matching helpers shared by the passes."""
from __future__ import annotations

from ..ir import Graph, Op


def sole_consumer(graph: Graph, tensor: str) -> Op | None:
    """The only op reading `tensor`, or None if it has several readers or is a graph output."""
    if tensor in graph.outputs:
        return None
    users = graph.consumers(tensor)
    return users[0] if len(users) == 1 else None


def bypass(graph: Graph, op: Op) -> None:
    """Remove a single-input pass-through op, rewiring its readers to its input."""
    src, dst = op.inputs[0], op.outputs[0]
    graph.remove_op(op)
    if dst in graph.outputs and src in graph.inputs:
        # keep a graph output distinct from a graph input: nothing to bypass then
        graph.ops.append(op)
        return
    graph.replace_uses(dst, src)
    del graph.tensors[dst]


def has_activation(op: Op) -> bool:
    return op.attrs.get("activation") not in (None, "", "linear", "identity", "none")
