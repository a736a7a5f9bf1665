"""The `kmodel` target: a kmodel v3 file for the K210, and the seed's `save_kmodel` API.

build_kmodel() is shared with the K210 project target: lower the graph (lower.py), plan KPU RAM and
main memory (memory.py), emit the layers (emit.py), write the bytes, check them with the kmodel
verifier, then run the emulator on calibration samples and compare every layer with the float
interpreter, so each conversion reports its own quantization error.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import interpreter, kmodel
from ...errors import EmcError, UnsupportedError
from ...report import Report, layer_rows
from .. import BuildContext, Target
from .emit import emit
from .lower import Lowered, chw, lower
from .memory import LINE, plan_memory

K210_SRAM = 6 * 1024 * 1024
ERROR_SAMPLES = 16          # calibration samples used for the per-layer error columns
ROUNDING_SAMPLES = 16       # calibration samples whose activations steer the weight rounding


@dataclass
class KModelBuild:
    """A converted kmodel and what a project around it needs to know."""

    data: bytes
    report: Report
    input_shape: tuple[int, int, int]                 # (H, W, C) of the raw uint8 input (planar CHW bytes)
    input_affine: tuple[float, float] | None          # real = pixel * scale + offset (folded into layer 0)
    outputs: list[dict]                               # name, shape (NHWC, batch 1), dtype, bytes
    sample_input: np.ndarray                          # uint8 (H, W, C), one calibration sample
    sample_expected: list[np.ndarray]                 # emulator outputs for sample_input
    notes: list[str] = field(default_factory=list)
    kmodel: kmodel.KModel | None = None


def _affine(ctx: BuildContext):
    from ... import datasets
    affine = datasets.dataset_func_affine(ctx.dataset_func)
    if affine is None:
        raise UnsupportedError(f"dataset function {ctx.dataset_func!r} is not affine, so it cannot be folded into "
                               "the first layer (a kmodel takes raw uint8 pixels); use img_0_1, img_neg1_1 or "
                               "img_0_255, or register the function with affine=(scale, offset)")
    return affine


def raw_pixels(x: np.ndarray, affine) -> np.ndarray:
    """Invert the dataset function: float model inputs -> the uint8 pixels they came from."""
    scale, offset = affine
    p = np.round((np.asarray(x, np.float64) - offset) / scale)
    if p.min() < 0 or p.max() > 255:
        raise EmcError("calibration samples are not pixels in 0..255 under the dataset function; the K210 target "
                       "needs image data (or uint8 arrays)")
    return p.astype(np.uint8)


def _ref_chw(value: np.ndarray) -> np.ndarray:
    """One float IR tensor (batch of 1) in the channel-major order of the kmodel's main memory."""
    v = value[0]
    return (v.transpose(2, 0, 1) if v.ndim == 3 else v).reshape(-1).astype(np.float64)


def _layer_errors(lowered: Lowered, km, graph, samples_u8, samples_f) -> list[dict]:
    """Per kmodel layer: max |emulated - float| of the IR tensor it produces, in real units and LSB."""
    worst: list[dict] = [{} for _ in lowered.steps]
    for raw, x in zip(samples_u8, samples_f, strict=True):
        ref = interpreter.run(graph, x[None], keep_all=True)
        emu = kmodel.trace(km, raw, runtime="sdk")
        for i, (step, out) in enumerate(zip(lowered.steps, emu.layers, strict=True)):
            for bname in step.writes:
                buf = lowered.buffers[bname]
                if not buf.tensor or buf.tensor not in ref:
                    continue
                got = np.asarray(out.data).reshape(-1)[:buf.count].astype(np.float64)
                if buf.kind in ("kpu", "u8"):
                    got = (got - buf.quant.zero_point) * buf.quant.scale
                want = _ref_chw(ref[buf.tensor])
                if got.size != want.size:
                    continue
                err = float(np.max(np.abs(got - want)))
                w = worst[i]
                if err >= w.get("max_error", -1):
                    w["max_error"] = err
                    if buf.quant is not None:
                        w["max_error_lsb"] = err / buf.quant.scale
    return worst


