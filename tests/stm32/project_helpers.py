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

__all__ = ["MLPERF", "TFLM_VWW_ARENA_HEAD", "V", "build_graph_project", "int8_batch", "mlperf_path", "run_int8",
           "tflm_oracle", "load_tflite", "tflm_layers"]


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
