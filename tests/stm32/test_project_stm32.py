"""STM32 project generation: every layer kind the target emits, the project files, MCUs and bad input.

The MLPerf Tiny models (test_mlperf_stm32.py) use conv, depthwise, fully connected, average pool, add,
softmax and reshape. The small int8 models here cover the rest: max pool, pad, depthwise with a depth
multiplier, average pool with padding, concatenation (equal and differing parameters, channel and H axis),
mul with a constant and with a broadcast activation, mean, per-channel fully connected, logistic, tanh,
relu6, requantize (QUANTIZE int8 -> int8), 1x1 convolution with stride, softmax over rows, global pools,
several inputs and outputs, and in-place layers. Each is built with the host gcc and compared on every
layer with run_int8 and, where the model is a .tflite, with TFLM.
"""
from __future__ import annotations

import json
import re
import subprocess

import numpy as np
import pytest
import support
from project_helpers import (
    V,
    build_graph_project,
    int8_batch,
    load_tflite,
    mlperf_path,
    model_a,
    model_b,
    replay_arena,
    run_int8,
    tflm_layers,
    tflm_oracle,
)
from tflm_oracle import ModelBuilder

from emcgen.cli import main
from emcgen.convert import convert
from emcgen.errors import DoesNotFitError, EmcError, UnsupportedError
from emcgen.ir import Graph, QuantParams
from emcgen.targets.stm32 import mcus, plan
from emcgen.tflite_int8 import quant as Q

WARNINGS = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wdouble-promotion", "-Wcast-qual",
            "-Wconversion", "-Wmissing-prototypes", "-Wstrict-prototypes", "-O2"]


def _ir_graph(name: str) -> Graph:
    """IR-only layers (no .tflite op of their own): global pools (with a clamp) and concat with requantization."""
    g = Graph(name=name)
    q = QuantParams(0.05, -9)
    g.add_tensor("x", (1, 5, 7, 6), "int8", quant=q)
    g.add_tensor("x2", (1, 5, 7, 4), "int8", quant=QuantParams(0.03, 11))
    g.add_tensor("gmax", (1, 1, 1, 6), "int8", quant=q)
    g.add_tensor("gavg", (1, 6), "int8", quant=q)
    g.add_tensor("gmean", (1, 1, 1, 6), "int8", quant=QuantParams(0.013, 4))
    g.add_tensor("cat", (1, 5, 7, 10), "int8", quant=QuantParams(0.04, -3))
    g.add_tensor("cath", (1, 10, 7, 4), "int8", quant=QuantParams(0.03, 11))
    g.add_op("global_max_pool", "gmax_op", ["x"], ["gmax"], keepdims=True)
    g.add_op("global_avg_pool", "gavg_op", ["x"], ["gavg"], keepdims=False)
    g.add_op("global_avg_pool", "gmean_op", ["x"], ["gmean"], keepdims=True, activation="relu")
    g.add_op("concat", "cat_op", ["x", "x2"], ["cat"], axis=3)
    g.add_op("concat", "cath_op", ["x2", "x2"], ["cath"], axis=1)
    g.inputs, g.outputs = ["x", "x2"], ["gmax", "gavg", "gmean", "cat", "cath"]
    g.meta["quantized"] = True
    return g


def _check_project(project, inputs, blob=None, tflm_samples=2):
    """Host build with the trace hook: outputs and every layer equal to run_int8 (and TFLM for a .tflite)."""
    support.tool("gcc")
    work = project.path.parent / f"{project.path.name}_work"
    exe = V.build_host(project.path, work, trace=True)
    result = V.run_host(exe, project, V.pack_inputs(project, inputs), work, trace=True)
    got = V.unpack_outputs(project, result.outputs)
    ref = run_int8(project.graph, inputs, keep_all=True)
    for name in project.graph.outputs:
        assert np.array_equal(got[name], ref[name]), f"output {name} differs from run_int8"
        assert len(np.unique(got[name])) > 2, f"degenerate test: output {name} is (nearly) constant"
    for k in range(len(result.trace)):
        traced = V.split_trace(project, result.trace[k])
        assert V.first_divergence(project, traced, {n: v[k:k + 1] for n, v in ref.items()}) == ""
    if blob is not None:
        want = tflm_oracle.run(blob, *[inputs[n] for n in project.graph.inputs])
        for name, w in zip(project.graph.outputs, want, strict=True):
            assert np.array_equal(got[name], w), f"output {name} differs from TFLM"
        for k in range(tflm_samples):
            traced = V.split_trace(project, result.trace[k])
            theirs = tflm_layers(blob, project.graph, {n: v[k:k + 1] for n, v in inputs.items()})
            for op in project.graph.ops:
                assert np.array_equal(traced[op.outputs[0]], theirs[op.outputs[0]]), f"{op.name} vs TFLM"
    return result


