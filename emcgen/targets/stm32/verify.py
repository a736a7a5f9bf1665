"""`emcgen verify` for STM32 projects: build the generated code, run it on a batch, compare with emcgen.

Two ways to run the C code of a project:
- host: model.c + emc_nn (or CMSIS-NN from CMSIS_NN_ROOT) + app/host_main.c built with the PC's gcc
  (-Wall -Wextra -Werror; optionally ASan/UBSan, optionally with the EMC_MODEL_TRACE hook that dumps every
  layer's output), one process for the whole batch;
- qemu: the project's CMake firmware built with arm-none-eabi-gcc and run on qemu-system-arm in verify
  mode (inputs.bin / outputs.bin over semihosting), instructions per inference from emcgen's QEMU plugin,
  flash and RAM from arm-none-eabi-size. A project for a build-only Cortex-M7 (stm32f746, stm32h743) runs
  re-targeted to the `qemu-m7` pseudo-MCU (same core flags, QEMU mps2-an500).
The reference is run_int8 on the int8 graph stored in the project (OUT/emcgen/), never the C code.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import EmcError
from ...ir import Graph
from . import graph_store, mcus, qemu
from .target import STATE_DIR, to_int8

HOST_WARNINGS = ("-Wall", "-Wextra", "-Werror")
HOST_OPT = ("-O2",)
SANITIZE = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1")
CMSIS_NN_ENV = "CMSIS_NN_ROOT"


@dataclass
class Project:
    """A generated project folder and what emcgen stored in it."""

    path: Path
    graph: Graph
    report: dict
    mcu: mcus.Mcu

    @property
    def input_bytes(self) -> int:
        return sum(self.graph.tensors[n].size for n in self.graph.inputs)

    @property
    def output_bytes(self) -> int:
        return sum(self.graph.tensors[n].size for n in self.graph.outputs)

    @property
    def macs(self) -> int:
        return int(self.report.get("stm32", {}).get("macs", 0))


@dataclass
class RunResult:
    outputs: np.ndarray                       # (N, output_bytes) int8, outputs concatenated
    instructions: list[int] = field(default_factory=list)   # per inference (qemu)
    size: dict | None = None                  # arm-none-eabi-size of the firmware (qemu)
    machine: str = ""
    trace: np.ndarray | None = None           # (N, sum of layer output bytes) int8 (host, trace builds)
    console: str = ""


def load_project(path: Path) -> Project:
    path = Path(path)
    report_path = path / "report.json"
    if not report_path.is_file():
        raise EmcError(f"{path}: no report.json; is this a folder written by `emcgen convert --target stm32`?")
    report = json.loads(report_path.read_text())
    if report.get("target") != "stm32":
        raise EmcError(f"{path}: report.json is for target {report.get('target')!r}, not stm32")
    if not (path / "model" / "model.c").is_file():
        raise EmcError(f"{path}: model/model.c is missing; regenerate the project with `emcgen convert`")
    graph = graph_store.load_graph(path / STATE_DIR)
    return Project(path, graph, report, mcus.get_mcu(report.get("stm32", {}).get("mcu")))


# ---- inputs and outputs ------------------------------------------------------------------------------------

def read_inputs(project: Project, path: Path) -> dict[str, np.ndarray]:
    """A batch from .npy (one input) or .npz (arrays named like the inputs, or one array per input in order)."""
    graph = project.graph
    if not Path(path).is_file():
        raise EmcError(f"{path}: no such file")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise EmcError(f"{path}: not a .npy/.npz array file ({exc})") from None
    if isinstance(data, np.ndarray):
        if len(graph.inputs) != 1:
            raise EmcError(f"{path}: the model has {len(graph.inputs)} inputs; give an .npz with arrays named "
                           f"{', '.join(graph.inputs)}")
        arrays = {graph.inputs[0]: data}
    else:
        keys = list(data.keys())
        arrays = {n: data[n] for n in graph.inputs if n in keys}
        if len(arrays) != len(graph.inputs):
            if len(keys) != len(graph.inputs):
                raise EmcError(f"{path}: arrays {keys}; the model's inputs are {graph.inputs}")
            arrays = {n: data[k] for n, k in zip(graph.inputs, keys, strict=True)}
    out = {}
    for name, x in arrays.items():
        x = np.asarray(x)
        if x.shape == tuple(graph.tensors[name].shape[1:]):
            x = x[None]
        out[name] = to_int8(graph, name, x)
    sizes = {len(v) for v in out.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise EmcError(f"{path}: every input needs the same number (> 0) of samples, got {sorted(sizes)}")
    return out


def pack_inputs(project: Project, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """(N, input_bytes) int8: each sample's inputs concatenated in the model's order."""
    n = len(next(iter(inputs.values())))
    return np.concatenate([inputs[name].reshape(n, -1) for name in project.graph.inputs], axis=1).astype(np.int8)


def unpack_outputs(project: Project, flat: np.ndarray) -> dict[str, np.ndarray]:
    graph, out, pos = project.graph, {}, 0
    n = flat.shape[0]
    for name in graph.outputs:
        t = graph.tensors[name]
        out[name] = flat[:, pos:pos + t.size].reshape((n,) + tuple(t.shape[1:]))
        pos += t.size
    return out


def save_outputs(path: Path, outputs: dict[str, np.ndarray]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(outputs) == 1 and path.suffix != ".npz":
        np.save(path, next(iter(outputs.values())))
    elif path.suffix == ".npz":
        np.savez(path, **{k.replace("/", "_"): v for k, v in outputs.items()})
    else:
        raise EmcError(f"the model has {len(outputs)} outputs; give an --outputs ending in .npz to save them all")


def reference(project: Project, inputs: dict[str, np.ndarray], keep_all: bool = False) -> dict[str, np.ndarray]:
    from ...tflite_int8.interpreter import run_int8
    return run_int8(project.graph, inputs, keep_all=keep_all)


# ---- host build and run ------------------------------------------------------------------------------------

def _run(cmd: list[str], what: str, cwd: Path | None = None, timeout: float = 600, env=None):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)
    if proc.returncode != 0:
        text = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
        first = next((line for line in text if "error" in line.lower()), text[0] if text else "")
        raise EmcError(f"{what} failed (exit {proc.returncode}): {first}\n" + "\n".join(text[-15:]))
    return proc


def cmsis_nn_root(explicit: Path | str | None = None) -> Path | None:
    """The real CMSIS-NN to link: the argument, or $CMSIS_NN_ROOT; None means emc_nn."""
    value = explicit if explicit is not None else os.environ.get(CMSIS_NN_ENV) or None
    if value is None:
        return None
    root = Path(value)
    if not (root / "Include" / "arm_nnfunctions.h").is_file() or not list(root.glob("Source/*/*.c")):
        raise EmcError(f"{root} is not a CMSIS-NN checkout (no Include/arm_nnfunctions.h or Source/*/*.c)")
    return root


def cmsis_nn_sources(root: Path) -> list[Path]:
    """CMSIS-NN's integer kernel sources (newer versions add float ones gated by ARM_NN_ENABLE_F32/F16)."""
    return sorted(p for p in Path(root).glob("Source/*/*.c") if not re.search(r"_(f16|f32|flt)\.c$", p.name))


