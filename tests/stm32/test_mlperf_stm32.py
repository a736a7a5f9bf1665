"""The four MLPerf Tiny int8 models through the STM32 target: convert -> generated C -> host gcc / QEMU.

Oracles: TFLM (tflite-micro's reference kernels) and emcgen's run_int8 (equal to TFLM, tests/tflite).
- host (gcc -Wall -Wextra -Werror): 100 random int8 inputs per model in one process, every output byte
  equal to run_int8 and TFLM; every layer's output (EMC_MODEL_TRACE build) on 3 inputs equal to run_int8 and
  TFLM's intermediate tensors, and on all 100 inputs equal to run_int8;
- ASan/UBSan host builds (IC: in-place add; VWW: the largest arena) clean on a batch;
- QEMU netduinoplus2 (Cortex-M4F, arm-none-eabi-gcc -O3): identical bytes, instructions per inference;
- arena sizes: at most the live-tensor lower bound of docs/anchors.md, and the plan replayed byte by byte;
- real CMSIS-NN (only with CMSIS_NN_ROOT set): the same code linked against ARM-software/CMSIS-NN.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import support
from project_helpers import (
    MLPERF,
    TFLM_VWW_ARENA_HEAD,
    V,
    int8_batch,
    mlperf_path,
    replay_arena,
    tflm_layers,
    tflm_oracle,
)

from emcgen.convert import convert

MODELS = list(MLPERF)
N_INPUTS = 100
QEMU_INPUTS = {"ad01_int8.tflite": 10, "kws_ref_model.tflite": 10, "pretrainedResnet_quant.tflite": 3,
               "vww_96_int8.tflite": 3}
CMSIS_SKIP = ("CMSIS_NN_ROOT is not set: the comparison with the real ARM-software/CMSIS-NN (v7.0.0 API; not "
              "redistributable, so CI has no copy) needs a checkout given as CMSIS_NN_ROOT")


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    """Convert each model once per test module (through the public convert pipeline)."""
    root = tmp_path_factory.mktemp("mlperf_stm32")
    cache: dict[str, V.Project] = {}

    def get(name: str) -> V.Project:
        if name not in cache:
            out = root / Path(name).stem
            convert(mlperf_path(name), "stm32", out, log=lambda *a: None)
            cache[name] = V.load_project(out)
        return cache[name]
    return get


@pytest.mark.parametrize("name", MODELS)
def test_arena_at_most_live_tensor_bound(name, projects):
    project = projects(name)
    mem = project.report["memory"]
    assert mem["arena_bytes"] <= MLPERF[name], f"{name}: arena {mem['arena_bytes']} > bound {MLPERF[name]}"
    assert mem["arena_lower_bound"] <= mem["arena_bytes"]
    assert {"arena_bytes", "scratch_bytes", "weights_bytes", "flash_bytes", "ram_bytes"} <= set(mem)
    assert mem["scratch_bytes"] % 4 == 0
    if name == "vww_96_int8.tflite":
        assert mem["arena_bytes"] < TFLM_VWW_ARENA_HEAD
    model_h = (project.path / "model" / "model.h").read_text()
    assert f"#define EMC_MODEL_ARENA_BYTES {mem['arena_bytes']} " in model_h


@pytest.mark.parametrize("name", MODELS)
def test_arena_plan_replayed_byte_by_byte(name, projects):
    project = projects(name)
    replay_arena(project.graph, project.report, int8_batch(project.graph, 1, seed=11))


def _check_outputs(project, got, want, label):
    for name in project.graph.outputs:
        g, w = got[name], want[name]
        assert g.shape == w.shape and g.dtype == np.int8, (g.shape, w.shape)
        bad = np.flatnonzero((g != w).reshape(len(g), -1).any(axis=1))
        assert bad.size == 0, f"{label}: {bad.size} of {len(g)} inputs differ (first {bad[:5]})"


@pytest.mark.parametrize("name", MODELS)
def test_host_build_equals_tflm_and_run_int8(name, projects, tmp_path):
    support.tool("gcc")
    project = projects(name)
    blob = mlperf_path(name).read_bytes()
    inputs = int8_batch(project.graph, N_INPUTS, seed=20261126)
    x = V.pack_inputs(project, inputs)
    exe = V.build_host(project.path, tmp_path / "plain")
    got = V.unpack_outputs(project, V.run_host(exe, project, x, tmp_path / "plain").outputs)
    want = V.reference(project, inputs)
    _check_outputs(project, got, want, f"{name} vs run_int8")
    tflm = dict(zip(project.graph.outputs, tflm_oracle.run(blob, *[inputs[n] for n in project.graph.inputs]),
                    strict=True))
    _check_outputs(project, got, tflm, f"{name} vs TFLM")
    assert len(np.unique(got[project.graph.outputs[0]])) > 2, "degenerate test: constant outputs"


@pytest.mark.parametrize("name", MODELS)
def test_every_layer_equals_run_int8_and_tflm(name, projects, tmp_path):
    support.tool("gcc")
    project = projects(name)
    graph = project.graph
    blob = mlperf_path(name).read_bytes()
    inputs = int8_batch(graph, 20, seed=5)
    exe = V.build_host(project.path, tmp_path, trace=True)
    result = V.run_host(exe, project, V.pack_inputs(project, inputs), tmp_path, trace=True)
    reference = V.reference(project, inputs, keep_all=True)
    for k in range(len(result.trace)):
        traced = V.split_trace(project, result.trace[k])
        sample = {n: v[k:k + 1] for n, v in reference.items()}
        assert V.first_divergence(project, traced, sample) == "", f"{name}, input {k} vs run_int8"
        if k < 3:
            theirs = tflm_layers(blob, graph, {n: v[k:k + 1] for n, v in inputs.items()})
            for op in graph.ops:
                out = op.outputs[0]
                assert np.array_equal(traced[out], theirs[out]), \
                    f"{name}, input {k}: layer {op.name} differs from TFLM's tensor"
    assert len(graph.ops) == len(project.report["layers"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pretrainedResnet_quant.tflite", "vww_96_int8.tflite"])
def test_asan_ubsan_host_build_is_clean(name, projects, tmp_path):
    support.tool("gcc")
    project = projects(name)
    inputs = int8_batch(project.graph, 8, seed=3)
    exe = V.build_host(project.path, tmp_path, sanitize=True)
    result = V.run_host(exe, project, V.pack_inputs(project, inputs), tmp_path)   # raises on any report
    assert "runtime error" not in result.console and "AddressSanitizer" not in result.console
    _check_outputs(project, V.unpack_outputs(project, result.outputs), V.reference(project, inputs), name)


def _qemu_tools():
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm", "cmake", "gcc"):
        support.tool(tool)


def _qemu_case(name, projects, tmp_path, cmsis_nn=None):
    _qemu_tools()
    project = projects(name)
    inputs = int8_batch(project.graph, QEMU_INPUTS[name], seed=9)
    elf = V.build_firmware(project.path, tmp_path / "fw", cmsis_nn=cmsis_nn)
    result = V.run_firmware(elf, project, V.pack_inputs(project, inputs), tmp_path / "run", mcu=project.mcu)
    _check_outputs(project, V.unpack_outputs(project, result.outputs), V.reference(project, inputs),
                   f"{name} on QEMU")
    assert len(result.instructions) == len(next(iter(inputs.values())))
    assert min(result.instructions) > project.macs / 4, "fewer instructions than a quarter per MAC: miscounted"
    weights = project.report["memory"]["weights_bytes"]
    assert result.size["flash_bytes"] > weights
    assert result.size["arena"] >= project.report["memory"]["arena_bytes"]
    return result


@pytest.mark.parametrize("name", ["ad01_int8.tflite", "kws_ref_model.tflite"])
def test_qemu_cortex_m4_equals_reference(name, projects, tmp_path):
    _qemu_case(name, projects, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pretrainedResnet_quant.tflite", "vww_96_int8.tflite"])
def test_qemu_cortex_m4_equals_reference_large(name, projects, tmp_path):
    _qemu_case(name, projects, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_real_cmsis_nn_host_build(name, projects, tmp_path):
    root = os.environ.get("CMSIS_NN_ROOT")
    if not root:
        pytest.skip(CMSIS_SKIP)
    support.tool("gcc")
    project = projects(name)
    inputs = int8_batch(project.graph, 50, seed=17)
    exe = V.build_host(project.path, tmp_path, cmsis_nn=V.cmsis_nn_root(root))
    got = V.unpack_outputs(project, V.run_host(exe, project, V.pack_inputs(project, inputs), tmp_path).outputs)
    _check_outputs(project, got, V.reference(project, inputs), f"{name} with CMSIS-NN")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kws_ref_model.tflite", "pretrainedResnet_quant.tflite"])
def test_real_cmsis_nn_on_qemu(name, projects, tmp_path):
    root = os.environ.get("CMSIS_NN_ROOT")
    if not root:
        pytest.skip(CMSIS_SKIP)
    _qemu_case(name, projects, tmp_path, cmsis_nn=V.cmsis_nn_root(root))
