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
