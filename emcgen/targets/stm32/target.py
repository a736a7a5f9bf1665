"""STM32 / CMSIS-NN target: a CMake C project whose model code calls the CMSIS-NN int8 API.

Pipeline of `Stm32Target.build(ctx, out)`:
1. the int8 graph: a quantized .tflite as it is; a float model through the float -> int8 quantizer
   (emcgen.tflite_int8.quantizer.quantize_graph with the calibration ranges);
2. plan.lower(): every op -> CMSIS-NN / emc_nn call with its integer parameters and constant arrays;
3. plan.best_memory_plan(): one activation arena (emcgen.memory.planner, in-place where legal) and one
   scratch buffer (cmsis_buffers rules for the MCU's core, emc_nn and pure C);
4. a test vector (first calibration sample, or fixed-seed random int8) and emcgen's expected outputs for it
   (run_int8, the integer reference that equals TFLM byte for byte);
5. codegen.render_project(): model.[ch], app/, emc_nn/, firmware/, CMakeLists.txt, README.md;
   OUT/emcgen/ keeps the int8 graph so that `emcgen verify` can recompute the reference later;
6. the Report (OUT/report.json): per layer the CMSIS-NN function, arena offsets, scratch and weight bytes.

`verify()` is `emcgen verify` (see verify.py).
"""
from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from ...errors import DoesNotFitError, EmcError
from ...ir import Graph
from ...report import Report, layer_rows
from ...tflite_int8 import quant
from .. import BuildContext, Target
from . import cmsis_buffers, codegen, graph_store, mcus, plan

STATE_DIR = "emcgen"        # OUT/emcgen: what verify needs (graph, test vector)
TEST_SEED = 0
# Flash of everything but the constants, for the convert-time estimate (replaced by arm-none-eabi-size after a
# QEMU verify): firmware skeleton + emc_nn kernels (measured: 9-14 KB at -O3 for the MLPerf Tiny models) and
# about 200 bytes of call code per layer.
CODE_BASE_ESTIMATE = 14 * 1024
CODE_PER_LAYER_ESTIMATE = 200
RAM_OTHER_ESTIMATE = 512     # .data/.bss besides the arena and scratch (firmware globals, output buffer)
LAYER_COLUMNS = ["cmsis_function", "input_offsets", "output_offset", "scratch_bytes", "weights_bytes",
                 "max_error_lsb"]
ERROR_SAMPLES = 16      # calibration samples used for the per-layer quantization error


def quantization_errors(float_graph: Graph, int8_graph: Graph, samples: np.ndarray) -> dict[str, dict]:
    """Per tensor of the int8 graph: max |dequantized int8 - float| over the samples, in real units and in
    LSB of the tensor's scale. The float interpreter (= TensorFlow) is the reference."""
    from ... import interpreter
    from ...tflite_int8 import run_int8
    ref = interpreter.run(float_graph, samples, keep_all=True)
    got = run_int8(int8_graph, samples, keep_all=True)
    errors = {}
    for name, q in got.items():
        t = int8_graph.tensors.get(name)
        if name not in ref or t is None or t.quant is None or ref[name].shape != q.shape:
            continue
        real = (q.astype(np.float64) - float(t.quant.zero_point[0])) * float(t.quant.scale[0])
        err = float(np.max(np.abs(real - ref[name])))
        errors[name] = {"max_error": round(err, 6), "max_error_lsb": round(err / float(t.quant.scale[0]), 3)}
    return errors


def _quantizer():
    try:
        return importlib.import_module("emcgen.tflite_int8.quantizer")
    except ModuleNotFoundError as exc:
        if exc.name != "emcgen.tflite_int8.quantizer":
            raise
        return None


def quantize_if_needed(ctx: BuildContext) -> Graph:
    """The int8 graph of the context: as it is when quantized, else through the float -> int8 quantizer
    (TFLite's post-training rules: per-channel conv weights, per-tensor dense weights as
    arm_fully_connected_s8 needs)."""
    graph = ctx.graph
    if graph.meta.get("quantized"):
        return graph
    quantizer = _quantizer()
    if quantizer is None:
        raise EmcError(f"model {graph.name!r} is a float model and this emcgen has no float -> int8 quantizer "
                       "(emcgen.tflite_int8.quantizer); give an int8 .tflite for the stm32 target")
    if ctx.ranges is None:
        raise EmcError(f"model {graph.name!r} is a float model: the stm32 target needs calibration data "
                       "(--dataset) to quantize it")
    return quantizer.quantize_graph(graph, ctx.ranges)


