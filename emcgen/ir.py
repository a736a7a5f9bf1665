"""The model IR: a small typed dataflow graph that every frontend produces and every target consumes.

Why this shape: TFLite's model (tensors + operators + constant buffers) maps onto it one to one, so the
int8 path stays exact; TensorLayer and Keras layers map onto it with a handful of rewrites. Nothing
downstream of a frontend ever sees a TensorFlow object.

Conventions
- Activations are NHWC with the batch dimension first. Graph shapes use batch 1; the interpreters run
  any batch size. A rank-2 tensor is (N, features).
- Constants (weights, biases, BatchNorm statistics) are tensors with `data` set. Layouts:
    conv2d            weights (KH, KW, C_IN, C_OUT)  "HWIO", bias (C_OUT,)
    depthwise_conv2d  weights (KH, KW, C_IN, MULT),          bias (C_IN*MULT,)
    dense             weights (IN, OUT),                     bias (OUT,)
- Ops are kept in topological order in `Graph.ops`; `Graph.toposort()` restores it after edits.
- Quantization, when present, is per tensor (scale/zero_point of size 1) or per channel along `axis`:
  real = scale * (q - zero_point).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import EmcError


@dataclass
class QuantParams:
    """Affine quantization: real = scale * (q - zero_point); per channel when axis is not None."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self):
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int64))

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.size > 1

    def to_json(self) -> dict:
        out = {"scale": [float(s) for s in self.scale], "zero_point": [int(z) for z in self.zero_point]}
        if self.axis is not None:
            out["axis"] = self.axis
        return out


@dataclass
class Tensor:
    """A named value: an activation (data is None) or a constant (data holds the array)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    data: np.ndarray | None = None
    quant: QuantParams | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class Op:
    """One operation. `type` names a module in emcgen.ops; attrs hold scalar options."""

    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    """Tensors by name, ops in topological order, and the graph's input/output tensor names."""

    name: str = "model"
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- building -------------------------------------------------------------------------------
    def add_tensor(self, name: str, shape, dtype: str = "float32", data=None, quant=None) -> Tensor:
        if name in self.tensors:
            raise ValueError(f"tensor {name!r} already exists")
        if data is not None:
            data = np.asarray(data)
            shape = data.shape
            dtype = str(data.dtype)
        t = Tensor(name, tuple(int(d) for d in shape), dtype, data, quant)
        self.tensors[name] = t
        return t

    def add_const(self, name: str, data, quant=None) -> str:
        """Add a constant tensor under a unique name derived from `name`; returns the name used."""
        name = self.unique_name(name)
        self.add_tensor(name, None, data=np.asarray(data), quant=quant)
        return name

    def unique_name(self, base: str) -> str:
        if base not in self.tensors:
            return base
        i = 1
        while f"{base}_{i}" in self.tensors:
            i += 1
        return f"{base}_{i}"

    def add_op(self, type: str, name: str, inputs: list[str], outputs: list[str], **attrs) -> Op:
        op = Op(type, name, list(inputs), list(outputs), dict(attrs))
        self.ops.append(op)
        return op

    # ---- queries --------------------------------------------------------------------------------
    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def producer(self, tensor_name: str) -> Op | None:
        for op in self.ops:
            if tensor_name in op.outputs:
                return op
        return None

    def consumers(self, tensor_name: str) -> list[Op]:
        return [op for op in self.ops if tensor_name in op.inputs]

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)

    def const(self, name: str) -> np.ndarray | None:
        t = self.tensors.get(name)
        return None if t is None else t.data

    def activation_inputs(self, op: Op) -> list[str]:
        """The op's non-constant inputs (feature maps), in order."""
        return [n for n in op.inputs if n and not self.tensors[n].is_const]

    # ---- editing --------------------------------------------------------------------------------
    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer (and the graph outputs) read `new` instead of `old`."""
        for op in self.ops:
            op.inputs = [new if n == old else n for n in op.inputs]
        self.outputs = [new if n == old else n for n in self.outputs]

    def remove_op(self, op: Op) -> None:
        self.ops.remove(op)

    def prune(self) -> None:
        """Drop ops whose outputs nobody uses and tensors nobody references."""
        changed = True
        while changed:
            changed = False
            used = set(self.outputs)
            for op in self.ops:
                used.update(op.inputs)
            for op in list(self.ops):
                if not any(o in used for o in op.outputs):
                    self.ops.remove(op)
                    changed = True
        referenced = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            referenced.update(op.inputs)
            referenced.update(op.outputs)
        for name in list(self.tensors):
            if name not in referenced:
                del self.tensors[name]

    def toposort(self) -> None:
        """Order ops so every op comes after the producers of its inputs (stable for ordered graphs)."""
        available = set(self.inputs) | {n for n, t in self.tensors.items() if t.is_const}
        remaining = list(self.ops)
        ordered: list[Op] = []
        while remaining:
            for i, op in enumerate(remaining):
                if all((not n) or n in available for n in op.inputs):
                    ordered.append(op)
                    available.update(op.outputs)
                    del remaining[i]
                    break
            else:
                names = ", ".join(op.name for op in remaining[:5])
                raise EmcError(f"graph has a cycle or an input nobody produces (ops: {names})")
        self.ops = ordered

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    # ---- checks ---------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check structural invariants; raises ValueError describing the first violation."""
        seen = set(self.inputs) | {n for n, t in self.tensors.items() if t.is_const}
        for name in self.inputs:
            if name not in self.tensors:
                raise ValueError(f"graph input {name!r} has no tensor")
        for op in self.ops:
            for n in op.inputs:
                if n and n not in seen:
                    raise ValueError(f"op {op.name!r} reads {n!r} before it is produced")
            for n in op.outputs:
                if n not in self.tensors:
                    raise ValueError(f"op {op.name!r} writes unknown tensor {n!r}")
                if n in seen:
                    raise ValueError(f"tensor {n!r} is produced twice")
                seen.add(n)
        for n in self.outputs:
            if n not in seen:
                raise ValueError(f"graph output {n!r} is never produced")

    def summary(self) -> str:
        lines = [f"graph {self.name}: inputs {self.inputs} outputs {self.outputs}"]
        for op in self.ops:
            ins = ", ".join(f"{n}{list(self.tensors[n].shape)}" for n in op.inputs if n)
            outs = ", ".join(f"{n}{list(self.tensors[n].shape)}" for n in op.outputs)
            lines.append(f"  {op.type:18s} {op.name:24s} ({ins}) -> {outs}")
        return "\n".join(lines)