@pytest.mark.parametrize("make", [model_a, model_b], ids=["model_a", "model_b"])
def test_every_layer_kind_equals_tflm(make, tmp_path):
    blob = make()
    graph = load_tflite(blob)
    out, report = build_graph_project(graph, tmp_path / make.__name__)
    project = V.load_project(out)
    inputs = int8_batch(graph, 32, seed=4)
    _check_project(project, inputs, blob)
    replay_arena(graph, project.report, {n: v[2:3] for n, v in inputs.items()})
    kinds = {row["cmsis_function"] for row in report.layers}
    in_place = [row["name"] for row in report.layers if row["in_place"]]
    if make is model_a:
        assert {"arm_max_pool_s8", "emc_nn_pad_s8", "arm_depthwise_conv_wrapper_s8", "arm_avgpool_s8",
                "emc_nn_concat_s8", "arm_elementwise_mul_s8", "arm_elementwise_add_s8", "emc_nn_mean_s8",
                "arm_convolve_wrapper_s8", "emc_model_lut_s8", "(view)"} <= kinds
        assert {"add_7", "activation_11"} <= set(in_place)
    else:
        assert {"emc_nn_requantize_s8", "arm_softmax_s8", "emc_model_lut_s8"} <= kinds
        assert {"activation_1", "identity_2", "activation_4"} <= set(in_place)


def test_ir_only_layers_equal_run_int8(tmp_path):
    graph = _ir_graph("ir_only")
    out, report = build_graph_project(graph, tmp_path / "ir")
    project = V.load_project(out)
    _check_project(project, int8_batch(graph, 16, seed=8))
    replay_arena(graph, project.report, int8_batch(graph, 1, seed=9))
    functions = [row["cmsis_function"] for row in report.layers]
    assert functions == ["arm_max_pool_s8", "arm_avgpool_s8", "emc_nn_mean_s8", "emc_nn_concat_s8",
                         "emc_nn_concat_s8"]
    model_c = (out / "model" / "model.c").read_text()
    assert "emc_model_clamp_s8(" in model_c and model_c.count("emc_nn_requantize_s8(") == 2   # both inputs of cat


def test_float_helper_and_self_test_on_host(tmp_path):
    """emc_model_run_f32 == dequantize(run_int8(quantize(x))); the embedded test input passes."""
    support.tool("gcc")
    out, _ = build_graph_project(load_tflite(model_b()), tmp_path / "b")
    project = V.load_project(out)
    exe = V.build_host(out, tmp_path / "w")
    proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "PASS" in proc.stdout, proc.stdout + proc.stderr
    rng = np.random.default_rng(3)
    xf = {n: rng.normal(0, 3, size=(12,) + project.graph.tensors[n].shape[1:]).astype(np.float32)
          for n in project.graph.inputs}
    xf["a"][0, 0, 0, 0] = 0.02 * 5   # half a step: rounds away from zero
    flat = np.concatenate([xf[n].reshape(12, -1) for n in project.graph.inputs], axis=1)
    res = V.run_host(exe, project, flat, tmp_path / "w", f32=True)
    want = run_int8(project.graph, xf)
    pos = 0
    for name in project.graph.outputs:
        t = project.graph.tensors[name]
        deq = (np.float64(t.quant.scale[0]) * (want[name].astype(np.int64) - int(t.quant.zero_point[0])))
        np.testing.assert_array_equal(res.outputs[:, pos:pos + t.size], deq.astype(np.float32).reshape(12, -1))
        pos += t.size


