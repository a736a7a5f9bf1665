"""Save / load the quantized IR graph a project was generated from (OUT/emcgen/graph.json + graph.npz).

Why: `emcgen verify` must compare the built C code with emcgen's reference on the *same* int8 graph, long
after the conversion and without the original model or calibration data. The graph is stored as JSON
(structure, attributes, quantization parameters, meta) plus one .npz with the constant arrays; no pickle,
so a project folder never carries executable data.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...errors import FormatError
from ...ir import Graph, QuantParams
from ...report import json_safe

FORMAT = "emcgen-graph/1"


def _tuples(v):
    """JSON lists back to tuples (the IR's attrs use tuples for strides, pads, kernels, axes)."""
    if isinstance(v, list):
        return tuple(_tuples(x) for x in v)
    if isinstance(v, dict):
        return {k: _tuples(x) for k, x in v.items()}
    return v


def save_graph(graph: Graph, folder: Path) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    consts: dict[str, np.ndarray] = {}
    tensors = {}
    for i, (name, t) in enumerate(graph.tensors.items()):
        entry = {"shape": list(t.shape), "dtype": t.dtype}
        if t.quant is not None:
            entry["quant"] = {"scale": t.quant.scale.astype(np.float32).tolist(),
                              "zero_point": t.quant.zero_point.astype(np.int64).tolist(), "axis": t.quant.axis}
        if t.data is not None:
            key = f"c{i}"
            consts[key] = np.asarray(t.data)
            entry["data"] = key
        tensors[name] = entry
    doc = {
        "format": FORMAT, "name": graph.name, "inputs": list(graph.inputs), "outputs": list(graph.outputs),
        "meta": json_safe(graph.meta), "tensors": tensors,
        "ops": [{"type": op.type, "name": op.name, "inputs": op.inputs, "outputs": op.outputs,
                 "attrs": json_safe(op.attrs)} for op in graph.ops],
    }
    (folder / "graph.json").write_text(json.dumps(doc, indent=1) + "\n")
    np.savez_compressed(folder / "graph.npz", **consts)


def load_graph(folder: Path) -> Graph:
    folder = Path(folder)
    path = folder / "graph.json"
    try:
        doc = json.loads(path.read_text())
        arrays = np.load(folder / "graph.npz", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FormatError(f"{folder}: cannot read the stored model graph ({exc}); regenerate the project with "
                          "`emcgen convert`") from None
    if doc.get("format") != FORMAT:
        raise FormatError(f"{path}: format {doc.get('format')!r}, expected {FORMAT!r}")
    g = Graph(name=doc["name"], inputs=list(doc["inputs"]), outputs=list(doc["outputs"]), meta=doc["meta"])
    for name, e in doc["tensors"].items():
        quant = None
        if "quant" in e:
            q = e["quant"]
            quant = QuantParams(np.asarray(q["scale"], np.float32), np.asarray(q["zero_point"], np.int64), q["axis"])
        data = arrays[e["data"]] if "data" in e else None
        g.add_tensor(name, tuple(e["shape"]), e["dtype"], data=data, quant=quant)
    for op in doc["ops"]:
        g.add_op(op["type"], op["name"], list(op["inputs"]), list(op["outputs"]), **_tuples(op["attrs"]))
    return g
