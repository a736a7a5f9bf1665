"""Float reference interpreter: runs an IR graph with the numpy op references.

It is the float truth of the project: calibration statistics, accuracy figures and the expected values in
generated test programs all come from here. Inputs may carry any batch size; memory is released as soon
as a tensor's last consumer has run, unless the caller asks to keep everything.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from . import ops as oplib
from .errors import EmcError
from .ir import Graph


def bind_inputs(graph: Graph, inputs) -> dict[str, np.ndarray]:
    """Map the caller's inputs (one array, a list in graph-input order, or a dict by name) to the graph's
    input names, checking that each is a batch of the model's input shape. Shared by both interpreters."""
    if isinstance(inputs, dict):
        values = dict(inputs)
    else:
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        if len(inputs) != len(graph.inputs):
            raise EmcError(f"model {graph.name!r} has {len(graph.inputs)} inputs, {len(inputs)} given")
        values = dict(zip(graph.inputs, inputs, strict=True))
    for name in graph.inputs:
        if name not in values:
            raise EmcError(f"no value given for model input {name!r}")
        want = graph.tensors[name].shape[1:]
        got = np.asarray(values[name])
        if got.shape[1:] != tuple(want):
            expect = ", ".join(map(str, want))
            raise EmcError(f"input {name!r} has shape {got.shape}; the model expects (N, {expect})")
        values[name] = got
    return values


def run(graph: Graph, inputs, *, keep_all: bool = False,
        observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
    """Execute the graph. Returns {tensor name: value} for the outputs (or every activation if keep_all).

    observe(name, value) is called for every graph input and every op output as it is produced
    (calibration collects its statistics this way without keeping whole batches alive).
    """
    values = {n: v.astype(np.float32, copy=False) for n, v in bind_inputs(graph, inputs).items()}
    if observe:
        for name in graph.inputs:
            observe(name, values[name])
    last_use: dict[str, int] = {}
    for i, op in enumerate(graph.ops):
        for n in op.inputs:
            last_use[n] = i
    keep = set(graph.outputs)
    for i, op in enumerate(graph.ops):
        args = []
        for n in op.inputs:
            if not n:
                args.append(None)
            elif n in values:
                args.append(values[n])
            else:
                args.append(graph.tensors[n].data)
        outs = oplib.get(op.type).reference(op, args)
        for name, value in zip(op.outputs, outs, strict=True):
            values[name] = value
            if observe:
                observe(name, value)
        if not keep_all:
            for n in op.inputs:
                if n and last_use.get(n) == i and n not in keep and n in values:
                    del values[n]
    if keep_all:
        return values
    return {n: values[n] for n in graph.outputs}


def predict(graph: Graph, x, batch_size: int = 128) -> list[np.ndarray]:
    """Outputs for a batch of inputs (array or list of arrays, batch first), computed in chunks of
    batch_size (chunks of ~128 keep the im2col buffers in cache: about 2x faster than one big batch)."""
    xs: Sequence[np.ndarray] = [x] if isinstance(x, np.ndarray) else list(x)
    n = xs[0].shape[0]
    chunks: list[list[np.ndarray]] = [[] for _ in graph.outputs]
    for start in range(0, n, batch_size):
        out = run(graph, [a[start:start + batch_size] for a in xs])
        for k, name in enumerate(graph.outputs):
            chunks[k].append(out[name])
    return [np.concatenate(c, axis=0) for c in chunks]