def test_project_files_report_and_readme(tmp_path):
    out = tmp_path / "kws"
    report = convert(mlperf_path("kws_ref_model.tflite"), "stm32", out, log=lambda *a: None)
    for rel in ("CMakeLists.txt", "README.md", "model/model.h", "model/model.c", "app/main.c", "app/host_main.c",
                "app/test_data.c", "app/test_data.h", "emc_nn/src/emc_nn_conv.c", "emc_nn/include/arm_nnfunctions.h",
                "firmware/startup.c", "firmware/stm32f405.ld", "cmake/arm-none-eabi.cmake", "emcgen/graph.json",
                "report.json"):
        assert (out / rel).is_file(), rel
    doc = json.loads((out / "report.json").read_text())
    assert doc["target"] == "stm32" and doc["memory"]["flash_bytes_source"] == "estimate"
    for key in ("arena_bytes", "scratch_bytes", "weights_bytes", "flash_bytes", "ram_bytes"):
        assert isinstance(doc["memory"][key], int) and doc["memory"][key] > 0
    layer = doc["layers"][0]
    for key in ("name", "op", "macs", "params", "cmsis_function", "input_offsets", "output_offset", "scratch_bytes",
                "weights_bytes"):
        assert key in layer
    assert doc["stm32"]["cmsis_nn"]["version"] == "v7.0.0" and doc["stm32"]["mcu"] == "stm32f405"
    assert sum(r["weights_bytes"] for r in doc["layers"]) == doc["memory"]["weights_bytes"]
    assert report.memory["arena_bytes"] == doc["memory"]["arena_bytes"]
    model_c = (out / "model" / "model.c").read_text()
    # no allocation, one arena, one scratch buffer, weights in flash, straight-line CMSIS-NN calls
    assert not re.search(r"\b(malloc|calloc|realloc|free)\s*\(", model_c)
    assert model_c.count("static int8_t emc_model_arena[") == 1 and model_c.count("emc_model_scratch[") == 1
    assert "static const int8_t l0_weights[" in model_c and "static int8_t l0_" not in model_c
    assert model_c.count("arm_convolve_wrapper_s8(&emc_model_ctx") == 5
    assert model_c.count("arm_depthwise_conv_wrapper_s8(&emc_model_ctx") == 4
    readme = (out / "README.md").read_text()
    for text in ("cmake -S . -B build -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake", "cmake --build build",
                 "st-flash write build/app.bin 0x08000000", "STM32_Programmer_CLI", "openocd",
                 "qemu-system-arm -M netduinoplus2", "-DCMSIS_NN_ROOT=", "EMC_FETCH_CMSIS_NN", "v7.0.0",
                 "emc_model_run(", "model/model.c", "emc_nn/src/*.c"):
        assert text in readme, text
    cmake = (out / "CMakeLists.txt").read_text()
    assert "GIT_TAG v7.0.0" in cmake and 'option(EMC_FETCH_CMSIS_NN "download' in cmake
    assert "-Wl" not in cmake and "/work" not in cmake and "/tmp" not in model_c


