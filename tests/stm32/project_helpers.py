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
from tflm_oracle import ModelBuilder  # noqa: E402

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
SAME, VALID = 0, 1
RELU = 1

__all__ = ["MLPERF", "TFLM_VWW_ARENA_HEAD", "V", "build_graph_project", "int8_batch", "mlperf_path", "model_a",
           "model_b", "replay_arena", "run_int8", "tflm_oracle", "load_tflite", "tflm_layers"]


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


# ---- small int8 models covering the layer kinds the MLPerf models do not use ---------------------------------
def model_a() -> bytes:
    """conv+relu, max pool, pad, depthwise x2 multiplier, avg pool SAME, concat, mul const, add (in place),
    mean, reshape, per-channel FC, logistic."""
    rng = np.random.default_rng(1)
    b = ModelBuilder()
    x = b.input("x", (1, 10, 9, 4), scale=0.05, zp=-10)
    s_w1 = rng.uniform(0.002, 0.02, 8)
    c1 = b.tensor("c1", (1, 10, 9, 8), scale=0.4, zp=-100)
    b.op("CONV_2D", [x, b.tensor("w1", (8, 3, 3, 4), data=rng.integers(-127, 128, (8, 3, 3, 4)), scale=s_w1, axis=0),
                     b.tensor("b1", (8,), "int32", data=rng.integers(-900, 900, 8), scale=0.05 * s_w1, axis=0)],
         [c1], "Conv2DOptions", padding=SAME, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1,
         fusedActivationFunction=RELU)
    mp = b.tensor("mp", (1, 5, 5, 8), scale=0.4, zp=-100)
    b.op("MAX_POOL_2D", [c1], [mp], "Pool2DOptions", padding=SAME, strideH=2, strideW=2, filterHeight=3,
         filterWidth=3)
    pd = b.tensor("pd", (1, 6, 6, 8), scale=0.4, zp=-100)
    b.op("PAD", [mp, b.tensor("pads", (4, 2), "int32", data=[[0, 0], [1, 0], [0, 1], [0, 0]])], [pd])
    s_w2 = rng.uniform(0.004, 0.02, 16)
    dw = b.tensor("dw", (1, 4, 4, 16), scale=1.6, zp=5)
    b.op("DEPTHWISE_CONV_2D", [pd, b.tensor("w2", (1, 3, 3, 16), data=rng.integers(-127, 128, (1, 3, 3, 16)),
                                             scale=s_w2, axis=3),
                               b.tensor("b2", (16,), "int32", data=rng.integers(-300, 300, 16), scale=0.4 * s_w2,
                                        axis=0)],
         [dw], "DepthwiseConv2DOptions", padding=VALID, strideH=1, strideW=1, depthMultiplier=2,
         dilationHFactor=1, dilationWFactor=1)
    ap = b.tensor("ap", (1, 4, 4, 16), scale=1.6, zp=5)
    b.op("AVERAGE_POOL_2D", [dw], [ap], "Pool2DOptions", padding=SAME, strideH=1, strideW=1, filterHeight=2,
         filterWidth=2)
    cat = b.tensor("cat", (1, 4, 4, 32), scale=1.6, zp=5)
    b.op("CONCATENATION", [ap, dw], [cat], "ConcatenationOptions", axis=-1)
    mul = b.tensor("mul", (1, 4, 4, 32), scale=0.64, zp=-5)
    b.op("MUL", [cat, b.tensor("k", (32,), data=rng.integers(-128, 128, 32), scale=0.02, zp=3)], [mul],
         "MulOptions")
    add = b.tensor("add", (1, 4, 4, 32), scale=2.0, zp=0)
    b.op("ADD", [mul, cat], [add], "AddOptions")
    mean = b.tensor("mean", (1, 1, 1, 32), scale=0.5, zp=2)
    b.op("MEAN", [add, b.tensor("axes", (2,), "int32", data=[1, 2])], [mean], "ReducerOptions", keepDims=True)
    flat = b.tensor("flat", (1, 32), scale=0.5, zp=2)
    b.op("RESHAPE", [mean, b.tensor("shape", (2,), "int32", data=[1, 32])], [flat], "ReshapeOptions",
         newShape=[1, 32])
    s_w3 = rng.uniform(0.004, 0.02, 10)
    fc = b.tensor("fc", (1, 10), scale=0.8, zp=-1)
    b.op("FULLY_CONNECTED", [flat, b.tensor("w3", (10, 32), data=rng.integers(-127, 128, (10, 32)), scale=s_w3,
                                            axis=0),
                             b.tensor("b3", (10,), "int32", data=rng.integers(-500, 500, 10), scale=0.5 * s_w3,
                                      axis=0)],
         [fc], "FullyConnectedOptions")
    y = b.output("y", (1, 10), scale=1 / 256, zp=-128)
    b.op("LOGISTIC", [fc], [y])
    return b.build()


def model_b() -> bytes:
    """Two inputs, two outputs: mul with a broadcast per-channel activation, tanh (in place), QUANTIZE
    int8 -> int8 (in place over a graph input), 1x1 conv stride 2, relu6, softmax over 9 rows."""
    rng = np.random.default_rng(2)
    b = ModelBuilder()
    a = b.input("a", (1, 6, 6, 3), scale=0.04, zp=-12)
    v = b.input("v", (1, 1, 1, 3), scale=0.02, zp=-100)
    m = b.tensor("m", (1, 6, 6, 3), scale=0.4, zp=0)
    b.op("MUL", [a, v], [m], "MulOptions")
    t = b.output("t", (1, 6, 6, 3), scale=1 / 128, zp=0)
    b.op("TANH", [m], [t])
    r = b.tensor("r", (1, 6, 6, 3), scale=0.031, zp=20)
    b.op("QUANTIZE", [a], [r])
    c = b.tensor("c", (1, 3, 3, 5), scale=0.07, zp=3)
    b.op("CONV_2D", [r, b.tensor("w", (5, 1, 1, 3), data=rng.integers(-127, 128, (5, 1, 1, 3)), scale=0.01),
                     b.tensor("bias", (5,), "int32", data=rng.integers(-50, 50, 5), scale=0.031 * 0.01)],
         [c], "Conv2DOptions", padding=VALID, strideH=2, strideW=2, dilationHFactor=1, dilationWFactor=1)
    r6 = b.tensor("r6", (1, 3, 3, 5), scale=0.07, zp=3)
    b.op("RELU6", [c], [r6])
    y = b.output("y", (1, 3, 3, 5), scale=1 / 256, zp=-128)
    b.op("SOFTMAX", [r6], [y], "SoftmaxOptions", beta=1.0)
    return b.build()