def build_kmodel(ctx: BuildContext) -> KModelBuild:
    """Lower, plan, emit, verify and emulate; see the module docstring."""
    started = time.perf_counter()
    graph = ctx.graph
    if graph.meta.get("quantized"):
        raise UnsupportedError("the K210 target quantizes float models itself (uint8, KPU arithmetic); give the "
                               "float model, not an int8 .tflite")
    weight_bits = int(ctx.options.get("weight_bits") or 8)
    affine = _affine(ctx)
    rounding = ctx.options.get("rounding") or "optimized"
    samples = ctx.dataset[:ROUNDING_SAMPLES] if rounding == "optimized" else None
    fc = ctx.options.get("fc") or "auto"
    lowered = lower(graph, ctx.ranges, affine, weight_bits=weight_bits, samples=samples, fc=fc)
    mem = plan_memory(lowered)
    km = emit(lowered, mem, weight_bits=weight_bits)
    data = km.to_bytes()
    km = kmodel.load(data)
    runtime_problems = kmodel.check(km, runtime="sdk")
    if runtime_problems:
        raise AssertionError("emcgen wrote a kmodel its own verifier rejects: " + runtime_problems[0])

    samples_f = ctx.dataset[:ERROR_SAMPLES]
    samples_u8 = raw_pixels(samples_f, affine) if lowered.buffers[lowered.input_buffer].kind == "kpu" else samples_f
    errors = _layer_errors(lowered, km, graph, samples_u8, samples_f)
    expected = kmodel.run(km, samples_u8[0], runtime="sdk")

    # report: one row per kmodel layer
    ir_rows = {r["name"]: r for r in layer_rows(graph, act_itemsize=1)}
    rows = []
    for i, (step, layer) in enumerate(zip(lowered.steps, km.layers, strict=True)):
        out = lowered.buffers[step.writes[0]]
        kpu_in = [f"{int(mem.kpu.offsets[b])}+{mem.kpu.buffers and _lines(mem, b)}"
                  for b in step.reads if lowered.buffers[b].kind == "kpu"]
        main_rw = [f"{int(mem.main.offsets[b])}" for b in step.writes if lowered.buffers[b].kind != "kpu"]
        row = {
            "index": i, "name": ",".join(step.ir_ops) or "-", "op": layer.name, "kind": step.kind,
            "output": list(out.shape), "dtype": {"kpu": "uint8", "u8": "uint8", "f32": "float32"}[out.kind],
            "macs": sum(ir_rows.get(n, {}).get("macs", 0) for n in step.ir_ops),
            "params": sum(ir_rows.get(n, {}).get("params", 0) for n in step.ir_ops),
            "activation_bytes": out.count * (4 if out.kind == "f32" else 1),
            "kpu_in": ";".join(kpu_in),
            "kpu_out": ";".join(f"{int(mem.kpu.offsets[b])}+{_lines(mem, b)}" for b in step.writes
                                if lowered.buffers[b].kind == "kpu"),
            "main_out": ";".join(main_rw),
            **{k: round(v, 6) for k, v in errors[i].items()},
        }
        rows.append(row)
    out_err = []
    ref_out = interpreter.predict(graph, samples_f)
    for k, name in enumerate(graph.outputs):
        emu = np.stack([kmodel.run(km, s, runtime="sdk")[k].reshape(-1) for s in samples_u8])
        want = np.stack([_ref_chw(ref_out[k][j:j + 1]) for j in range(len(samples_f))])
        out_err.append({"output": name, "max_abs_error": float(np.max(np.abs(emu - want))),
                        "mean_abs_error": float(np.mean(np.abs(emu - want)))})
    report = Report(target="kmodel", model=graph.name, layers=rows)
    report.memory = {"kmodel_bytes": len(data), "main_mem_bytes": int(km.main_mem_usage),
                     "kpu_ram_bytes": int(mem.kpu_bytes)}
    report.extra = {
        "layer_columns": ["kpu_in", "kpu_out", "main_out", "max_error_lsb"],
        "quantization": {"method": ctx.quant, "weight_bits": weight_bits, "rounding": rounding, "fc": fc,
                         "input_affine": list(affine),
                         "samples": int(len(samples_f))},
        "accuracy": out_err,
        "notes": lowered.notes,
        "conversion_seconds": round(time.perf_counter() - started, 3),
    }
    in_shape = chw(graph.tensors[graph.inputs[0]].shape)
    outputs = [{"name": n, "shape": list(graph.tensors[n].shape), "dtype": "float32",
                "bytes": lowered.buffers[b].count * 4} for n, b in zip(graph.outputs, lowered.output_buffers,
                                                                        strict=True)]
    sample = samples_u8[0]
    if sample.ndim == 3:
        sample_hwc = sample
    else:
        sample_hwc = sample.reshape(in_shape[1], in_shape[2], in_shape[0])
    return KModelBuild(data=data, report=report, input_shape=(in_shape[1], in_shape[2], in_shape[0]),
                       input_affine=tuple(affine), outputs=outputs, sample_input=sample_hwc,
                       sample_expected=expected, notes=list(lowered.notes), kmodel=km)


