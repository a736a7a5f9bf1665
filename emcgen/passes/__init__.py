"""Graph passes: each is a function Graph -> Graph that returns a rewritten copy.

The default pipeline turns what a frontend produced into the canonical form every target expects:
no identity/dropout ops, BatchNorm folded into the conv/dense before it, activations fused into their
producer, zero padding folded into the following convolution, and a single reshape per flatten.
Passes never change what the float graph computes (tests/passes compare the interpreter before/after).
"""
from __future__ import annotations

from collections.abc import Callable

from ..ir import Graph
from .canonicalize_reshape import canonicalize_reshape
from .drop_identity import drop_identity
from .fold_batchnorm import fold_batchnorm
from .fold_pad import fold_pad
from .fuse_activation import fuse_activation

Pass = Callable[[Graph], Graph]

DEFAULT_PIPELINE: list[Pass] = [
    drop_identity,
    canonicalize_reshape,
    fold_batchnorm,
    fuse_activation,
    fold_pad,
]


def optimize(graph: Graph, pipeline: list[Pass] | None = None) -> Graph:
    """Run the passes in order (the default pipeline unless one is given); returns a new graph."""
    for p in DEFAULT_PIPELINE if pipeline is None else pipeline:
        graph = p(graph)
    graph.validate()
    return graph


__all__ = ["optimize", "DEFAULT_PIPELINE", "drop_identity", "canonicalize_reshape", "fold_batchnorm",
           "fuse_activation", "fold_pad"]