def to_int8(graph: Graph, name: str, x) -> np.ndarray:
    """A batch for model input `name` as int8: int8 as it is, float quantized with the input's parameters
    exactly as TFLite's QUANTIZE (what run_int8 and emc_model_run_f32 do too)."""
    x = np.asarray(x)
    shape = tuple(graph.tensors[name].shape[1:])
    if x.shape[1:] != shape:
        want = ", ".join(map(str, shape))
        raise EmcError(f"input {name!r}: got an array of shape {x.shape}; the model expects (N, {want})")
    if x.dtype == np.int8:
        return x
    if np.issubdtype(x.dtype, np.floating):
        q = graph.tensors[name].quant
        return quant.quantize_float(x, q.scale[0], int(q.zero_point[0]))
    raise EmcError(f"input {name!r} is {x.dtype}; give int8 values or float values to be quantized")


def test_vector(graph: Graph, dataset: np.ndarray | None) -> codegen.TestVector:
    """The embedded test input (int8, inputs concatenated) and run_int8's outputs for it."""
    from ...tflite_int8.interpreter import run_int8
    if dataset is not None and len(dataset) and len(graph.inputs) == 1:
        values = {graph.inputs[0]: to_int8(graph, graph.inputs[0], np.asarray(dataset[:1]))}
        description = "calibration sample 0, quantized with the input's scale and zero point"
    else:
        rng = np.random.default_rng(TEST_SEED)
        values = {n: rng.integers(-128, 128, size=(1,) + tuple(graph.tensors[n].shape[1:]), dtype=np.int8)
                  for n in graph.inputs}
        description = f"random int8 values (numpy default_rng({TEST_SEED}).integers(-128, 128))"
    expected = run_int8(graph, values)
    flat_in = np.concatenate([values[n].reshape(-1) for n in graph.inputs]).astype(np.int8)
    flat_out = np.concatenate([expected[n].reshape(-1) for n in graph.outputs]).astype(np.int8)
    return codegen.TestVector(flat_in, flat_out, description)


def peak_layer(graph: Graph, memory: plan.MemoryLayout) -> str:
    """Name of the op at the step where the most arena bytes are alive (for DoesNotFitError)."""
    bufs = memory.plan.buffers if memory.plan else []
    if not bufs or not graph.ops:
        return graph.ops[0].name if graph.ops else "?"
    live = [sum(b.size for b in bufs if b.first <= i <= b.last) for i in range(len(graph.ops))]
    return graph.ops[int(np.argmax(live))].name


def check_fit(graph: Graph, mcu: mcus.Mcu, memory: plan.MemoryLayout, scratch: int, weights: int) -> None:
    stack = mcus.DEFAULT_STACK_SIZE
    arena = memory.arena_bytes
    if mcu.arena == mcu.ram.name:
        need = arena + scratch + stack + RAM_OTHER_ESTIMATE
        if need > mcu.ram.size:
            raise DoesNotFitError(f"the model needs {need:,} bytes of RAM on {mcu.name} (arena {arena:,} at layer "
                                  f"{peak_layer(graph, memory)!r}, scratch {scratch:,}, stack {stack:,}); "
                                  f"the chip has {mcu.ram.size:,} bytes in {mcu.ram.name}")
    else:
        if arena > mcu.arena_region.size:
            raise DoesNotFitError(f"the activation arena needs {arena:,} bytes at layer {peak_layer(graph, memory)!r}"
                                  f"; {mcu.name}'s {mcu.arena_region.name} has {mcu.arena_region.size:,} bytes")
        if scratch + stack + RAM_OTHER_ESTIMATE > mcu.ram.size:
            raise DoesNotFitError(f"scratch {scratch:,} + stack {stack:,} bytes do not fit {mcu.name}'s "
                                  f"{mcu.ram.name} ({mcu.ram.size:,} bytes)")
    code = CODE_BASE_ESTIMATE
    if weights + code > mcu.flash.size:
        raise DoesNotFitError(f"the model's constants need {weights:,} bytes of flash; {mcu.name} has "
                              f"{mcu.flash.size:,} bytes (with about {code:,} for code)")