def _lines(mem, buf: str) -> int:
    return next(b.size for b in mem.kpu.buffers if b.name == buf)


def log_buffer_map(build: KModelBuild, log=print) -> None:
    """Per layer the buffer map, then the memory totals, like the seed's log."""
    for r in build.report.layers:
        where = " ".join(f"{k}={r[k]}" for k in ("kpu_in", "kpu_out", "main_out") if r.get(k))
        err = f" err={r['max_error_lsb']:.2f}LSB" if "max_error_lsb" in r else ""
        log(f"layer {r['index']:2d}: {r['op']:<34s} {r['name'][:28]:<28s} {where}{err}")
    m = build.report.memory
    log(f"max main memory usage = {m['main_mem_bytes']:,} B, KPU RAM = {m['kpu_ram_bytes']:,} B "
        f"({m['kpu_ram_bytes'] // LINE} lines)")
    log(f"kmodel size = {m['kmodel_bytes']:,} B ({m['kmodel_bytes'] / 1024:.0f} KB)")


class KModelTarget(Target):
    name = "kmodel"
    summary = "kmodel v3 file for the Kendryte K210 KPU (MaixPy, standalone SDK)"
    output_kind = "file"
    suffix = ".kmodel"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--weight-bits", type=int, choices=[8, 16], default=8,
                            help="kmodel/k210: KPU weight width (default 8)")
        parser.add_argument("--fc", choices=["auto", "float", "kpu"], default="auto",
                            help="kmodel/k210: fully connected layers as float32 CPU layers, as uint8 KPU convs, or "
                                 "auto (KPU when the float weights exceed 256 KiB; default)")
        parser.add_argument("--rounding", choices=["optimized", "nearest"], default="optimized",
                            help="kmodel/k210: weight rounding: optimized for the calibration data (default) "
                                 "or plain round-to-nearest")

    def build(self, ctx: BuildContext, out: Path) -> Report:
        build = build_kmodel(ctx)
        Path(out).write_bytes(build.data)
        log_buffer_map(build, ctx.log)
        for note in build.notes:
            ctx.log(f"note: {note}")
        return build.report


def save_kmodel(network, filepath, dataset_dir, dataset_func="img_0_1", quant_func="minmax", quant_bit=8,
                version=3, sm_flag=False):
    """The seed's API (Maix-EMC): convert `network` (TensorLayer model, Keras model or file) to a kmodel v3.

    quant_func: minmax, kld or percentile; quant_bit: 8 or 16 (KPU weight width); sm_flag appends a
    softmax to the output like Maix-EMC's flag of that name. Returns the conversion Report.
    """
    from ...convert import convert, prepare
    if int(version) != 3:
        raise UnsupportedError(f"kmodel version {version} is not supported; emcgen writes version 3")
    if int(quant_bit) not in (8, 16):
        raise UnsupportedError(f"quant_bit {quant_bit}: the KPU takes 8- or 16-bit weights")
    model = network
    if sm_flag:
        graph = prepare(network)
        last = graph.producer(graph.outputs[0])
        if last is None or last.type != "softmax":
            out = graph.outputs[0]
            new = graph.unique_name(out + "/softmax")
            graph.add_tensor(new, graph.tensors[out].shape)
            graph.add_op("softmax", new, [out], [new])
            graph.outputs[0] = new
        model = graph
    report = convert(model, "kmodel", Path(filepath), dataset=dataset_dir, dataset_func=dataset_func,
                     quant=quant_func, options={"weight_bits": int(quant_bit)})
    print(f"[*] saved {filepath}: {report.memory['kmodel_bytes']:,} B, dataset path={dataset_dir}, quant func is "
          f"{quant_func}, quant bit is {quant_bit}, kmodel version is {version}")
    return report
