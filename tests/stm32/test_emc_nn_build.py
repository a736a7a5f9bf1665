"""emc_nn compiles warning-free for the Cortex-M cores generated projects target, and its symbols are safe
to link next to the real CMSIS-NN (emc_nn_extra.c is always compiled, the arm_* sources only without it).
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import support

EMC_NN = Path(__file__).resolve().parent.parent.parent / "templates" / "stm32_cmsis" / "emc_nn"
STRICT = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wdouble-promotion", "-O2"]
CORES = {
    "cortex-m4f": ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
    "cortex-m3": ["-mcpu=cortex-m3", "-mthumb", "-mfloat-abi=soft"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"],
    "cortex-m55": ["-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard"],
}
EXTRA_SOURCE = "emc_nn_extra.c"


def _sources() -> list[Path]:
    return sorted((EMC_NN / "src").glob("*.c"))


def _compile(cc: str, flags: list[str], outdir: Path) -> dict[str, Path]:
    """Compile every emc_nn source to an object in outdir; {source name: object}."""
    cmd = [cc, *STRICT, *flags, "-I", str(EMC_NN / "include"), "-c", *map(str, _sources())]
    proc = subprocess.run(cmd, cwd=outdir, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}"
    return {src.name: outdir / (src.stem + ".o") for src in _sources()}


def _symbols(nm: str, obj: Path) -> tuple[set[str], set[str]]:
    """(defined global symbols, undefined symbols) of an object file."""
    out = subprocess.run([nm, "-g", str(obj)], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3:
            defined.add(parts[2])
    return defined, undefined


def _declared_arm_functions() -> set[str]:
    header = (EMC_NN / "include" / "arm_nnfunctions.h").read_text()
    return set(re.findall(r"\b(arm_\w+)\s*\(", header))


def test_sources_present():
    names = {p.name for p in _sources()}
    assert EXTRA_SOURCE in names and len(names) >= 8
    for header in ("arm_nnfunctions.h", "arm_nn_types.h", "emc_nn_extra.h"):
        assert (EMC_NN / "include" / header).is_file()


@pytest.mark.parametrize("core", sorted(CORES))
def test_cross_compiles_without_warnings(core, tmp_path):
    cc = support.tool("arm-none-eabi-gcc")
    objects = _compile(cc, CORES[core], tmp_path)
    assert all(obj.is_file() for obj in objects.values())


def test_host_compiles_without_warnings(tmp_path):
    objects = _compile(support.tool("gcc"), [], tmp_path)
    assert all(obj.is_file() for obj in objects.values())


def test_symbols_do_not_clash_with_cmsis_nn(tmp_path):
    cc = support.tool("arm-none-eabi-gcc")
    nm = support.tool("arm-none-eabi-nm")
    objects = _compile(cc, CORES["cortex-m4f"], tmp_path)
    declared = _declared_arm_functions()
    extra_defined, extra_undefined = _symbols(nm, objects.pop(EXTRA_SOURCE))
    # Compiled next to the real CMSIS-NN: only emc_nn_* names of its own, no dependency on arm_* code.
    assert extra_defined and all(s.startswith("emc_nn_") for s in extra_defined), extra_defined
    assert not [s for s in extra_undefined if s.startswith("arm_")]
    # The CMSIS-NN replacement defines exactly the public functions its header declares, nothing else.
    defined = set()
    for obj in objects.values():
        defined |= _symbols(nm, obj)[0]
    assert defined == declared, (defined ^ declared)