def build_host(project: Path, workdir: Path, *, sanitize: bool = False, trace: bool = False,
               cmsis_nn: Path | None = None, cc: str = "gcc", extra_flags: tuple[str, ...] = ()) -> Path:
    """Compile the project's model + kernels + host harness with the PC's compiler; returns the executable.

    Generated sources and emc_nn get -Wall -Wextra -Werror; CMSIS-NN's own sources (when linked) only -O2.
    """
    compiler = qemu.require_tool(cc)
    project, workdir = Path(project).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    base = ["-std=c99", *(SANITIZE if sanitize else HOST_OPT), *extra_flags]
    defines = ["-DEMC_MODEL_TRACE"] if trace else []
    ours = [project / "model" / "model.c", project / "app" / "host_main.c", project / "app" / "test_data.c"]
    includes = [f"-I{project / 'model'}", f"-I{project / 'app'}"]
    groups = []
    if cmsis_nn is None:
        ours += sorted((project / "emc_nn" / "src").glob("*.c"))
        includes.append(f"-I{project / 'emc_nn' / 'include'}")
    else:
        cmsis_nn = Path(cmsis_nn).resolve()
        ours.append(project / "emc_nn" / "src" / "emc_nn_extra.c")
        includes = [f"-I{cmsis_nn / 'Include'}", *includes, f"-I{project / 'emc_nn' / 'include'}"]
        groups.append(("cmsis_nn", base, [f"-I{cmsis_nn / 'Include'}"], cmsis_nn_sources(cmsis_nn)))
    groups.insert(0, ("emcgen", [*base, *HOST_WARNINGS, *defines], includes, ours))
    objects = []
    for name, flags, incs, sources in groups:
        objdir = workdir / f"obj_{name}"
        shutil.rmtree(objdir, ignore_errors=True)
        objdir.mkdir()
        _run([compiler, "-c", *flags, *incs, *sources], f"compiling the {name} sources with {cc}", cwd=objdir)
        objects += sorted(objdir.glob("*.o"))
    exe = workdir / ("emc_host_runner_asan" if sanitize else "emc_host_runner")
    _run([compiler, *base, *objects, "-o", exe], f"linking the host harness with {cc}")
    return exe


