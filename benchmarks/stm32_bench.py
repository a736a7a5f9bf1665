"""STM32 target: arena (emcgen vs TFLM), flash, instructions per inference on Cortex-M4 (QEMU), conversion time.

Models: the four MLPerf Tiny int8 models (../shared/models/mlperf_tiny) and the bundled MNIST example
(float TensorLayer model, quantized by emcgen from examples/mnist/calibration).

For each model, in one run:
- conversion time of `emcgen.convert(..., "stm32")` (best of 3 runs, wall clock);
- emcgen's arena and scratch bytes; TFLM's arena from tflite-micro's RecordingMicroAllocator (print_allocations
  captured on fd 2) for the same int8 model: head (tensors and kernel scratch, what emcgen's arena + scratch
  replace) and total (head + persistent tail, x86-64 build of the Python wheel);
- the firmware of the generated project (CMake, arm-none-eabi-gcc -O3, emc_nn; and real CMSIS-NN too when
  CMSIS_NN_ROOT is set) on QEMU netduinoplus2 (Cortex-M4F): instructions per inference (mean over the
  inputs, counted by emcgen's TCG plugin between emc_bench_begin/end), instructions per MAC (MACs from
  emcgen's report), flash and RAM from arm-none-eabi-size; the outputs are checked equal to run_int8;
- where the instructions go: a second firmware built with -DEMC_MODEL_TRACE=ON (one region per layer),
  summed per CMSIS-NN function.

    .venv/bin/python benchmarks/stm32_bench.py [--inputs 3] [--out table.md]   (results: BENCHMARKS.md)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import describe  # noqa: E402

from emcgen.convert import convert  # noqa: E402
from emcgen.targets.stm32 import qemu  # noqa: E402
from emcgen.targets.stm32 import verify as V  # noqa: E402

MLPERF = ["ad01_int8.tflite", "kws_ref_model.tflite", "pretrainedResnet_quant.tflite", "vww_96_int8.tflite"]
BOUNDS = {"ad01_int8": 768, "kws_ref_model": 16_000, "pretrainedResnet_quant": 49_152, "vww_96_int8": 55_296}


def tflm_arena(blob: bytes, input_shapes) -> dict[str, int]:
    """TFLM RecordingMicroAllocator totals (bytes) after one invoke, read from print_allocations on fd 2."""
    from tflite_micro import runtime as rt
    it = rt.Interpreter.from_bytes(bytes(blob), arena_size=8 << 20,
                                   intrepreter_config=rt.InterpreterConfig.kAllocationRecording)
    for k, shape in enumerate(input_shapes):
        it.set_input(np.zeros(shape, np.int8), k)
    it.invoke()
    with tempfile.TemporaryFile(mode="w+") as f:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            it.print_allocations()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()
    out = {}
    for key in ("total", "head", "tail"):
        m = re.search(rf"Arena allocation {key} (\d+) bytes", text)
        out[key] = int(m.group(1)) if m else -1
    return out


def convert_timed(model, out: Path, **kw) -> tuple[float, V.Project]:
    times = []
    for _ in range(3):
        t = time.perf_counter()
        convert(model, "stm32", out, log=lambda *a: None, progress=None, **kw)
        times.append(time.perf_counter() - t)
    return min(times), V.load_project(out)


def unpack_inputs(project: V.Project, x: np.ndarray) -> dict[str, np.ndarray]:
    out, pos = {}, 0
    for name in project.graph.inputs:
        t = project.graph.tensors[name]
        out[name] = x[:, pos:pos + t.size].reshape((len(x),) + tuple(t.shape[1:]))
        pos += t.size
    return out


def run_qemu(project: V.Project, x: np.ndarray, work: Path, cmsis_nn: Path | None) -> V.RunResult:
    elf = V.build_firmware(project.path, work / "fw", cmsis_nn=cmsis_nn)
    result = V.run_firmware(elf, project, x, work / "run", mcu=project.mcu)
    got = V.unpack_outputs(project, result.outputs)
    want = V.reference(project, unpack_inputs(project, x))
    cmp = V.compare(project, got, want)
    if not cmp["equal"]:
        raise SystemExit(f"{project.path.name}: QEMU outputs differ from run_int8: {cmp}")
    return result


def layer_profile(project: V.Project, x: np.ndarray, work: Path) -> dict[str, int]:
    """Instructions per CMSIS-NN function for one inference (firmware with one region per layer)."""
    elf = V.build_firmware(project.path, work / "fw_trace", cmake_args=("-DEMC_MODEL_TRACE=ON",))
    run = work / "run_trace"
    run.mkdir(parents=True, exist_ok=True)
    (run / "inputs.bin").write_bytes(np.ascontiguousarray(x[:1]).tobytes())
    res = qemu.run_elf(elf, machine=project.mcu.qemu_machine, semihosting_args=["verify", "1"], cwd=run, timeout=600)
    layers = project.report["layers"]
    regions = res.instructions_per_region
    if res.exit_code != 0 or len(regions) != len(layers) + 1:
        raise SystemExit(f"{project.path.name}: per-layer run gave {len(regions)} regions for {len(layers)} layers")
    by_fn: dict[str, int] = defaultdict(int)
    for row, count in zip(layers, regions, strict=False):
        by_fn[row["cmsis_function"]] += count
    return dict(by_fn)


def bench_model(label: str, model, work: Path, n_inputs: int, cmsis_nn: Path | None, **kw) -> dict:
    conv_s, project = convert_timed(model, work / label, **kw)
    graph = project.graph
    rng = np.random.default_rng(1)
    if "dataset" in kw:     # a float model: real samples, quantized with the input parameters
        held = np.load(ROOT / "examples" / "mnist" / "heldout_sample.npz")
        xf = (held["images"][:n_inputs].astype(np.float32) / 255.0)[..., None]
        from emcgen.targets.stm32.target import to_int8
        x = to_int8(graph, graph.inputs[0], xf).reshape(n_inputs, -1)
    else:
        x = rng.integers(-128, 128, size=(n_inputs, project.input_bytes), dtype=np.int8)
    stored = project.path / "emcgen" / "model_int8.tflite"
    blob = stored.read_bytes() if label == "mnist" else Path(model).read_bytes()
    tflm = tflm_arena(blob, [(1,) + tuple(graph.tensors[n].shape[1:]) for n in graph.inputs])
    res = run_qemu(project, x, work / f"{label}_emc", None)
    row = {"model": label, "macs": project.macs, "convert_s": conv_s,
           "arena": project.report["memory"]["arena_bytes"], "scratch": project.report["memory"]["scratch_bytes"],
           "bound": BOUNDS.get(label), "weights": project.report["memory"]["weights_bytes"], "tflm": tflm,
           "insns": float(np.mean(res.instructions)), "flash": res.size["flash_bytes"], "ram": res.size["ram_bytes"],
           "text": res.size["text"], "rodata": res.size["rodata"],
           "profile": layer_profile(project, x, work / f"{label}_trace")}
    if cmsis_nn is not None:
        cres = run_qemu(project, x, work / f"{label}_cmsis", cmsis_nn)
        row.update(cmsis_insns=float(np.mean(cres.instructions)), cmsis_flash=cres.size["flash_bytes"])
    return row


def render(rows: list[dict], args, machine: str, cmsis_nn: Path | None) -> str:
    lines = ["# STM32 / CMSIS-NN target benchmark", "",
             f"Command: `.venv/bin/python benchmarks/stm32_bench.py --inputs {args.inputs}`"
             + (" (with CMSIS_NN_ROOT set to a CMSIS-NN checkout)" if cmsis_nn else ""),
             f"Machine: {machine}", "",
             "Instructions are counted by emcgen's QEMU plugin on qemu-system-arm netduinoplus2 (Cortex-M4F, "
             "firmware built with arm-none-eabi-gcc -O3 by the generated CMakeLists.txt); QEMU models no timing, "
             "so these are executed instructions, not cycles. Outputs of every run were checked equal to "
             "emcgen's run_int8 (= TFLM). MACs from emcgen's report. Flash and RAM: arm-none-eabi-size of the "
             "firmware (flash includes the test input, the expected outputs and the firmware skeleton; RAM "
             "includes the 8 KB stack). TFLM arena: tflite-micro "
             "Python wheel (x86-64), RecordingMicroAllocator after one invoke; head = tensors + kernel scratch "
             "(compare with emcgen arena + scratch), total = head + persistent tail (64-bit pointers).", "",
             "| model | MACs | emcgen arena | scratch | live-tensor bound | TFLM head | TFLM total | flash (emc_nn) "
             "| weights | RAM | instructions / inference | instructions / MAC | conversion |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        bound = f"{r['bound']:,}" if r["bound"] else "-"
        lines.append(f"| {r['model']} | {r['macs']:,} | {r['arena']:,} | {r['scratch']:,} | {bound} | "
                     f"{r['tflm']['head']:,} | {r['tflm']['total']:,} | {r['flash']:,} | {r['weights']:,} | "
                     f"{r['ram']:,} | {r['insns']:,.0f} | {r['insns'] / r['macs']:.2f} | {r['convert_s']:.2f} s |")
    if cmsis_nn is not None:
        lines += ["", "Same firmware linked against the real CMSIS-NN (DSP path, `-DCMSIS_NN_ROOT`):", "",
                  "| model | instructions / inference (emc_nn) | instructions / inference (CMSIS-NN) | "
                  "instructions / MAC (CMSIS-NN) | flash (CMSIS-NN) |", "| --- | ---: | ---: | ---: | ---: |"]
        for r in rows:
            lines.append(f"| {r['model']} | {r['insns']:,.0f} | {r['cmsis_insns']:,.0f} | "
                         f"{r['cmsis_insns'] / r['macs']:.2f} | {r['cmsis_flash']:,} |")
    lines += ["", "Where the instructions go (emc_nn, one inference, firmware built with -DEMC_MODEL_TRACE=ON: "
              "one region per layer; share of the inference):", ""]
    for r in rows:
        total = sum(r["profile"].values()) or 1
        parts = ", ".join(f"{fn} {count / total:.0%}" for fn, count in
                          sorted(r["profile"].items(), key=lambda kv: -kv[1]) if count / total >= 0.005)
        lines.append(f"- {r['model']}: {parts}")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    ap.add_argument("--inputs", type=int, default=3, help="inputs per model on QEMU (default 3)")
    ap.add_argument("--out", help="also write the markdown table to this file")
    ap.add_argument("--json", help="also write the raw numbers as JSON")
    args = ap.parse_args(argv)
    models = Path(args.shared) / "models" / "mlperf_tiny"
    cmsis_nn = V.cmsis_nn_root()
    rows = []
    with tempfile.TemporaryDirectory(prefix="emcgen-stm32-bench-") as tmp:
        work = Path(tmp)
        for name in MLPERF:
            rows.append(bench_model(Path(name).stem, models / name, work, args.inputs, cmsis_nn))
            print(f"{name}: done", file=sys.stderr)
        mnist = ROOT / "examples" / "mnist"
        rows.append(bench_model("mnist", mnist / "mnist_cnn.h5", work, args.inputs, cmsis_nn,
                                dataset=mnist / "calibration"))
    text = render(rows, args, describe(), cmsis_nn)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=float))


if __name__ == "__main__":
    main()
