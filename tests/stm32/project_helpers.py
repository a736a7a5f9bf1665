"""Shared helpers of the STM32 project tests (test_project_*, test_mlperf_*, test_verify_*).

The oracles are TFLM (tflite-micro's reference kernels, through tests/tflite/tflm_oracle.py) and emcgen's
int8 reference interpreter run_int8 (itself checked equal to TFLM in tests/tflite); never the C code.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import support

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tflite"))
import tflm_oracle  # noqa: E402

from emcgen.frontends.tflite import load_tflite  # noqa: E402
from emcgen.ir import Graph  # noqa: E402
from emcgen.targets import BuildContext  # noqa: E402
from emcgen.targets.stm32 import verify as V  # noqa: E402
from emcgen.targets.stm32.target import Stm32Target  # noqa: E402
from emcgen.tflite_int8.interpreter import run_int8  # noqa: E402

MLPERF = {  # file -> lower bound of the activation memory (docs/anchors.md)
    "ad01_int8.tflite": 768,
    "kws_ref_model.tflite": 16_000,
    "pretrainedResnet_quant.tflite": 49_152,
    "vww_96_int8.tflite": 55_296,
}
TFLM_VWW_ARENA_HEAD = 73_728   # TFLM's greedy planner on VWW (docs/anchors.md)

__all__ = ["MLPERF", "TFLM_VWW_ARENA_HEAD", "V", "build_graph_project", "int8_batch", "mlperf_path", "replay_arena",
           "run_int8", "tflm_oracle", "load_tflite", "tflm_layers"]


def mlperf_path(name: str) -> Path:
    return support.shared("models", "mlperf_tiny", name)


def build_graph_project(graph: Graph, out: Path, **options) -> tuple[Path, object]:
    """Stm32Target.build on an IR graph as it is (no passes), like convert() does after its passes."""
    out.mkdir(parents=True, exist_ok=True)
    ctx = BuildContext(graph=graph, source=f"{graph.name}.tflite", options=options, log=lambda *a: None)
    report = Stm32Target().build(ctx, out)
    report.write(out / "report.json")
    return out, report


def int8_batch(graph: Graph, n: int, seed: int) -> dict[str, np.ndarray]:
    """Random int8 inputs (fixed seed) with the extremes -128 and 127 in the first two samples."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in graph.inputs:
        x = rng.integers(-128, 128, size=(n,) + tuple(graph.tensors[name].shape[1:]), dtype=np.int8)
        if n >= 2:
            x[0], x[1] = -128, 127
        out[name] = x
    return out


def tflm_layers(blob: bytes, graph: Graph, x: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """TFLM's value of every IR op output for one sample (batch 1), by the frontend's tensor index map (the
    graph's own, or, for a graph emcgen quantized and wrote with to_tflite, the map of the file read back)."""
    index = graph.meta.get("tflite_tensors") or load_tflite(blob).meta["tflite_tensors"]
    names = [op.outputs[0] for op in graph.ops]
    it = tflm_oracle.interpreter(blob, preserve=True)
    for k, name in enumerate(graph.inputs):
        it.set_input(np.ascontiguousarray(x[name][:1]), k)
    it.invoke()
    return {n: np.asarray(it.GetTensor(int(index[n]), 0)["tensor_data"]).reshape(graph.tensors[n].shape)
            for n in names}


def replay_arena(graph: Graph, report: dict, inputs: dict[str, np.ndarray]) -> None:
    """Independent check of the arena offsets in report.json.

    Writes every tensor's reference value (run_int8) into a byte arena at its reported offset, op by op, and
    asserts that every input still holds its value when its op reads it (lifetimes), that no layer writes
    over an input unless it is an elementwise layer marked in place (or a view) and then exactly over it,
    and that the outputs hold their values at the end.
    """
    values = run_int8(graph, inputs, keep_all=True)
    arena = np.zeros(report["memory"]["arena_bytes"], np.int8)
    rows = {row["name"]: row for row in report["layers"]}

    def write(tensor, offset):
        data = values[tensor].reshape(-1)
        assert 0 <= offset and offset + data.size <= arena.size, f"{tensor!r} outside the arena"
        arena[offset:offset + data.size] = data

    def holds(tensor, offset):
        data = values[tensor].reshape(-1)
        return np.array_equal(arena[offset:offset + data.size], data)

    offsets = {}
    for op in graph.ops:
        offsets.update(zip(graph.activation_inputs(op), rows[op.name]["input_offsets"], strict=True))
    for tensor in graph.inputs:   # the inputs are in the arena before the first layer runs
        write(tensor, offsets[tensor])
    for op in graph.ops:
        row = rows[op.name]
        acts = list(zip(graph.activation_inputs(op), row["input_offsets"], strict=True))
        for tensor, offset in acts:
            assert holds(tensor, offset), f"{tensor!r} was overwritten before op {op.name} reads it"
        out_lo = row["output_offset"]
        out_hi = out_lo + graph.tensors[op.outputs[0]].size
        overlaps = [(t, o) for t, o in acts if o < out_hi and out_lo < o + graph.tensors[t].size]
        if overlaps:
            assert row["in_place"] and op.type in ("add", "mul", "activation", "identity", "reshape"), \
                f"{op.name} ({op.type}) writes over its input {overlaps}"
            assert all(o == out_lo for _, o in overlaps), f"{op.name} overlaps its input with a shift"
        write(op.outputs[0], out_lo)
    for out in graph.outputs:
        assert holds(out, rows[graph.producer(out).name]["output_offset"]), f"output {out!r} overwritten"