def build_report(graph: Graph, layers: list[plan.Layer], memory: plan.MemoryLayout, scratch: int,
                 mcu: mcus.Mcu, flavour: str, test: codegen.TestVector, source: str) -> Report:
    rows = layer_rows(graph, act_itemsize=1)
    for row, layer in zip(rows, layers, strict=True):
        row["cmsis_function"] = layer.function or "(view)"
        row["input_offsets"] = [memory.offsets[n] for n in layer.inputs]
        row["output_offset"] = memory.offsets[layer.output]
        row["in_place"] = layer.output in memory.inplace or layer.view
        row["scratch_bytes"] = plan.layer_scratch(layer, flavour)
        row["weights_bytes"] = layer.weights_bytes
    weights = sum(layer.weights_bytes for layer in layers)
    test_bytes = int(test.input.size + test.expected.size)
    flash = weights + test_bytes + CODE_BASE_ESTIMATE + CODE_PER_LAYER_ESTIMATE * len(layers)
    ram = memory.arena_bytes + scratch + mcus.DEFAULT_STACK_SIZE + RAM_OTHER_ESTIMATE + int(test.expected.size)
    memory_info = {
        "arena_bytes": memory.arena_bytes,
        "arena_lower_bound": memory.lower_bound,
        "scratch_bytes": scratch,
        "weights_bytes": weights,
        "flash_bytes": flash,
        "ram_bytes": ram,
        "stack_bytes": mcus.DEFAULT_STACK_SIZE,
        "flash_bytes_source": "estimate",
        "ram_bytes_source": "estimate",
    }
    stm32 = {
        "mcu": mcu.name, "core": mcu.core, "cmsis_nn_flavour": flavour, "cmsis_nn": codegen.CMSIS_NN,
        "planner_strategy": memory.strategy, "in_place": dict(memory.inplace),
        "test_input": test.description, "inputs": list(graph.inputs), "outputs": list(graph.outputs),
        "macs": int(sum(r["macs"] for r in rows)),
    }
    return Report(target="stm32", model=graph.name, layers=rows, memory=memory_info,
                  extra={"stm32": stm32, "layer_columns": LAYER_COLUMNS, "source": source})


def write_int8_tflite(graph: Graph, path: Path) -> str | None:
    """The int8 graph the C code implements, as a .tflite (TFLM and other tools can run it); None when the
    writer cannot express the graph (the project does not need the file)."""
    try:
        from ...tflite_int8.writer import to_tflite
        path.write_bytes(to_tflite(graph, float_interface=False, description="emcgen stm32 int8 graph"))
    except (ImportError, EmcError):
        return None
    return f"{STATE_DIR}/{path.name}"


class Stm32Target(Target):
    name = "stm32"
    summary = "STM32 / CMSIS-NN C project (CMake, arm-none-eabi-gcc): int8 model code, one static arena"
    output_kind = "project"
    needs_dataset = True

    def add_arguments(self, parser) -> None:
        parser.add_argument("--mcu", choices=mcus.supported_mcus(), default=None,
                            help=f"stm32: microcontroller of the firmware (default {mcus.DEFAULT_MCU}; "
                                 "stm32f746/stm32h743 build only, qemu-m7 emulation only)")

    def prepare_graph(self, graph: Graph) -> Graph:
        """Float graphs: split fused activations int8 cannot fuse (sigmoid, tanh, ...) before calibration."""
        if graph.meta.get("quantized"):
            return graph
        quantizer = _quantizer()
        return graph if quantizer is None else quantizer.prepare_for_int8(graph)

    def build(self, ctx: BuildContext, out: Path) -> Report:
        out = Path(out)
        mcu = mcus.get_mcu(ctx.options.get("mcu"))
        graph = quantize_if_needed(ctx)
        layers = plan.lower(graph)
        memory = plan.best_memory_plan(graph, layers)
        flavour = cmsis_buffers.flavour_for_core(mcu.core)
        scratch = plan.scratch_bytes(layers, flavour)
        weights = sum(layer.weights_bytes for layer in layers)
        check_fit(graph, mcu, memory, scratch, weights)
        test = test_vector(graph, ctx.dataset)
        report = build_report(graph, layers, memory, scratch, mcu, flavour, test, ctx.source)
        if not ctx.graph.meta.get("quantized") and ctx.dataset is not None:
            errors = quantization_errors(ctx.graph, graph, ctx.dataset[:ERROR_SAMPLES])
            for row, layer in zip(report.layers, layers, strict=True):
                row.update(errors.get(layer.output, {}))
        macs = report.extra["stm32"]["macs"]
        context = codegen.template_context(graph, layers, memory, scratch, mcu, test, ctx.source, macs)
        codegen.render_project(out, context, mcu)
        state = out / STATE_DIR
        graph_store.save_graph(graph, state)
        np.savez(state / "test_vector.npz", input=test.input, expected=test.expected)
        report.extra["stm32"]["int8_tflite"] = write_int8_tflite(graph, state / "model_int8.tflite")
        ctx.log(f"stm32: arena {memory.arena_bytes:,} B (lower bound {memory.lower_bound:,} B), scratch "
                f"{scratch:,} B, constants {weights:,} B, {len(layers)} layers for {mcu.name}")
        return report

    def verify(self, project: Path, inputs_path: Path, outputs_path: Path, on: str = "host") -> int:
        from .verify import verify_project
        return verify_project(Path(project), Path(inputs_path), Path(outputs_path), on=on)
