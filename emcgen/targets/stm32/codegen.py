"""Rendering of a generated STM32 / CMSIS-NN project (Jinja2 templates in templates/stm32_cmsis/project/).

`render_project()` takes what plan.py decided (layers with their integer parameters and constant arrays,
the memory layout, the scratch size) and writes the project folder:

    CMakeLists.txt, README.md          build (firmware and host harness), flash, QEMU, integration
    model/model.h, model/model.c       the model: C API, const weights, arena, straight-line CMSIS-NN calls
    app/main.c, app/test_data.[ch]     firmware main (test input, PASS/FAIL, verify mode over semihosting)
    app/host_main.c                    host harness (batch runs, per-layer trace)
    emc_nn/                            emcgen's portable CMSIS-NN subset (copied; no CMSIS-NN code)
    firmware/, cmake/                  firmware skeleton and toolchain file for the MCU (mcus.render_firmware)

Nothing here computes a number of the model: templates only place them.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import __version__
from ...ir import Graph
from . import mcus
from .plan import CArray, Layer, MemoryLayout

CMSIS_NN = {"version": "v7.0.0", "commit": "99f736a6",
            "repository": "https://github.com/ARM-software/CMSIS-NN"}
PROJECT_FILES = ("CMakeLists.txt", "README.md", "model/model.h", "model/model.c", "app/main.c",
                 "app/test_data.h", "app/test_data.c", "app/host_main.c")


@dataclass
class TestVector:
    """The embedded test input (all inputs concatenated, int8) and emcgen's expected outputs for it."""

    input: np.ndarray
    expected: np.ndarray
    description: str


def project_templates() -> Path:
    return mcus.templates_dir() / "stm32_cmsis" / "project"


def emc_nn_dir() -> Path:
    return mcus.templates_dir() / "stm32_cmsis" / "emc_nn"


# ---- C text helpers --------------------------------------------------------------------------------------

def c_string(text: str) -> str:
    """Contents of a C string literal (no quotes) that is also safe inside a /* */ comment."""
    out = []
    for ch in str(text):
        if ch in "\\\"":
            out.append("\\" + ch)
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append("?")
    return "".join(out).replace("*/", "*\\/").replace("/*", "/\\*").replace("??", "?\\?")


