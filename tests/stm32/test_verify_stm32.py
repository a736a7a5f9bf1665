"""`emcgen verify` on STM32 projects, end to end through the CLI.

The reference is run_int8 on inputs the test quantizes itself (and TFLM for the written outputs); a
corrupted project (one weight byte changed in model.c) must give exit code 1 and name the first layer
that diverges; the QEMU run must replace the flash/RAM estimates of report.json by measured numbers.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import support
from project_helpers import build_graph_project, int8_batch, mlperf_path, model_b, run_int8, tflm_oracle

from emcgen.cli import main
from emcgen.convert import convert
from emcgen.frontends.tflite import load_tflite
from emcgen.tflite_int8 import quant as Q

CMSIS_ROOT = os.environ.get("CMSIS_NN_ROOT")
CMSIS_SKIP = ("CMSIS_NN_ROOT is not set: building against the real ARM-software/CMSIS-NN (v7.0.0 API; not "
              "redistributable, so CI has no copy) needs a checkout given as CMSIS_NN_ROOT")


@pytest.fixture(autouse=True)
def _emc_nn_by_default(monkeypatch):
    """`emcgen verify` links the real CMSIS-NN when $CMSIS_NN_ROOT is set; these tests check emc_nn builds."""
    monkeypatch.delenv("CMSIS_NN_ROOT", raising=False)


@pytest.fixture(scope="module")
def kws(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "kws"
    convert(mlperf_path("kws_ref_model.tflite"), "stm32", out, log=lambda *a: None)
    return out


@pytest.fixture(scope="module")
def ad(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "ad"
    convert(mlperf_path("ad01_int8.tflite"), "stm32", out, log=lambda *a: None)
    return out


def _inputs(model_file: str, n: int, seed: int) -> np.ndarray:
    graph = load_tflite(mlperf_path(model_file))
    return int8_batch(graph, n, seed)[graph.inputs[0]]


def _copy(project, tmp_path, name):
    dest = tmp_path / name
    shutil.copytree(project, dest)
    return dest


def _corrupt_weight(project):
    """Change one value of the first weight array that the test input reaches (layer 0's weights)."""
    path = project / "model" / "model.c"
    text = path.read_text()
    start = text.index("{", text.index("static const int8_t l0_weights["))
    m = re.compile(r"-?\d+").search(text, start + 1)
    value = int(m.group())
    path.write_text(text[:m.start()] + str(value - 64 if value > 0 else value + 64) + text[m.end():])


def test_verify_host_cli_equals_reference_and_tflm(kws, tmp_path, capsys):
    support.tool("gcc")
    x = _inputs("kws_ref_model.tflite", 40, seed=21)
    np.save(tmp_path / "x.npy", x)
    rc = main(["verify", str(kws), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "40/40 inputs equal emcgen's reference bytes (max difference 0" in out and "PASS" in out
    y = np.load(tmp_path / "y.npy")
    graph = load_tflite(mlperf_path("kws_ref_model.tflite"))
    np.testing.assert_array_equal(y, run_int8(graph, x)[graph.outputs[0]])
    (want,) = tflm_oracle.run(mlperf_path("kws_ref_model.tflite").read_bytes(), x)
    np.testing.assert_array_equal(y, want)
    report = json.loads((kws / "report.json").read_text())
    v = report["verify"]
    assert v["on"] == "host" and v["inputs"] == 40 and v["equal"] is True and v["max_diff"] == 0


def test_verify_float_inputs_are_quantized_with_the_input_parameters(kws, tmp_path, capsys):
    support.tool("gcc")
    graph = load_tflite(mlperf_path("kws_ref_model.tflite"))
    q = graph.tensors[graph.inputs[0]].quant
    xf = np.random.default_rng(4).normal(0, 20, size=(10, 49, 10, 1)).astype(np.float32)
    xf[0, 0, 0, 0] = np.float32(q.scale[0]) * np.float32(2.5)   # a tie: rounds away from zero
    np.save(tmp_path / "xf.npy", xf)
    rc = main(["verify", str(kws), "--inputs", str(tmp_path / "xf.npy"), "--outputs", str(tmp_path / "y.npy")])
    assert rc == 0, capsys.readouterr().out
    xq = Q.quantize_float(xf, q.scale[0], int(q.zero_point[0]))
    (want,) = tflm_oracle.run(mlperf_path("kws_ref_model.tflite").read_bytes(), xq)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


def test_verify_corrupted_project_fails_naming_the_layer(kws, tmp_path, capsys):
    support.tool("gcc")
    bad = _copy(kws, tmp_path, "kws_bad")
    _corrupt_weight(bad)
    np.save(tmp_path / "x.npy", _inputs("kws_ref_model.tflite", 20, seed=2))
    rc = main(["verify", str(bad), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert re.search(r"FAIL: \d+ of 20 inputs give different bytes", out), out
    assert "first divergence at layer 0 conv2d_0 (arm_convolve_wrapper_s8)" in out, out
    report = json.loads((bad / "report.json").read_text())
    assert report["verify"]["equal"] is False and report["verify"]["max_diff"] > 0
    assert report["verify"]["first_divergence"].startswith("layer 0 conv2d_0")


def _qemu_tools():
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "arm-none-eabi-nm", "qemu-system-arm", "cmake", "gcc"):
        support.tool(tool)


def test_verify_qemu_cli_measures_instructions_flash_and_ram(ad, tmp_path, capsys):
    _qemu_tools()
    project = _copy(ad, tmp_path, "ad")
    before = json.loads((project / "report.json").read_text())["memory"]
    assert before["flash_bytes_source"] == "estimate"
    x = _inputs("ad01_int8.tflite", 12, seed=6)
    np.save(tmp_path / "x.npy", x)
    rc = main(["verify", str(project), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy"),
               "--on", "qemu"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "on qemu netduinoplus2 (cortex-m4" in out and "instructions per inference:" in out
    graph = load_tflite(mlperf_path("ad01_int8.tflite"))
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), run_int8(graph, x)[graph.outputs[0]])
    report = json.loads((project / "report.json").read_text())
    v, mem = report["verify"], report["memory"]
    assert v["on"] == "qemu" and v["equal"] is True and v["inputs"] == 12
    assert v["instructions_per_inference"] > report["stm32"]["macs"] / 4
    assert v["self_test"] == "PASS" and 0 < v["stack_used_bytes"] < 8192
    assert mem["flash_bytes"] == v["flash_bytes"] and mem["ram_bytes"] == v["ram_bytes"]
    assert mem["flash_bytes_source"].startswith("arm-none-eabi-size")
    assert mem["flash_bytes"] > mem["weights_bytes"] and mem["ram_bytes"] > mem["arena_bytes"]


def test_verify_qemu_corrupted_project_fails(ad, tmp_path, capsys):
    _qemu_tools()
    bad = _copy(ad, tmp_path, "ad_bad")
    _corrupt_weight(bad)
    np.save(tmp_path / "x.npy", _inputs("ad01_int8.tflite", 6, seed=1))
    rc = main(["verify", str(bad), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy"),
               "--on", "qemu"])
    out = capsys.readouterr().out
    assert rc == 1 and "FAIL:" in out and "layer 0 dense_0 (arm_fully_connected_s8)" in out, out


def test_verify_build_only_cortex_m7_project_runs_on_qemu_m7(tmp_path, capsys):
    _qemu_tools()
    out = tmp_path / "kws_h7"
    convert(mlperf_path("kws_ref_model.tflite"), "stm32", out, options={"mcu": "stm32h743"}, log=lambda *a: None)
    np.save(tmp_path / "x.npy", _inputs("kws_ref_model.tflite", 4, seed=3))
    rc = main(["verify", str(out), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy"),
               "--on", "qemu"])
    text = capsys.readouterr().out
    assert rc == 0 and "qemu mps2-an500 (cortex-m7, arm-none-eabi-gcc, emc_nn)" in text, text
    assert json.loads((out / "report.json").read_text())["verify"]["mcu"] == "qemu-m7"


def test_verify_bad_inputs_exit_2(kws, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((3, 10, 49, 1), np.int8))
    rc = main(["verify", str(kws), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy")])
    err = capsys.readouterr().err
    assert rc == 2 and "the model expects (N, 49, 10, 1)" in err and len(err.strip().splitlines()) == 1
    rc = main(["verify", str(tmp_path), "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npy")])
    assert rc == 2 and "no report.json" in capsys.readouterr().err


def test_fetchcontent_cmsis_nn_path(ad, tmp_path):
    """-DEMC_FETCH_CMSIS_NN=ON, with FetchContent pointed at a local checkout (no network in tests)."""
    root = CMSIS_ROOT
    if not root:
        pytest.skip(CMSIS_SKIP)
    for tool in ("cmake", "gcc"):
        support.tool(tool)
    build = tmp_path / "build"
    cmd = ["cmake", "-S", str(ad), "-B", str(build), "-DEMC_FETCH_CMSIS_NN=ON", "-DEMC_WARNINGS_AS_ERRORS=ON",
           f"-DFETCHCONTENT_SOURCE_DIR_CMSIS_NN={root}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "kernels from CMSIS-NN" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run(["cmake", "--build", str(build), "-j", "2"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = subprocess.run([str(build / "emc_host_runner")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "PASS" in run.stdout


def test_verify_two_inputs_two_outputs_npz(tmp_path, capsys):
    """A model with two inputs and two outputs: X and Y are .npz files keyed by tensor name."""
    support.tool("gcc")
    blob = model_b()
    graph = load_tflite(blob)
    out, _ = build_graph_project(graph, tmp_path / "b")
    inputs = int8_batch(graph, 9, seed=12)
    np.savez(tmp_path / "x.npz", **inputs)
    rc = main(["verify", str(out), "--inputs", str(tmp_path / "x.npz"), "--outputs", str(tmp_path / "y.npz")])
    assert rc == 0, capsys.readouterr().out
    got = np.load(tmp_path / "y.npz")
    want = tflm_oracle.run(blob, inputs["a"], inputs["v"])
    assert sorted(got.keys()) == sorted(graph.outputs)
    for name, w in zip(graph.outputs, want, strict=True):
        np.testing.assert_array_equal(got[name], w)
    rc = main(["verify", str(out), "--inputs", str(tmp_path / "x.npz"), "--outputs", str(tmp_path / "y.npy")])
    assert rc == 2 and "give an --outputs ending in .npz" in capsys.readouterr().err
