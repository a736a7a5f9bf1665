"""K210 project target: rendering, embedded data, compile check against the SDK stubs, memory fit.

The project is rendered from a stand-in for kmodel_target.KModelBuild made of outside data only: the
Maix-EMC cifar10 kmodel fixture, its input image as the bytes of Maix-EMC's own image.c, and as expected
outputs the values the Maix-EMC authors measured on K210 hardware (fixtures README).
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import support

from emcgen.errors import DoesNotFitError, EmcError, UnsupportedError
from emcgen.report import Report
from emcgen.targets import get as get_target
from emcgen.targets.k210 import project as k210

FIX = ("fixtures", "kmodel_v3")
CIFAR_SHA256 = "35d9788774c590df985706cb5634fe37f10f59383bafd28171aef0caf78aae2c"
HW_OUTPUT = [1.181304, -5.381746, 1.580029, 0.045343, 0.511492, -0.656629, -3.597826, 0.561016, -0.733270,
             -3.771462]
LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
C_FILES = ["src/main.c", "src/model_data.c", "src/model_io.c", "src/test_data.c", "src/compat/nncase_stubs.c"]


@dataclass
class StandIn:
    """Same fields as kmodel_target.KModelBuild."""

    data: bytes
    report: Report
    input_shape: tuple
    input_affine: tuple | None
    outputs: list
    sample_input: np.ndarray
    sample_expected: list
    notes: list = field(default_factory=list)


def cifar_build() -> StandIn:
    data = support.shared(*FIX, "maix-emc_cifar10_output.kmodel").read_bytes()
    assert hashlib.sha256(data).hexdigest() == CIFAR_SHA256
    chw = np.frombuffer(support.shared(*FIX, "maix-emc_plane_chw_u8.bin").read_bytes(), np.uint8).reshape(3, 32, 32)
    report = Report(target="kmodel", model="cifar10 (Maix-EMC fixture)",
                    memory={"kmodel_bytes": len(data), "main_mem_bytes": 40960, "kpu_ram_bytes": 2 * 1024 * 1024})
    return StandIn(data, report, (32, 32, 3), (1 / 255, 0.0),
                   [{"name": "dense_out", "shape": (1, 10), "dtype": "float32", "bytes": 40}],
                   np.ascontiguousarray(chw.transpose(1, 2, 0)), [np.array(HW_OUTPUT, np.float32)],
                   ["stand-in note: needs a kpu.c with type 21"])


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("k210") / "cifar_k210"
    k210.render_project(cifar_build(), out, {"k210_labels": LABELS}, source="cifar10 fixture")
    return out


# ---- helpers --------------------------------------------------------------------------------------------

def c_array(text: str, name: str) -> str:
    m = re.search(rf"\b{name}\[[^\]]*\][^=]*=\s*\{{(.*?)\}};", text, re.S)
    assert m, f"array {name} not found"
    return m.group(1)


def c_bytes(text: str, name: str) -> bytes:
    return bytes(int(v, 16) for v in re.findall(r"0x([0-9a-f]{2})\b", c_array(text, name)))


def c_floats(text: str, name: str) -> np.ndarray:
    return np.array([float(v) for v in re.findall(r"(-?[0-9.e+-]+)f", c_array(text, name))], np.float32)


def c_define(text: str, name: str) -> str:
    m = re.search(rf"#define {name} (\S+)", text)
    assert m, f"#define {name} not found"
    return m.group(1)


def readme_block(project: Path, marker: str) -> str:
    """The ```sh block right after <!-- emcgen:MARKER --> in the generated README."""
    text = (project / "README.md").read_text()
    m = re.search(rf"<!-- emcgen:{marker} -->\n```sh\n(.*?)```", text, re.S)
    assert m, f"README has no emcgen:{marker} block"
    return m.group(1)


def run_block(script: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + full_env.get("PATH", "")
    full_env.update(env or {})
    return subprocess.run(["bash", "-e", "-c", script], cwd=cwd, env=full_env, capture_output=True, text=True)


# ---- rendering --------------------------------------------------------------------------------------------

def test_project_files(project):
    for name in ["CMakeLists.txt", "README.md", "model.kmodel", "src/model_data.h", "src/model_io.h",
                 "src/test_data.h", "src/compat/lock_compat.h", *C_FILES]:
        assert (project / name).is_file(), name
    assert not list(project.rglob("*.j2"))


def test_target_registered_with_options():
    tgt = get_target("k210")
    assert type(tgt) is k210.K210ProjectTarget
    assert tgt.name == "k210" and tgt.output_kind == "project" and tgt.summary
    import argparse
    p = argparse.ArgumentParser()
    tgt.add_arguments(p)
    args = p.parse_args(["--k210-labels", "l.txt", "--k210-camera", "rgb565", "--k210-camera-size", "320x240",
                         "--k210-tolerance", "0.01"])
    assert vars(args) == {"k210_labels": "l.txt", "k210_camera": "rgb565", "k210_camera_size": "320x240",
                          "k210_tolerance": 0.01}


def test_model_array_is_the_kmodel(project):
    text = (project / "src/model_data.c").read_text()
    header = (project / "src/model_data.h").read_text()
    data = support.shared(*FIX, "maix-emc_cifar10_output.kmodel").read_bytes()
    assert c_bytes(text, "emc_model_data") == data
    assert re.search(r"const uint8_t emc_model_data\[EMC_MODEL_SIZE\] __attribute__\(\(aligned\(256\)\)\)", text)
    assert c_define(header, "EMC_MODEL_SIZE") == f"{len(data)}u"
    assert int(c_define(header, "EMC_MODEL_CRC32").rstrip("u"), 16) == zlib.crc32(data)
    assert c_define(header, "EMC_MAIN_MEM_USAGE") == "40960u"     # fixtures README: main_mem_usage=40960
    assert (project / "model.kmodel").read_bytes() == data


def test_test_data_is_the_sample_and_the_hardware_output(project):
    text = (project / "src/test_data.c").read_text()
    assert c_bytes(text, "emc_test_input") == support.shared(*FIX, "maix-emc_plane_chw_u8.bin").read_bytes()
    np.testing.assert_array_equal(c_floats(text, "expected_0"), np.array(HW_OUTPUT, np.float32))
    header = (project / "src/test_data.h").read_text()
    assert float(c_define(header, "EMC_TOLERANCE").rstrip("f")) == pytest.approx(1e-4)
    labels = (project / "src/model_data.c").read_text()
    assert re.findall(r'^\s+"([^"]*)",$', labels, re.M) == LABELS


def test_main_uses_the_sdk_runtime(project):
    main = (project / "src/main.c").read_text()
    for call in ["sysctl_pll_set_freq(SYSCTL_PLL0", "sysctl_pll_set_freq(SYSCTL_PLL1",
                 "sysctl_clock_enable(SYSCTL_CLOCK_AI)", "kpu_load_kmodel(&g_model, emc_model_data)",
                 "kpu_run_kmodel(&g_model, input, EMC_DMA_CHANNEL, on_inference_done, NULL)", "kpu_get_output(",
                 "read_cycle()", "emc_crc32(emc_model_data", "RESULT: %s"]:
        assert call in main, call
    assert re.search(r"^static volatile int g_done;", main, re.M)
    assert "malloc" not in re.sub(r"/\*.*?\*/", "", main, flags=re.S)


def test_readme_gives_the_commands(project):
    text = (project / "README.md").read_text()
    build = readme_block(project, "build")
    assert 'cmake -S . -B build -DSDK_ROOT="$K210_SDK_ROOT"' in build and "cmake --build build" in build
    assert "kflash -p /dev/ttyUSB0 -b 1500000 -B dan -t build/cifar_k210.bin" in text
    assert "newlib-3.3.0.tar.xz" in readme_block(project, "newlib")
    assert "riscv64-unknown-elf-gcc -march=rv64imafc -mabi=lp64f -mcmodel=medany" in readme_block(project, "check")
    # SDK-version facts for this model: type 21 and the FC activation
    assert "QUANTIZED_TENSORFLOW_FLATTEN (type 21)" in text
    assert "**this model has one: build it\n  with V0.5.7 or develop**" in text
    assert "stand-in note: needs a kpu.c with type 21" in text
    assert "  [2] 1.580029 (expected 1.580029)" in text and "#1 class 2 bird" in text


# ---- compile check (the README's own commands) -------------------------------------------------------

def test_every_c_file_compiles_against_the_sdk_stub(project):
    support.tool("riscv64-unknown-elf-gcc")
    result = run_block(readme_block(project, "check"), project)
    assert result.returncode == 0, result.stderr
    # the lock compat header is valid C too
    stub = k210.Path(k210.__file__).parent / "sdk_stub"
    r = subprocess.run(["riscv64-unknown-elf-gcc", "-march=rv64imafc", "-mabi=lp64f", "-ffreestanding", "-Wall",
                        "-Wextra", "-Werror", "-include", str(project / "src/compat/lock_compat.h"), "-isystem",
                        str(stub / "libc"), "-x", "c", "-c", "-", "-o", os.devnull],
                       input="static _lock_t l;\nvoid f(void);\nvoid f(void) { _lock_acquire_recursive(&l); }\n",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_compile_check_catches_a_type_error(project, tmp_path):
    support.tool("riscv64-unknown-elf-gcc")
    import shutil
    broken = tmp_path / "broken"
    shutil.copytree(project / "src", broken / "src")
    main = (broken / "src/main.c").read_text()
    # size_t * -> unsigned *: a real SDK would reject it the same way
    main = main.replace("size_t size = 0;", "unsigned size = 0;", 1)
    (broken / "src/main.c").write_text(main)
    result = run_block(readme_block(project, "check"), broken)
    assert result.returncode != 0
    assert "kpu_get_output" in result.stderr and "incompatible pointer type" in result.stderr


# ---- options and errors ------------------------------------------------------------------------------

def test_rgb565_camera_of_another_size(tmp_path):
    out = tmp_path / "cam"
    k210.render_project(cifar_build(), out, {"k210_camera": "rgb565", "k210_camera_size": "80x60",
                                             "k210_tolerance": 0.5})
    header = (out / "src/test_data.h").read_text()
    assert "extern const uint16_t emc_test_frame[4800];" in header
    assert c_define(header, "EMC_CAMERA_FORMAT") == "EMC_PIXEL_RGB565"
    assert (c_define(header, "EMC_CAMERA_W"), c_define(header, "EMC_CAMERA_H")) == ("80", "60")
    assert float(c_define(header, "EMC_TOLERANCE").rstrip("f")) == 0.5
    assert c_define((out / "src/model_data.h").read_text(), "EMC_NUM_LABELS") == "0u"
    support.tool("riscv64-unknown-elf-gcc")
    result = run_block(readme_block(out, "check"), out)
    assert result.returncode == 0, result.stderr


def test_bad_options_are_one_line_errors(tmp_path):
    kb = cifar_build()
    cases = [({"k210_labels": ["a", "b"]}, "has 2 class names but output 0 has 10 values"),
             ({"k210_labels": str(tmp_path / "missing.txt")}, "cannot read it"),
             ({"k210_camera_size": "320by240"}, "give WIDTHxHEIGHT"),
             ({"k210_tolerance": -1.0}, "non-negative"),
             ({"k210_camera": "yuv"}, "supported formats")]
    for options, message in cases:
        with pytest.raises(EmcError, match=message) as err:
            k210.render_project(kb, tmp_path / "x", options)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "x").exists()
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n\n")
    k210.render_project(kb, tmp_path / "ok", {"k210_labels": str(labels)})
    assert '"truck",' in (tmp_path / "ok/src/model_data.c").read_text()


def test_does_not_fit_names_the_numbers(tmp_path):
    kb = cifar_build()
    main_mem = 3 * 1024 * 1024 - 300_000                                # fake: a huge main buffer
    kb.report.memory["main_mem_bytes"] = main_mem
    with pytest.raises(DoesNotFitError) as err:
        k210.render_project(kb, tmp_path / "big", {})
    msg = str(err.value)
    # kmodel + alignment + main buffer + (input, frame, expected) + (g_packed, g_output, g_scores)
    # + V0.5.7 DMA bounce buffer (the main buffer is the larger transfer) + reserve
    needed = 283_924 + 255 + main_mem + (3072 + 3072 + 40) + (3072 + 80) + main_mem + 320 * 1024
    assert f"needs {needed:,} bytes of SRAM" in msg
    assert "6,291,456" in msg and "kmodel 283,924" in msg and f"{needed - 6291456:,} bytes too many" in msg
    assert not (tmp_path / "big").exists()
    kb = cifar_build()
    kb.report.memory["kpu_ram_bytes"] = 2 * 1024 * 1024 + 64
    with pytest.raises(DoesNotFitError, match="2,097,216 bytes of KPU RAM"):
        k210.render_project(kb, tmp_path / "big", {})


def test_report_memory_and_fit(tmp_path):
    report = k210.render_project(cifar_build(), tmp_path / "r", {})
    m = report.memory
    assert report.target == "k210"
    assert m["kmodel_bytes"] == 283_924 and m["main_mem_bytes"] == 40_960 and m["kpu_ram_bytes"] == 2_097_152
    assert m["sram_bytes"] == 6 * 1024 * 1024 and m["sram_free_bytes"] == m["sram_bytes"] - m["sram_needed_bytes"]
    assert report.extra["k210"]["sram_fit"].startswith("fits: ")
    assert any("type 21" in n for n in report.extra["k210"]["sdk_notes"])


def test_fc_first_kmodel_is_refused(tmp_path):
    data = support.shared(*FIX, "nncase-v0.1.0-rc5_iris.kmodel").read_bytes()
    kb = StandIn(data, Report(target="kmodel"), (1, 1, 4), None,
                 [{"name": "out", "shape": (1, 3), "dtype": "float32", "bytes": 12}],
                 np.zeros((1, 1, 4), np.uint8), [np.zeros(3, np.float32)])
    with pytest.raises(UnsupportedError, match="first layer is FULLY_CONNECTED"):
        k210.render_project(kb, tmp_path / "iris", {})


def test_c_literals():
    for v in [0.0, -0.0, 1.0, 3.0, 1e-45, 3.4028235e38, -5.381746, 1 / 3]:
        text = k210.c_float(v)
        assert text.endswith("f") and np.float32(float(text[:-1])) == np.float32(v)
        assert re.fullmatch(r"-?\d+\.\d*(e[+-]\d+)?f|-?\d+(\.\d*)?e[+-]\d+f", text), text
    assert k210.c_string('a"b\\c?\n\u00e9') == 'a\\"b\\\\c\\077\\012\\303\\251'
    assert k210.c_identifier("3-out.dir") == "k210_3_out_dir"