def c_identifier(text: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", str(text)) or "model"
    return ident if not ident[0].isdigit() else "m_" + ident


def c_float(value) -> str:
    """A float32 constant that reads back to exactly the same float32."""
    return np.format_float_scientific(np.float32(value), unique=True, exp_digits=2) + "f"


def c_array_body(values: np.ndarray, per_line: int = 24) -> str:
    """Initializer lines of an integer array (INT32_MIN spelled so that no constant overflows)."""
    items = ["(-2147483647 - 1)" if v == -2147483648 else str(v) for v in np.asarray(values).reshape(-1).tolist()]
    lines = ["    " + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "\n".join(lines)


# ---- template context ------------------------------------------------------------------------------------

def _shape_text(graph: Graph, names) -> str:
    return ", ".join("x".join(str(d) for d in graph.tensors[n].shape[1:]) for n in names)


def layer_summary(graph: Graph, layer: Layer) -> str:
    op = graph.ops[layer.index]
    detail = ""
    if op.type in ("conv2d", "depthwise_conv2d"):
        kh, kw = graph.tensors[op.inputs[1]].shape[:2]
        sh, sw = op.attrs.get("stride", (1, 1))
        detail = f"{kh}x{kw} stride {sh}x{sw}, "
    elif op.type in ("max_pool2d", "avg_pool2d"):
        kh, kw = op.attrs["kernel"]
        detail = f"{kh}x{kw}, "
    act = op.attrs.get("activation")
    tail = f" {act}" if act else ""
    return f"{detail}{_shape_text(graph, layer.inputs) or 'const'} -> {_shape_text(graph, [layer.output])}{tail}"


def _placement(layer: Layer, memory: MemoryLayout) -> str:
    ins = ", ".join(f"@{memory.offsets[n]}" for n in layer.inputs)
    where = f"in {ins} -> out @{memory.offsets[layer.output]}"
    if layer.view:
        return where + " (same memory)"
    if layer.output in memory.inplace:
        return where + " (in place)"
    return where


def _array_ctx(a: CArray) -> dict:
    return {"name": a.name, "ctype": a.ctype, "size": int(a.data.size), "comment": c_string(a.comment),
            "body": c_array_body(a.data, 24 if a.ctype == "int8_t" else 8)}


def _tensor_ctx(graph: Graph, names: list[str], memory: MemoryLayout) -> list[dict]:
    rows, position = [], 0
    for name in names:
        t = graph.tensors[name]
        shape = [int(d) for d in t.shape]
        scale = float(t.quant.scale[0]) if t.quant is not None else 1.0
        zp = int(t.quant.zero_point[0]) if t.quant is not None else 0
        rows.append({"name": name, "name_c": c_string(name), "shape": shape, "rank": len(shape),
                     "dims4": (shape + [1, 1, 1, 1])[:4], "size": t.size, "position": position,
                     "scale_c": c_float(scale), "zero_point": zp, "offset": memory.offsets[name]})
        position += t.size
    return rows


def arena_map(graph: Graph, layers: list[Layer], memory: MemoryLayout) -> list[str]:
    by_root: dict[str, list[str]] = {}
    for name, root in memory.groups.items():
        by_root.setdefault(root, []).append(name)
    rows = []
    for root, names in sorted(by_root.items(), key=lambda kv: (memory.offsets[kv[0]], kv[0])):
        size = max(graph.tensors[n].nbytes for n in names)
        start = memory.offsets[root]
        shown = ", ".join(c_string(n) for n in names[:4]) + (f" (+{len(names) - 4})" if len(names) > 4 else "")
        rows.append(f"[{start:>7}, {start + size:>7})  {shown}")
    return rows


def template_context(graph: Graph, layers: list[Layer], memory: MemoryLayout, scratch_bytes: int,
                     mcu: mcus.Mcu, test: TestVector, source: str, macs: int) -> dict:
    inputs = _tensor_ctx(graph, graph.inputs, memory)
    outputs = _tensor_ctx(graph, graph.outputs, memory)
    layer_ctx = []
    for layer in layers:
        layer_ctx.append({
            "index": layer.index, "p": f"l{layer.index}", "name_c": c_string(layer.name), "op_type": layer.op_type,
            "kind": layer.kind, "function": layer.function, "args": layer.args,
            "arrays": [_array_ctx(a) for a in layer.arrays],
            "in_offsets": [memory.offsets[n] for n in layer.inputs], "out_offset": memory.offsets[layer.output],
            "out_size": graph.tensors[layer.output].size, "summary": c_string(layer_summary(graph, layer)),
            "placement": _placement(layer, memory),
        })
    name = graph.name or "model"
    return {
        "emcgen_version": __version__,
        "cmsis_nn": CMSIS_NN,
        "mcu": mcu,
        "model": {"name": c_string(name), "name_c": c_string(name), "source_c": c_string(Path(source).name or source)},
        "project_name": c_identifier(name),
        "layers": layer_ctx,
        "arena_bytes": max(memory.arena_bytes, 1),
        "lower_bound": memory.lower_bound,
        "strategy": memory.strategy,
        "scratch_bytes": scratch_bytes,
        "weights_bytes": sum(layer.weights_bytes for layer in layers),
        "macs": macs,
        "inputs": inputs,
        "outputs": outputs,
        "input_bytes": sum(t["size"] for t in inputs),
        "output_bytes": sum(t["size"] for t in outputs),
        "uses_lut": any(layer.kind == "lut" for layer in layers),
        "uses_clamp": any(layer.kind == "mean" and (layer.args["act"][0] > -128 or layer.args["act"][1] < 127)
                          for layer in layers),
        "arena_map": arena_map(graph, layers, memory),
        "test_input_description": c_string(test.description),
        "test_input_description_c": c_string(test.description),
        "test_input_body": c_array_body(test.input, 24),
        "test_expected_body": c_array_body(test.expected, 24),
    }


# ---- rendering -------------------------------------------------------------------------------------------

def _environment():
    import jinja2  # only when rendering
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(project_templates())),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                              lstrip_blocks=True, autoescape=False)


def render_project(out: Path, context: dict, mcu: mcus.Mcu) -> list[Path]:
    """Write the project files into `out` (an existing, empty folder); returns the paths written."""
    out = Path(out)
    env = _environment()
    rendered: dict[Path, str] = {}
    source = project_templates()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source)
        if path.suffix == ".j2":
            rendered[out / rel.with_suffix("")] = env.get_template(rel.as_posix()).render(**context)
        else:
            rendered[out / rel] = path.read_text()
    for dest, text in rendered.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    written = list(rendered)
    lib = emc_nn_dir()
    for sub in ("include", "src"):
        shutil.copytree(lib / sub, out / "emc_nn" / sub)
    shutil.copy2(lib / "README.md", out / "emc_nn" / "README.md")
    written += sorted((out / "emc_nn").rglob("*"))
    written += mcus.render_firmware(mcu, out)
    return written