def _host_env() -> dict:
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def run_host(exe: Path, project: Project, x: np.ndarray, workdir: Path, *, trace: bool = False,
             f32: bool = False, timeout: float | None = None) -> RunResult:
    """Run a host executable on a packed batch x ((N, input_bytes) int8, or float32 with f32=True)."""
    workdir = Path(workdir)
    n = int(x.shape[0])
    inputs, outputs, trace_path = workdir / "inputs.bin", workdir / "outputs.bin", workdir / "trace.bin"
    dtype = np.float32 if f32 else np.int8
    inputs.write_bytes(np.ascontiguousarray(x, dtype=dtype).tobytes())
    outputs.unlink(missing_ok=True)
    cmd = [str(exe)] + (["--trace", str(trace_path)] if trace else []) + (["--f32"] if f32 else [])
    cmd += [str(inputs), str(n), str(outputs)]
    timeout = timeout or 60 + n * project.macs * 2e-8
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_host_env())
    if proc.returncode != 0:
        raise EmcError(f"{Path(exe).name} failed with exit code {proc.returncode}: "
                       f"{(proc.stderr.strip() or proc.stdout.strip())[-2000:]}")
    flat = np.frombuffer(outputs.read_bytes(), dtype=dtype)
    if flat.size != n * project.output_bytes:
        raise EmcError(f"{Path(exe).name} wrote {flat.size} output values, expected {n * project.output_bytes}")
    result = RunResult(flat.reshape(n, project.output_bytes), console=proc.stdout + proc.stderr)
    if trace:
        result.trace = np.frombuffer(trace_path.read_bytes(), dtype=np.int8).reshape(n, -1)
    return result


def split_trace(project: Project, row: np.ndarray) -> dict[str, np.ndarray]:
    """One sample's trace (every op's output, in op order) -> {tensor: array of its shape, batch 1}."""
    graph, out, pos = project.graph, {}, 0
    for op in graph.ops:
        t = graph.tensors[op.outputs[0]]
        out[op.outputs[0]] = row[pos:pos + t.size].reshape((1,) + tuple(t.shape[1:]))
        pos += t.size
    if pos != row.size:
        raise EmcError(f"the layer trace has {row.size} bytes per sample, the graph's layers {pos}")
    return out