@pytest.mark.parametrize("mcu", ["stm32f405", "stm32f746", "stm32h743"])
def test_firmware_builds_with_werror_for_each_mcu(mcu, tmp_path):
    """The CMake firmware (IC: conv, add in place, avg pool, FC, softmax) builds warning-free; the arena lands
    in the MCU's arena region; the synthetic models' model.c compiles with strict flags for the core."""
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-nm", "cmake"):
        support.tool(tool)
    out = tmp_path / "ic"
    convert(mlperf_path("pretrainedResnet_quant.tflite"), "stm32", out, options={"mcu": mcu}, log=lambda *a: None)
    elf = V.build_firmware(out, tmp_path / "build", semihosting=None)   # the MCU's default
    nm = subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True, check=True).stdout
    address = int(next(line.split()[0] for line in nm.splitlines() if line.endswith(" emc_model_arena")), 16)
    region = mcus.get_mcu(mcu).arena_region
    assert region.origin <= address < region.origin + region.size
    chip = mcus.get_mcu(mcu)
    for make in (model_a, model_b):
        proj, _ = build_graph_project(load_tflite(make()), tmp_path / f"{make.__name__}_{mcu}", mcu=mcu)
        cmd = ["arm-none-eabi-gcc", *chip.cpu_flags, *WARNINGS, f"-I{proj / 'model'}",
               f"-I{proj / 'emc_nn' / 'include'}", "-c", str(proj / "model" / "model.c"), "-o", str(tmp_path / "m.o")]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_cmake_host_build_runs_the_self_test(tmp_path):
    for tool in ("cmake", "gcc"):
        support.tool(tool)
    out = tmp_path / "ad"
    convert(mlperf_path("ad01_int8.tflite"), "stm32", out, log=lambda *a: None)
    build = tmp_path / "build-host"
    for cmd in (["cmake", "-S", str(out), "-B", str(build), "-DEMC_WARNINGS_AS_ERRORS=ON"],
                ["cmake", "--build", str(build)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    run = subprocess.run([str(build / "emc_host_runner")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "PASS: outputs equal emcgen's expected bytes" in run.stdout


def test_unsupported_broadcast_and_ops_are_clear_errors(tmp_path):
    b = ModelBuilder()
    x = b.input("x", (1, 4, 5, 6), scale=0.05, zp=0)
    x2 = b.input("x2", (1, 4, 1, 6), scale=0.05, zp=0)
    y = b.output("y", (1, 4, 5, 6), scale=0.1, zp=0)
    b.op("ADD", [x, x2], [y], "AddOptions")
    with pytest.raises(UnsupportedError, match=r"op 'add_0': broadcasting \[1, 4, 1, 6\] against \[1, 4, 5, 6\]"):
        build_graph_project(load_tflite(b.build()), tmp_path / "bad")
    g = _ir_graph("up")
    g.add_tensor("u", (1, 10, 14, 6), "int8", quant=QuantParams(0.05, -9))
    g.add_op("upsample", "up_op", ["x"], ["u"], scale=(2, 2))
    g.outputs.append("u")
    with pytest.raises(UnsupportedError, match="op 'up_op' of type 'upsample' is not supported by the stm32"):
        plan.lower(g)


def test_float_model_without_dataset_is_a_clear_error(tmp_path):
    """A float model needs calibration data for the quantizer: one-line error, nothing written."""
    model = support.shared("models", "mlperf_tiny", "kws_ref_model_float32.tflite")
    out = tmp_path / "float"
    with pytest.raises(EmcError, match="needs calibration data"):
        convert(model, "stm32", out, log=lambda *a: None)
    assert not out.exists()


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """The TensorLayer MNIST example through `emcgen convert --target stm32 --dataset calibration/`."""
    root = support.ROOT / "examples" / "mnist"
    out = tmp_path_factory.mktemp("mnist") / "mnist"
    rc = main(["convert", str(root / "mnist_cnn.h5"), "--target", "stm32", "--dataset", str(root / "calibration"),
               "-o", str(out)])
    assert rc == 0
    held = np.load(root / "heldout_sample.npz")
    return V.load_project(out), (held["images"].astype(np.float32) / 255.0)[..., None], held


def test_mnist_example_end_to_end_on_host(mnist, tmp_path):
    """Float model -> quantizer -> C: 64 held-out digits equal run_int8 and TFLM (running the int8 .tflite the
    project stores), every layer on two digits, and the int8 model keeps the float model's accuracy there."""
    support.tool("gcc")
    project, images, held = mnist
    assert project.report["stm32"]["test_input"].startswith("calibration sample 0")
    name = project.graph.inputs[0]
    q = project.graph.tensors[name].quant
    xq = Q.quantize_float(images, q.scale[0], int(q.zero_point[0]))
    inputs = {name: xq}
    result = _check_project(project, inputs, (project.path / "emcgen" / "model_int8.tflite").read_bytes())
    logits = V.unpack_outputs(project, result.outputs)[project.graph.outputs[0]]
    int8_correct = int((logits.argmax(axis=1) == held["labels"]).sum())
    float_correct = int((held["logits"].argmax(axis=1) == held["labels"]).sum())
    assert int8_correct >= float_correct - 1, (int8_correct, float_correct)


def test_mnist_example_on_qemu_via_cli(mnist, tmp_path, capsys):
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm", "cmake", "gcc"):
        support.tool(tool)
    project, images, _ = mnist
    np.save(tmp_path / "x.npy", images[:16])            # float inputs: verify quantizes them
    rc = main(["verify", str(project.path), "--inputs", str(tmp_path / "x.npy"), "--outputs",
               str(tmp_path / "y.npy"), "--on", "qemu"])
    out = capsys.readouterr().out
    assert rc == 0 and "16/16 inputs equal" in out, out
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), run_int8(project.graph, images[:16])["dense2"])


def test_model_too_large_for_the_mcu_is_refused(tmp_path):
    """An arena larger than the STM32F405's 128 KB: DoesNotFitError naming the layer and the bytes, and
    nothing written by convert()."""
    g = Graph(name="big")
    q = QuantParams(0.05, 0)
    g.add_tensor("x", (1, 128, 128, 8), "int8", quant=q)
    g.add_tensor("y", (1, 64, 64, 8), "int8", quant=q)
    g.add_op("max_pool2d", "pool", ["x"], ["y"], kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0))
    g.inputs, g.outputs = ["x"], ["y"]
    g.meta["quantized"] = True
    out = tmp_path / "big"
    with pytest.raises(DoesNotFitError, match=r"needs 172,544 bytes of RAM on stm32f405 \(arena 163,840 at layer "
                                              r"'pool'.*the chip has 131,072 bytes in RAM"):
        convert(g, "stm32", out, log=lambda *a: None)
    assert not out.exists()
    convert(g, "stm32", out, options={"mcu": "stm32h743"}, log=lambda *a: None)   # 512 KB AXI SRAM: fits
    assert (out / "model" / "model.c").is_file()
