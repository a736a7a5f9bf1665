"""fold_batchnorm: fold an inference BatchNorm into the conv2d / depthwise_conv2d / dense before it.

y = gamma * (conv(x) + b - mean) / sqrt(var + eps) + beta  ==  conv'(x) + b'  with the weights of each
output channel scaled by gamma / sqrt(var + eps). Legal when the producer has no fused activation and the
BatchNorm is its only reader; the BatchNorm's own activation moves onto the producer.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ops.batch_norm import scale_and_offset
from ._util import has_activation, sole_consumer

FOLDABLE = ("conv2d", "depthwise_conv2d", "dense")


def fold_batchnorm(graph: Graph) -> Graph:
    g = graph.copy()
    for bn in [op for op in g.ops if op.type == "batch_norm"]:
        prod = g.producer(bn.inputs[0])
        if prod is None or prod.type not in FOLDABLE or has_activation(prod):
            continue
        if sole_consumer(g, bn.inputs[0]) is not bn:
            continue
        gamma, beta, mean, var = (g.const(n) for n in bn.inputs[1:5])
        if any(a is None for a in (gamma, beta, mean, var)):
            continue
        scale, offset = scale_and_offset(gamma, beta, mean, var, bn.attrs.get("epsilon", 1e-3))
        w = g.const(prod.inputs[1]).astype(np.float32)
        if prod.type == "depthwise_conv2d":
            kh, kw, c, m = w.shape
            w = (w.reshape(kh, kw, c * m) * scale).reshape(kh, kw, c, m)
        else:
            w = w * scale            # last axis is the output channel for HWIO and (IN, OUT)
        bias_name = prod.inputs[2] if len(prod.inputs) > 2 else ""
        b = g.const(bias_name) if bias_name else None
        b = np.zeros_like(scale) if b is None else b.astype(np.float32)
        new_w = g.add_const(f"{prod.name}/folded_weights", w.astype(np.float32))
        new_b = g.add_const(f"{prod.name}/folded_bias", (b * scale + offset).astype(np.float32))
        prod.inputs = [prod.inputs[0], new_w, new_b]
        prod.attrs["activation"] = bn.attrs.get("activation")
        if "alpha" in bn.attrs:
            prod.attrs["alpha"] = bn.attrs["alpha"]
        # the producer now writes the BatchNorm's output tensor
        old_out = prod.outputs[0]
        prod.outputs = [bn.outputs[0]]
        g.remove_op(bn)
        del g.tensors[old_out]
    g.prune()
    return g
