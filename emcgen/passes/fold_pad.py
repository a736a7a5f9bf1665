"""fold_pad: fold a zero `pad` op into the explicit pads of the conv2d / depthwise_conv2d after it.

Legal only for zero padding in front of a convolution (a padded zero contributes nothing either way);
not for pools, where padded cells are excluded rather than zero.
"""
from __future__ import annotations

from ..ir import Graph
from ._util import sole_consumer

TAKES_PADS = ("conv2d", "depthwise_conv2d")


def fold_pad(graph: Graph) -> Graph:
    g = graph.copy()
    for pad in [op for op in g.ops if op.type == "pad"]:
        if float(pad.attrs.get("value", 0.0)) != 0.0:
            continue
        conv = sole_consumer(g, pad.outputs[0])
        if conv is None or conv.type not in TAKES_PADS or conv.inputs[0] != pad.outputs[0]:
            continue
        conv.attrs["pads"] = tuple(a + b for a, b in zip(conv.attrs.get("pads", (0, 0, 0, 0)),
                                                          pad.attrs["pads"], strict=True))
        conv.inputs[0] = pad.inputs[0]
        g.remove_op(pad)
        del g.tensors[pad.outputs[0]]
    return g
