"""The per-layer conversion report: printed as a table and written as JSON next to the output.

Every target fills the same skeleton: `target`, `layers` (one dict per layer with at least op, name,
input/output shapes, params, MACs and activation bytes; targets add quantization error, memory offsets,
...) and `memory` (bytes; target-specific keys). Later issues and outside checks read these keys.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import ops as oplib
from .ir import Graph


def layer_rows(graph: Graph, act_itemsize: int | None = None) -> list[dict[str, Any]]:
    """Generic per-op facts of a graph: op, name, shapes, parameter count, MACs, activation bytes.

    act_itemsize: bytes per activation element on the target (1 for int8/uint8); None keeps the
    graph's own dtype sizes.
    """
    rows = []
    for op in graph.ops:
        acts = graph.activation_inputs(op)
        consts = [n for n in op.inputs if n and graph.tensors[n].is_const]
        out = graph.tensors[op.outputs[0]]
        item = act_itemsize or np.dtype(out.dtype).itemsize
        rows.append({
            "name": op.name,
            "op": op.type,
            "activation": op.attrs.get("activation"),
            "inputs": [list(graph.tensors[n].shape) for n in acts],
            "output": list(out.shape),
            "params": int(sum(graph.tensors[n].size for n in consts)),
            "macs": int(oplib.get(op.type).macs(graph, op)),
            "activation_bytes": int(out.size * item),
        })
    return rows


@dataclass
class Report:
    target: str
    model: str = ""
    layers: list[dict[str, Any]] = field(default_factory=list)
    memory: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"target": self.target, "model": self.model, "layers": self.layers, "memory": self.memory,
                "outputs": self.outputs, **self.extra}

    def write(self, path: Path) -> None:
        Path(path).write_text(json.dumps(json_safe(self.to_json()), indent=2) + "\n")

    def table(self, columns: list[str] | None = None) -> str:
        cols = columns or ["name", "op", "output", "params", "macs", "activation_bytes"]
        extra = [k for k in self.extra.get("layer_columns", []) if k not in cols]
        return render_table(self.layers, cols + extra)

    def summary_lines(self) -> list[str]:
        macs = sum(r.get("macs", 0) for r in self.layers)
        lines = [f"total MACs: {macs:,}"]
        lines += [f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}" for k, v in self.memory.items()]
        return lines


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, list | tuple):
        return "x".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else str(v)
    return str(v)


def render_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append("  ".join(v.rjust(w) if v[:1].isdigit() or v[:1] == "-" else v.ljust(w)
                             for v, w in zip(row, widths, strict=True)))
    return "\n".join(out)


def json_safe(v):
    """JSON-safe copy: numpy scalars and arrays become Python numbers and lists, paths strings."""
    if isinstance(v, dict):
        return {str(k): json_safe(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [json_safe(x) for x in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, Path):
        return str(v)
    return v
