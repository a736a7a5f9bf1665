"""batch_norm (inference): y = gamma * (x - mean) / sqrt(var + epsilon) + beta over the last axis.

inputs: x, gamma, beta, mean, var (each (C,)); attrs: epsilon, activation.
The fold_batchnorm pass folds it into the preceding conv/dense when it can.
"""
from __future__ import annotations

import numpy as np

from . import OpDef
from ._common import fused


def infer_shapes(graph, op):
    return [graph.tensors[op.inputs[0]].shape]


def scale_and_offset(gamma, beta, mean, var, epsilon):
    """The affine form y = x * scale + offset, computed in float32 as TensorFlow does."""
    f32 = np.float32
    scale = gamma.astype(f32) / np.sqrt(var.astype(f32) + f32(epsilon))
    offset = beta.astype(f32) - mean.astype(f32) * scale
    return scale.astype(f32), offset.astype(f32)


def reference(op, inputs):
    x, gamma, beta, mean, var = inputs
    f32 = np.float32
    inv = f32(1) / np.sqrt(var.astype(f32) + f32(op.attrs.get("epsilon", 1e-3)))
    y = (x.astype(f32) - mean.astype(f32)) * (inv * gamma.astype(f32)) + beta.astype(f32)
    return [fused(op, y.astype(f32))]


OPS = [OpDef("batch_norm", infer_shapes, reference, doc=__doc__)]
