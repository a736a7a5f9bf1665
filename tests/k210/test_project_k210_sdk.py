"""Optional full build of generated K210 projects against a real Kendryte standalone SDK checkout.

Runs only when K210_SDK_ROOT names an SDK checkout (it is skipped otherwise, also under CI=true: the SDK is
an external dependency that CI does not have). It runs the generated README's own commands: the newlib build
when the toolchain has no C library and K210_NEWLIB_ROOT is not set, then the CMake build, and checks the
ELF, the .bin and the link map (RAM use within the generation-time SRAM estimate).
Environment: K210_SDK_ROOT (required), K210_TOOLCHAIN (toolchain bin/; default PATH), K210_NEWLIB_ROOT
(newlib for rv64imafc/lp64f; default: the toolchain's own C library, or built here from Debian's
newlib-source). See docs/k210_sdk_build.md.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import support
from test_project_k210 import FIX, StandIn, cifar_build, readme_block, run_block

from emcgen.report import Report
from emcgen.targets.k210 import project as k210

SDK = os.environ.get("K210_SDK_ROOT", "")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SDK, reason="K210_SDK_ROOT is not set: the optional full build against a Kendryte "
                                       "standalone SDK checkout is skipped (see docs/k210_sdk_build.md)"),
]


def yolo_build() -> StandIn:
    """nncase's 20-class YOLOv2 fixture (1.35 MB kmodel, 320x240 input): the big case."""
    from emcgen import kmodel
    from emcgen.kmodel import emulator
    data = support.shared(*FIX, "nncase-v0.1.0-rc5_yolo.kmodel").read_bytes()
    km = kmodel.load(data)
    rng = np.random.default_rng(0)
    sample = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = emulator.run(km, sample)
    report = Report(target="kmodel", model="yolo (nncase fixture)")
    return StandIn(data, report, (240, 320, 3), (1 / 255, 0.0),
                   [{"name": "yolo_out", "shape": (1, 7, 10, 125), "dtype": "float32", "bytes": 35000}],
                   sample, [np.asarray(out[0], np.float32).reshape(-1)])


def link_map_ram(text: str) -> dict[str, int]:
    """RAM use from a GNU ld map of the SDK's linker script: static image, and image + the two stacks."""
    origin = int(re.search(r"^ram\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", text, re.M).group(1), 16)
    end = int(re.search(r"0x([0-9a-f]+)\s+PROVIDE \(_end = ", text).group(1), 16)
    heap = int(re.search(r"0x([0-9a-f]+)\s+PROVIDE \(_heap_start = ", text).group(1), 16)
    return {"static_bytes": end - origin, "static_and_stacks_bytes": heap - origin}


@pytest.fixture(scope="module")
def toolchain_env(tmp_path_factory) -> dict[str, str]:
    sdk = Path(SDK)
    assert (sdk / "lib/drivers/kpu.c").is_file(), f"K210_SDK_ROOT={SDK} is not a standalone SDK checkout"
    tc = os.environ.get("K210_TOOLCHAIN", "")
    gcc = str(Path(tc) / "riscv64-unknown-elf-gcc") if tc else support.tool("riscv64-unknown-elf-gcc")
    env = {"K210_SDK_ROOT": str(sdk), "K210_TOOLCHAIN": tc, "K210_NEWLIB_ROOT": os.environ.get("K210_NEWLIB_ROOT", "")}
    has_libc = subprocess.run([gcc, "-march=rv64imafc", "-mabi=lp64f", "-E", "-x", "c", "-", "-o", os.devnull],
                              input="#include <stdio.h>\n", capture_output=True, text=True).returncode == 0
    if not env["K210_NEWLIB_ROOT"] and not has_libc:
        tarball = Path("/usr/src/newlib/newlib-3.3.0.tar.xz")
        if not tarball.exists():
            pytest.skip("the toolchain has no C library, K210_NEWLIB_ROOT is not set and Debian's newlib-source "
                        "is not installed")
        # the README's own newlib recipe (about a minute on two cores)
        probe = tmp_path_factory.mktemp("probe") / "p"
        k210.render_project(cifar_build(), probe, {})
        build = tmp_path_factory.mktemp("newlib")
        r = run_block(readme_block(probe, "newlib"), probe, {"K210_NEWLIB_BUILD": str(build)})
        assert r.returncode == 0, r.stderr[-3000:]
        env["K210_NEWLIB_ROOT"] = str(build / "install/riscv64-unknown-elf")
    return env


def mnist_project(out: Path):
    """The bundled example through the whole pipeline (emcgen.convert), as `make demo` does."""
    from emcgen.convert import convert
    example = Path(__file__).resolve().parents[2] / "examples" / "mnist"
    return convert(str(example / "mnist_cnn.h5"), "k210", out, dataset=str(example / "calibration"),
                   log=lambda *a, **k: None)


@pytest.mark.parametrize("case", ["cifar", "yolo", "mnist"])
def test_full_build_with_the_readme_commands(case, toolchain_env, tmp_path):
    support.tool("cmake")
    out = tmp_path / f"{case}_k210"
    if case == "mnist":
        report = mnist_project(out)
    else:
        report = k210.render_project(cifar_build() if case == "cifar" else yolo_build(), out, {})
    r = run_block(readme_block(out, "build"), out, toolchain_env)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    elf, binary, lmap = (out / "build" / f"{case}_k210{ext}" for ext in (".elf", ".bin", ".map"))
    assert elf.is_file() and binary.is_file() and lmap.is_file()
    size = binary.stat().st_size
    ram = link_map_ram(lmap.read_text())
    m = report.memory
    # the image holds the kmodel and the test data; at run time the main buffer comes on top of it
    assert size > m["kmodel_bytes"] + m["test_data_bytes"]
    used = ram["static_and_stacks_bytes"] + m["main_mem_bytes"]
    assert used <= m["sram_needed_bytes"] <= 6 * 1024 * 1024
    objdump = shutil.which("riscv64-unknown-elf-objdump") or support.tool("riscv64-unknown-elf-objdump")
    syms = subprocess.run([objdump, "-t", str(elf)], capture_output=True, text=True, check=True).stdout
    for name in ("kpu_load_kmodel", "kpu_run_kmodel", "kpu_get_output", "emc_model_data", "main"):
        assert re.search(rf"\s{name}$", syms, re.M), name
    addr = int(re.search(r"^([0-9a-f]+) .*\semc_model_data$", syms, re.M).group(1), 16)
    assert addr % 256 == 0
    print(f"\n{case}: .bin {size:,} bytes; RAM static {ram['static_bytes']:,}, with stacks "
          f"{ram['static_and_stacks_bytes']:,}, + main buffer {m['main_mem_bytes']:,} = {used:,} "
          f"(estimate {m['sram_needed_bytes']:,})")
