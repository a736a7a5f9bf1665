"""The command line contract: every command has help, bad input is one line on stderr with exit code 2,
--debug shows the traceback instead, and nothing is written when a conversion fails."""
import subprocess
import sys

import pytest

from emcgen import cli


@pytest.mark.parametrize("cmd", [c.name for c in cli.COMMANDS])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: emcgen " + cmd)


def run(*args):
    return subprocess.run([sys.executable, "-m", "emcgen", *args], capture_output=True, text=True, timeout=120)


def test_missing_file_is_one_line_exit_2():
    r = run("inspect", "no_such_model.h5")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no_such_model.h5" in r.stderr
    assert "Traceback" not in r.stderr


def test_debug_shows_traceback():
    r = run("--debug", "inspect", "no_such_model.h5")
    assert r.returncode != 0 and "Traceback" in r.stderr


def test_unknown_target_is_rejected_by_the_parser():
    r = run("convert", "m.h5", "--target", "avr", "-o", "x")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_failed_conversion_leaves_nothing_behind(tmp_path):
    bad = tmp_path / "model.h5"
    bad.write_bytes(b"not an hdf5 file")
    out = tmp_path / "out" / "model.kmodel"
    r = run("convert", str(bad), "--target", "kmodel", "--dataset", str(tmp_path), "-o", str(out))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.strip().count("\n") == 0
    assert not out.exists()
    leftovers = list(out.parent.iterdir()) if out.parent.exists() else []
    assert leftovers == []


def test_import_emcgen_does_not_import_tensorflow():
    code = "import emcgen, emcgen.cli, emcgen.convert, emcgen.interpreter, emcgen.passes, sys; " \
           "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_kmodel_inspect_and_run_on_the_hardware_fixture(tmp_path):
    """`emcgen run` on Maix-EMC's kmodel with the raw bytes the chip received gives the K210 hardware output."""
    import json

    import numpy as np
    import support

    km = support.shared("fixtures", "kmodel_v3", "maix-emc_cifar10_output.kmodel")
    raw = support.shared("fixtures", "kmodel_v3", "maix-emc_plane_chw_u8.bin")
    r = run("run", str(km), "--input", str(raw), "--output", str(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    hardware = [1.181304, -5.381746, 1.580029, 0.045343, 0.511492, -0.656629, -3.597826, 0.561016, -0.733270,
                -3.771462]                                          # printed by a K210 (fixtures README)
    np.testing.assert_allclose(np.load(tmp_path / "y.npy").reshape(-1), hardware, atol=1e-5)
    r = run("inspect", str(km), "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["header"]["version"] == 3 and len(info["layers"]) == 9


def test_run_float_model_on_an_image_equals_the_interpreter(tmp_path):
    import numpy as np
    import support

    from emcgen import datasets, interpreter
    from emcgen.frontends import load_model

    model = support.ROOT / "examples/mnist/mnist_cnn.h5"
    image = support.ROOT / "examples/mnist/calibration/digit_00000.png"
    r = run("run", str(model), "--input", str(image), "--output", str(tmp_path / "y.npy"))
    assert r.returncode == 0, r.stderr
    g = load_model(str(model))
    want = interpreter.run(g, datasets.load_image(image, (28, 28, 1), "img_0_1"))[g.outputs[0]]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-6, atol=1e-6)


def test_reading_tflite_and_kmodel_and_rendering_projects_does_not_import_tensorflow(tmp_path):
    import support

    tflite = support.shared("models", "mlperf_tiny", "ad01_int8.tflite")
    km = support.shared("fixtures", "kmodel_v3", "nncase-v0.1.0-rc5_iris.kmodel")
    code = f"""
import sys
from pathlib import Path
from emcgen import kmodel
from emcgen.convert import convert
kmodel.run(kmodel.load({str(km)!r}), [5.1, 3.8, 1.9, 0.4])
convert({str(tflite)!r}, "stm32", Path({str(tmp_path / 'stm32')!r}), log=lambda *a: None)
convert({str(support.ROOT / 'examples/mnist/mnist_cnn.h5')!r}, "k210", Path({str(tmp_path / 'k210')!r}),
        dataset={str(support.ROOT / 'examples/mnist/calibration')!r}, log=lambda *a: None)
bad = [m for m in ("tensorflow", "keras", "tensorlayer") if m in sys.modules]
assert not bad, bad
"""
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
    assert (tmp_path / "stm32" / "report.json").exists() and (tmp_path / "k210" / "report.json").exists()
