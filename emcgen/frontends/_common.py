"""What the TensorLayer and Keras frontends share: layer records, activations and the IR builder.

Why records: a model arrives either as an in-memory object or as a file, and both are reduced to the same
list of `Record`s (class name, config dict, weights by short name, input record names). One converter
table per framework turns records into ops, so the object walker and the file reader cannot drift apart.
Nothing here imports TensorFlow.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import ops as oplib
from ..errors import UnsupportedError
from ..ir import Graph
from ..ops._common import pair, resolve_pads

# Ops whose reference applies the fused attrs 'activation'/'alpha' (see emcgen.ops).
FUSABLE = {"conv2d", "depthwise_conv2d", "dense", "max_pool2d", "avg_pool2d", "global_avg_pool",
           "global_max_pool", "add", "mul", "sub", "concat", "batch_norm"}


@dataclass
class Record:
    """One layer call: `inputs` are names of the records whose outputs it reads."""

    name: str
    kind: str
    config: dict[str, Any]
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)

    def fail(self, what: str, supported: str | None = None) -> UnsupportedError:
        tail = f"; supported: {supported}" if supported else ""
        return UnsupportedError(f"layer {self.name!r} ({self.kind}): {what}{tail}")

    def weight(self, *names: str, required: bool = True) -> np.ndarray | None:
        """The first weight present under one of `names` (short names such as 'kernel', 'filters')."""
        for n in names:
            if n in self.weights:
                return np.asarray(self.weights[n], dtype=np.float32)
        if required:
            have = ", ".join(sorted(self.weights)) or "none"
            raise self.fail(f"weight {names[0]!r} is missing (weights present: {have})")
        return None


@dataclass(frozen=True)
class Act:
    """A normalized activation: name is None (linear), 'softmax' or one of emcgen.ops._common.ACTIVATIONS."""

    name: str | None = None
    alpha: float = 0.2


LINEAR = Act()


def short_weight_name(name: str) -> str:
    """'conv1/filters:0' -> 'filters'; 'sequential/dense/kernel' -> 'kernel'."""
    return str(name).split("/")[-1].split(":")[0]


def fixed_pads_2d(padding, rec: Record) -> tuple[int, int, int, int]:
    """Keras/TensorLayer ZeroPadding2D `padding` (int, (h, w) or ((t, b), (l, r))) -> (t, b, l, r)."""
    try:
        if isinstance(padding, int | np.integer):
            p = int(padding)
            return p, p, p, p
        a, b = padding
        if isinstance(a, int | np.integer) and isinstance(b, int | np.integer):
            return int(a), int(a), int(b), int(b)
        (t, bo), (lf, r) = a, b
        return int(t), int(bo), int(lf), int(r)
    except (TypeError, ValueError):
        raise rec.fail(f"padding {padding!r} is not understood",
                       "an int, (h, w) or ((top, bottom), (left, right))") from None


class Builder:
    """Appends ops to a Graph layer by layer, inferring shapes as it goes (SAME pads need them).

    Naming: the first op of a layer is named after the layer, later ones '<layer>/<type>'; the layer's
    final tensor carries the layer name, intermediate tensors '<layer>/<type>'; constants
    '<layer>/<weight>'.
    """

    def __init__(self, name: str):
        self.graph = Graph(name=name)
        self.outputs: dict[str, str] = {}     # record name -> tensor name
        self._layer: Record | None = None
        self._layer_ops: list = []
        self._op_names: set[str] = set()

    # ---- tensors --------------------------------------------------------------------------------
    def input(self, rec: Record, shape) -> str:
        dims = list(shape)
        if any(d is None or int(d) <= 0 for d in dims[1:]):
            raise rec.fail(f"input shape {tuple(dims)} has unknown dimensions; give the input a fixed shape")
        if len(dims) < 2:
            raise rec.fail(f"input shape {tuple(dims)} has no batch dimension")
        shape = (1,) + tuple(int(d) for d in dims[1:])
        name = self.graph.unique_name(rec.name)
        self.graph.add_tensor(name, shape)
        self.graph.inputs.append(name)
        return name

    def const(self, suffix: str, data) -> str:
        return self.graph.add_const(f"{self._layer.name}/{suffix}", np.asarray(data, dtype=np.float32))

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self.graph.tensors[tensor].shape

    # ---- ops ------------------------------------------------------------------------------------
    def op(self, type: str, inputs: list[str], **attrs) -> str:
        """Emit one op of the current layer; returns its output tensor."""
        layer = self._layer.name
        name = layer if not self._layer_ops else f"{layer}/{type}"
        base, i = name, 1
        while name in self._op_names:
            name, i = f"{base}_{i}", i + 1
        self._op_names.add(name)
        out = self.graph.unique_name(f"{layer}/{type}")
        self.graph.add_tensor(out, ())
        op = self.graph.add_op(type, name, inputs, [out], **attrs)
        try:
            (shape,) = oplib.get(type).infer_shapes(self.graph, op)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            ins = ", ".join(str(self.shape(n)) for n in inputs if n)
            raise self._layer.fail(f"cannot apply {type} to inputs of shape {ins} ({exc})") from None
        self.graph.tensors[out].shape = tuple(int(d) for d in shape)
        self._layer_ops.append(op)
        return out

    def activate(self, x: str, act: Act) -> str:
        """Apply `act` to x: fused into the op of this layer that produced x when it can be."""
        if act.name is None:
            return x
        if act.name == "softmax":
            return self.op("softmax", [x])
        producer = self._layer_ops[-1] if self._layer_ops else None
        if (producer is not None and producer.outputs[0] == x and producer.type in FUSABLE
                and not producer.attrs.get("activation")):
            producer.attrs["activation"] = act.name
            if act.name == "leaky_relu":
                producer.attrs["alpha"] = float(act.alpha)
            return x
        attrs = {"function": act.name}
        if act.name == "leaky_relu":
            attrs["alpha"] = float(act.alpha)
        return self.op("activation", [x], **attrs)

    # ---- shared layer shapes --------------------------------------------------------------------
    def conv2d(self, x, kernel, bias, strides, padding, dilation=(1, 1), act: Act = LINEAR) -> str:
        kh, kw = kernel.shape[:2]
        stride, dil = pair(strides), pair(dilation)
        pads = resolve_pads(padding, self.shape(x)[1:3], (kh, kw), stride, dil)
        self._check_channels(x, kernel.shape[2])
        ins = [x, self.const("kernel", kernel), self.const("bias", bias) if bias is not None else ""]
        y = self.op("conv2d", ins, stride=stride, pads=pads, dilation=dil)
        return self.activate(y, act)

    def depthwise_conv2d(self, x, kernel, bias, strides, padding, dilation=(1, 1), act: Act = LINEAR) -> str:
        kh, kw = kernel.shape[:2]
        stride, dil = pair(strides), pair(dilation)
        pads = resolve_pads(padding, self.shape(x)[1:3], (kh, kw), stride, dil)
        self._check_channels(x, kernel.shape[2])
        ins = [x, self.const("depthwise_kernel", kernel), self.const("bias", bias) if bias is not None else ""]
        y = self.op("depthwise_conv2d", ins, stride=stride, pads=pads, dilation=dil)
        return self.activate(y, act)

    def dense(self, x, kernel, bias, act: Act = LINEAR) -> str:
        shape = self.shape(x)
        if len(shape) != 2:
            raise self._layer.fail(f"input has shape {shape}; Dense needs a rank-2 (N, features) input")
        if shape[1] != kernel.shape[0]:
            raise self._layer.fail(f"input has {shape[1]} features but the kernel expects {kernel.shape[0]}")
        ins = [x, self.const("kernel", kernel), self.const("bias", bias) if bias is not None else ""]
        return self.activate(self.op("dense", ins), act)

    def batch_norm(self, x, gamma, beta, mean, var, epsilon, act: Act = LINEAR) -> str:
        c = self.shape(x)[-1]
        mean = np.asarray(mean, np.float32).reshape(-1)
        var = np.asarray(var, np.float32).reshape(-1)
        gamma = np.ones(c, np.float32) if gamma is None else np.asarray(gamma, np.float32).reshape(-1)
        beta = np.zeros(c, np.float32) if beta is None else np.asarray(beta, np.float32).reshape(-1)
        for what, v in (("gamma", gamma), ("beta", beta), ("moving mean", mean), ("moving variance", var)):
            if v.shape != (c,):
                raise self._layer.fail(f"{what} has {v.size} values for {c} channels")
        ins = [x, self.const("gamma", gamma), self.const("beta", beta), self.const("moving_mean", mean),
               self.const("moving_variance", var)]
        return self.activate(self.op("batch_norm", ins, epsilon=float(epsilon)), act)

    def pool2d(self, x, kind: str, kernel, strides, padding, act: Act = LINEAR) -> str:
        self._check_rank4(x)
        k = pair(kernel)
        s = pair(strides) if strides is not None else k
        pads = resolve_pads(padding, self.shape(x)[1:3], k, s)
        return self.activate(self.op(kind, [x], kernel=k, stride=s, pads=pads), act)

    def global_pool(self, x, kind: str, keepdims=False, act: Act = LINEAR) -> str:
        self._check_rank4(x)
        return self.activate(self.op(kind, [x], keepdims=bool(keepdims)), act)

    def pad(self, x, pads) -> str:
        self._check_rank4(x)
        return self.op("pad", [x], pads=tuple(int(p) for p in pads), value=0.0)

    def upsample_nearest(self, x, scale) -> str:
        self._check_rank4(x)
        sh, sw = scale
        for s in (sh, sw):
            if float(s) != int(s) or int(s) < 1:
                raise self._layer.fail(f"scale {tuple(scale)} is not a whole number", "integer scales")
        _, h, w, _ = self.shape(x)
        return self.op("upsample_nearest", [x], size=(h * int(sh), w * int(sw)))

    def reshape(self, x, target) -> str:
        target = [-1 if d is None else int(d) for d in target]
        total = int(np.prod(self.shape(x)[1:], dtype=np.int64))
        known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        if target.count(-1) > 1 or (-1 in target and total % max(known, 1)) or (-1 not in target
                                                                                and known != total):
            raise self._layer.fail(f"cannot reshape {self.shape(x)} to (batch, {', '.join(map(str, target))})")
        return self.op("reshape", [x], shape=tuple(target))

    def _check_rank4(self, x):
        if len(self.shape(x)) != 4:
            raise self._layer.fail(f"input has shape {self.shape(x)}; an NHWC (rank-4) input is needed")

    def _check_channels(self, x, want):
        shape = self.shape(x)
        if len(shape) != 4:
            raise self._layer.fail(f"input has shape {shape}; an NHWC (rank-4) input is needed")
        if shape[-1] != want:
            raise self._layer.fail(f"input has {shape[-1]} channels but the kernel expects {want}")

    # ---- layers ---------------------------------------------------------------------------------
    def add_layer(self, rec: Record, convert: Callable[[Builder, Record, list[str]], str]) -> None:
        missing = [n for n in rec.inputs if n not in self.outputs]
        if missing:
            raise rec.fail(f"reads {missing[0]!r}, which is not produced before it")
        self._layer, self._layer_ops = rec, []
        out = convert(self, rec, [self.outputs[n] for n in rec.inputs])
        if self._layer_ops and self._layer_ops[-1].outputs[0] == out:
            out = self._rename(out, rec.name)
        self.outputs[rec.name] = out
        self._layer = None

    def _rename(self, old: str, want: str) -> str:
        if want == old or want in self.graph.tensors:
            return old
        t = self.graph.tensors.pop(old)
        t.name = want
        self.graph.tensors[want] = t
        for op in self.graph.ops:
            op.outputs = [want if n == old else n for n in op.outputs]
            op.inputs = [want if n == old else n for n in op.inputs]
        return want


Converter = Callable[[Builder, Record, list[str]], str]


def build_graph(records: list[Record], table: dict[str, Converter], *, name: str, inputs: list[str],
                outputs: list[str], framework: str) -> Graph:
    """Turn records (in topological order) into a graph with the given input and output records, in order."""
    b = Builder(name)
    supported = ", ".join(sorted(k for k in table if not k.startswith("_")))
    for rec in records:
        convert = table.get(rec.kind)
        if convert is None:
            raise UnsupportedError(f"layer {rec.name!r} ({rec.kind}) is not supported by the {framework} "
                                   f"frontend; supported layers: {supported}")
        b.add_layer(rec, convert)
    for o in outputs:
        if o not in b.outputs:
            raise UnsupportedError(f"model output {o!r} is not produced by any layer")
    g = b.graph
    declared = [b.outputs[i] for i in inputs if i in b.outputs]
    if sorted(declared) != sorted(g.inputs):
        raise UnsupportedError(f"the model's inputs {inputs} are not exactly its input layers "
                               f"({', '.join(g.inputs)})")
    g.inputs = declared
    g.outputs = [b.outputs[o] for o in outputs]
    if len(set(g.outputs)) != len(g.outputs) or set(g.outputs) & set(g.inputs):
        # an output that is another output or a graph input gets its own identity op
        seen = set(g.inputs)
        for i, t in enumerate(list(g.outputs)):
            if t in seen:
                new = g.unique_name(f"{t}/out")
                g.add_tensor(new, g.tensors[t].shape)
                g.add_op("identity", new, [t], [new])
                g.outputs[i] = new
            seen.add(g.outputs[i])
    return g


def finish(graph: Graph, meta: dict) -> Graph:
    """Common end of every frontend: topological order, structural check, shapes, meta."""
    graph.toposort()
    graph.validate()
    oplib.infer_shapes(graph)
    graph.meta.update(meta)
    graph.meta.setdefault("input_names", list(graph.inputs))
    graph.meta.setdefault("output_names", list(graph.outputs))
    graph.meta.setdefault("preprocessing", {})
    return graph