def first_divergence(project: Project, traced: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str:
    """'layer i NAME (function): k of m values differ' for the first op whose output differs, or ''."""
    layers = {row["name"]: row for row in project.report.get("layers", [])}
    for i, op in enumerate(project.graph.ops):
        name = op.outputs[0]
        got, want = traced[name].reshape(-1), expected[name].reshape(-1)
        bad = int((got != want).sum())
        if bad:
            fn = layers.get(op.name, {}).get("cmsis_function", op.type)
            return f"layer {i} {op.name} ({fn}): {bad} of {want.size} values differ"
    return ""


def diagnose(project: Project, inputs: dict[str, np.ndarray], x: np.ndarray, k: int, workdir: Path,
             library: Path | None, host_only: bool) -> str:
    """Where a mismatching input first diverges, from a host build with the EMC_MODEL_TRACE hook."""
    try:
        exe = build_host(project.path, workdir, trace=True, cmsis_nn=library)
        traced = run_host(exe, project, x[k:k + 1], workdir, trace=True)
    except EmcError as exc:
        return "" if host_only else f"(no host trace: {str(exc).splitlines()[0]})"
    sample = {name: v[k:k + 1] for name, v in inputs.items()}
    where = first_divergence(project, split_trace(project, traced.trace[0]), reference(project, sample, keep_all=True))
    if where or host_only:
        return where + (" (host trace)" if where and not host_only else "")
    return "none in a host build of the same code (the difference is specific to the MCU build)"


# ---- firmware build and QEMU run ---------------------------------------------------------------------------

def qemu_mcu(mcu: mcus.Mcu) -> mcus.Mcu:
    """The MCU whose QEMU machine runs the project's code (itself, or qemu-m7 for a build-only Cortex-M7)."""
    if mcu.qemu_machine:
        return mcu
    if mcu.core == "cortex-m7":
        return mcus.get_mcu("qemu-m7")
    raise EmcError(f"{mcu.name} ({mcu.core}) has no QEMU machine; use `emcgen verify --on host`")


def build_firmware(project: Path, workdir: Path, *, mcu: mcus.Mcu | None = None, cmsis_nn: Path | None = None,
                   cmake_args: tuple[str, ...] = (), semihosting: bool | None = True) -> Path:
    """Build the project's firmware with its CMakeLists.txt (arm-none-eabi-gcc, -Werror); returns app.elf.

    With `mcu` different from the project's, a copy of the project is re-targeted to it first.
    semihosting None keeps the project's default (ON for MCUs QEMU emulates, OFF for build-only ones).
    """
    cmake = qemu.require_tool("cmake")
    qemu.require_tool("arm-none-eabi-gcc")
    project, workdir = Path(project).resolve(), Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    source = project
    if mcu is not None:
        source = workdir / "src"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(project, source, ignore=shutil.ignore_patterns("build*", STATE_DIR))
        mcus.render_firmware(mcu, source)
    build = workdir / "build"
    shutil.rmtree(build, ignore_errors=True)
    args = [cmake, "-S", source, "-B", build, f"-DCMAKE_TOOLCHAIN_FILE={source / 'cmake' / 'arm-none-eabi.cmake'}",
            "-DEMC_WARNINGS_AS_ERRORS=ON", *cmake_args]
    if semihosting is not None:
        args.append(f"-DEMC_SEMIHOSTING={'ON' if semihosting else 'OFF'}")
    if cmsis_nn is not None:
        args.append(f"-DCMSIS_NN_ROOT={Path(cmsis_nn).resolve()}")
    _run(args, "configuring the firmware with cmake")
    _run([cmake, "--build", build, "-j", str(max(os.cpu_count() or 1, 1))], "building the firmware")
    elf = build / "app.elf"
    if not elf.is_file():
        raise EmcError(f"the firmware build did not produce {elf}")
    return elf


def run_firmware(elf: Path, project: Project, x: np.ndarray, workdir: Path, *, mcu: mcus.Mcu,
                 timeout: float | None = None, plugin_dir: Path | None = None) -> RunResult:
    """Run the firmware in verify mode on QEMU over a packed int8 batch; counts instructions per inference."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    n = int(x.shape[0])
    (workdir / "inputs.bin").write_bytes(np.ascontiguousarray(x, dtype=np.int8).tobytes())
    (workdir / "outputs.bin").unlink(missing_ok=True)
    timeout = timeout or 60 + n * max(project.macs, 1) * 4e-7
    res = qemu.run_elf(elf, machine=mcu.qemu_machine, semihosting_args=["verify", str(n)], cwd=workdir,
                       timeout=timeout, plugin_dir=plugin_dir)
    if res.exit_code != 0:
        raise EmcError(f"the firmware exited with code {res.exit_code} on {mcu.qemu_machine}: "
                       f"{res.stdout.strip()[-500:]}")
    path = workdir / "outputs.bin"
    flat = np.frombuffer(path.read_bytes() if path.exists() else b"", dtype=np.int8)
    if flat.size != n * project.output_bytes:
        raise EmcError(f"the firmware wrote {flat.size} output bytes, expected {n * project.output_bytes}")
    if len(res.instructions_per_region) != n:
        raise EmcError(f"the QEMU plugin counted {len(res.instructions_per_region)} inferences, expected {n}")
    return RunResult(flat.reshape(n, project.output_bytes), list(res.instructions_per_region),
                     qemu.size_report(elf), mcu.qemu_machine, console=res.stdout)


def run_self_test(elf: Path, mcu: mcus.Mcu, workdir: Path, timeout: float = 120) -> dict:
    """The firmware's default mode: the embedded test input against the expected bytes stored in it.

    Returns {"passed": bool, "stack_used_bytes": int | None, "console": str}."""
    res = qemu.run_elf(elf, machine=mcu.qemu_machine, cwd=workdir, timeout=timeout, count_instructions=False)
    m = re.search(r"stack used: (\d+) B", res.stdout)
    return {"passed": res.exit_code == 0 and "PASS:" in res.stdout,
            "stack_used_bytes": int(m.group(1)) if m else None, "console": res.stdout}


# ---- compare, report, CLI ----------------------------------------------------------------------------------

def compare(project: Project, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> dict:
    per_output, equal, worst = {}, True, 0
    bad_samples: set[int] = set()
    for name in project.graph.outputs:
        g, w = got[name].astype(np.int16), want[name].astype(np.int16)
        diff = np.abs(g - w).reshape(len(g), -1)
        bad = np.flatnonzero(diff.max(axis=1) > 0) if diff.size else np.array([], int)
        per_output[name] = {"inputs_equal": int(len(g) - bad.size), "max_diff": int(diff.max(initial=0)),
                            "values_differ": int((diff > 0).sum()),
                            "first_bad_input": int(bad[0]) if bad.size else None}
        equal &= bad.size == 0
        worst = max(worst, per_output[name]["max_diff"])
        bad_samples.update(int(b) for b in bad)
    return {"equal": bool(equal), "max_diff": int(worst), "outputs": per_output,
            "inputs_differ": len(bad_samples), "first_bad_input": min(bad_samples) if bad_samples else None}


def update_report(project: Project, verify_info: dict, size: dict | None) -> None:
    path = project.path / "report.json"
    report = json.loads(path.read_text())
    report["verify"] = verify_info
    if size is not None:
        mem = report.setdefault("memory", {})
        mem["flash_bytes"] = int(size["flash_bytes"])
        mem["ram_bytes"] = int(size["ram_bytes"])
        source = f"arm-none-eabi-size of the firmware built by `emcgen verify --on qemu` ({verify_info['mcu']})"
        mem["flash_bytes_source"] = source
        mem["ram_bytes_source"] = source
    path.write_text(json.dumps(report, indent=2) + "\n")


def verify_project(project_path: Path, inputs_path: Path, outputs_path: Path, *, on: str = "host",
                   log=print, cmsis_nn: Path | str | None = None, workdir: Path | None = None) -> int:
    """Build, run on every input of the batch, save what the code produced, compare; 0 equal, 1 mismatch."""
    self_test = None
    if on not in ("host", "qemu"):
        raise EmcError(f"--on {on!r}: supported: host, qemu")
    project = load_project(project_path)
    inputs = read_inputs(project, inputs_path)
    x = pack_inputs(project, inputs)
    n = x.shape[0]
    library = cmsis_nn_root(cmsis_nn)
    lib_name = f"CMSIS-NN ({library})" if library else "emc_nn"
    with tempfile.TemporaryDirectory(prefix="emcgen-verify-") as tmp:
        tmp = Path(tmp)
        if on == "host":
            exe = build_host(project.path, tmp / "host", cmsis_nn=library)
            result = run_host(exe, project, x, tmp / "host")
            where = f"host (gcc -O2, {lib_name})"
            run_mcu = project.mcu
        else:
            run_mcu = qemu_mcu(project.mcu)
            elf = build_firmware(project.path, tmp / "fw", mcu=None if run_mcu is project.mcu else run_mcu,
                                 cmsis_nn=library)
            result = run_firmware(elf, project, x, tmp / "run", mcu=run_mcu)
            self_test = run_self_test(elf, run_mcu, tmp / "run")
            where = f"qemu {run_mcu.qemu_machine} ({run_mcu.core}, arm-none-eabi-gcc, {lib_name})"
        got = unpack_outputs(project, result.outputs)
        save_outputs(outputs_path, got)
        want = reference(project, inputs)
        cmp = compare(project, got, want)
        divergence = ""
        if not cmp["equal"]:
            divergence = diagnose(project, inputs, x, cmp["first_bad_input"], tmp / "trace", library,
                                  host_only=on == "host")
    info = {"on": on, "where": where, "library": lib_name, "mcu": run_mcu.name, "inputs": int(n),
            "equal": cmp["equal"], "max_diff": cmp["max_diff"], "inputs_differ": cmp["inputs_differ"],
            "outputs": cmp["outputs"]}
    if divergence:
        info["first_divergence"] = divergence
    if result.instructions:
        ins = result.instructions
        info["instructions_per_inference"] = int(round(float(np.mean(ins))))
        info["instructions_min"], info["instructions_max"] = int(min(ins)), int(max(ins))
        if project.macs:
            info["instructions_per_mac"] = round(float(np.mean(ins)) / project.macs, 3)
    if result.size is not None:
        info["flash_bytes"], info["ram_bytes"] = int(result.size["flash_bytes"]), int(result.size["ram_bytes"])
    if self_test is not None:
        info["self_test"] = "PASS" if self_test["passed"] else "FAIL"
        info["stack_used_bytes"] = self_test["stack_used_bytes"]
        info["equal"] = bool(info["equal"] and self_test["passed"])
    update_report(project, info, result.size)
    log(f"verify {project.path.name}: {n} input{'s' if n != 1 else ''} on {where}")
    for name, o in cmp["outputs"].items():
        log(f"  output {name}: {o['inputs_equal']}/{n} inputs equal emcgen's reference bytes "
            f"(max difference {o['max_diff']}, {o['values_differ']} values differ)")
    if "instructions_per_inference" in info:
        log(f"  instructions per inference: {info['instructions_per_inference']:,} "
            f"(min {info['instructions_min']:,}, max {info['instructions_max']:,}; "
            f"{info.get('instructions_per_mac', 0)} per MAC)")
    if result.size is not None:
        log(f"  flash {info['flash_bytes']:,} B, RAM {info['ram_bytes']:,} B (arm-none-eabi-size)")
    if self_test is not None:
        stack = info["stack_used_bytes"]
        log(f"  embedded test input: {info['self_test']}"
            + (f", stack used {stack:,} B of {mcus.DEFAULT_STACK_SIZE:,}" if stack is not None else ""))
    else:
        mem = project.report.get("memory", {})
        how = ("estimates; --on qemu measures them" if mem.get("flash_bytes_source") == "estimate"
               else "measured by the last --on qemu run")
        log(f"  arena {mem.get('arena_bytes', 0):,} B, scratch {mem.get('scratch_bytes', 0):,} B; flash "
            f"{mem.get('flash_bytes', 0):,} B, RAM {mem.get('ram_bytes', 0):,} B ({how})")
    log(f"  wrote {outputs_path}")
    if info["equal"]:
        log("PASS: the built code's outputs equal emcgen's reference on every input")
        return 0
    if cmp["equal"]:
        log("FAIL: the batch matches, but the firmware's embedded test input does not give the expected bytes: "
            + self_test["console"].strip().splitlines()[-1])
        return 1
    first = cmp["first_bad_input"]
    log(f"FAIL: {cmp['inputs_differ']} of {n} inputs give different bytes (first: input {first}, max difference "
        f"{cmp['max_diff']})" + (f"; first divergence at {divergence}" if divergence else ""))
    return 1
