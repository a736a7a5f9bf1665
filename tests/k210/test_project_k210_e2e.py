"""End to end: `emcgen convert examples/mnist/mnist_cnn.h5 --target k210` writes a project whose embedded
test input is a calibration image (read here with PIL), whose expected outputs agree with the float model,
whose kmodel array is the kmodel file, and whose C files pass the README's compile check.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import support
from PIL import Image
from test_project_k210 import c_bytes, c_define, c_floats, readme_block, run_block

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "mnist"


@pytest.fixture(scope="module")
def mnist_project(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    tmp = tmp_path_factory.mktemp("mnist")
    labels = tmp / "digits.txt"
    labels.write_text("".join(f"digit {i}\n" for i in range(10)))
    out = tmp / "mnist_k210"
    r = subprocess.run([sys.executable, "-m", "emcgen", "convert", str(EXAMPLE / "mnist_cnn.h5"), "--target", "k210",
                        "--dataset", str(EXAMPLE / "calibration"), "-o", str(out), "--k210-labels", str(labels)],
                       capture_output=True, text=True, cwd=tmp)
    return out, r


def test_cli_writes_the_project(mnist_project):
    out, r = mnist_project
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}/" in r.stdout and "k210: SRAM fits:" in r.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["target"] == "k210"
    mem = report["memory"]
    kmodel = (out / "model.kmodel").read_bytes()
    assert mem["kmodel_bytes"] == len(kmodel)
    assert mem["main_mem_bytes"] == int.from_bytes(kmodel[20:24], "little")     # header main_mem_usage (§1.2)
    assert 0 < mem["sram_needed_bytes"] <= mem["sram_bytes"] == 6 * 1024 * 1024
    data_c = (out / "src/model_data.c").read_text()
    assert c_bytes(data_c, "emc_model_data") == kmodel
    header = (out / "src/model_data.h").read_text()
    assert int(c_define(header, "EMC_MODEL_CRC32").rstrip("u"), 16) == zlib.crc32(kmodel)
    assert '"digit 9",' in data_c


def test_test_input_is_a_calibration_image_and_outputs_match_the_float_model(mnist_project):
    out, r = mnist_project
    assert r.returncode == 0, r.stderr
    test_c = (out / "src/test_data.c").read_text()
    raw = c_bytes(test_c, "emc_test_input")
    images = {p.name: np.asarray(Image.open(p).convert("L")) for p in sorted((EXAMPLE / "calibration").glob("*.png"))}
    matches = [name for name, img in images.items() if img.tobytes() == raw]
    assert matches, "the embedded test input is none of the calibration images"
    expected = c_floats(test_c, "expected_0")
    assert expected.shape == (10,)
    # the float model on the same image (emcgen's float interpreter, checked against TensorFlow elsewhere)
    from emcgen import interpreter
    from emcgen.frontends import load_model
    graph = load_model(str(EXAMPLE / "mnist_cnn.h5"))
    x = images[matches[0]].reshape(1, 28, 28, 1).astype(np.float32) / 255
    ref = np.asarray(interpreter.predict(graph, x)[0]).reshape(-1)
    assert int(np.argmax(expected)) == int(np.argmax(ref))
    assert np.abs(expected - ref).max() < 0.05 * (ref.max() - ref.min())
    # the kmodel file on that input, through `emcgen run`, gives the embedded expected values exactly
    (out / "input.bin").write_bytes(raw)
    rr = subprocess.run([sys.executable, "-m", "emcgen", "run", str(out / "model.kmodel"), "--input",
                         str(out / "input.bin"), "--output", str(out / "y.npy")], capture_output=True, text=True)
    assert rr.returncode == 0, rr.stderr
    np.testing.assert_array_equal(np.load(out / "y.npy").reshape(-1), expected)


def test_generated_c_passes_the_readme_check(mnist_project):
    out, r = mnist_project
    assert r.returncode == 0, r.stderr
    support.tool("riscv64-unknown-elf-gcc")
    result = run_block(readme_block(out, "check"), out)
    assert result.returncode == 0, result.stderr
    readme = (out / "README.md").read_text()
    assert "kflash -p /dev/ttyUSB0 -b 1500000 -B dan -t build/mnist_k210.bin" in readme
    assert re.search(r"#1 class \d digit \d", readme)
