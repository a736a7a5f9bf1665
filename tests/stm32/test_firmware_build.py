"""Firmware skeleton builds: the CMake path exactly as a user runs it, and the M7 memory maps."""
import re
import subprocess
from pathlib import Path

import pytest
import support

from emcgen.targets.stm32 import mcus, qemu

HERE = Path(__file__).resolve().parent

CMAKELISTS = """\
cmake_minimum_required(VERSION 3.20)
project(fwtest C)
include(firmware/firmware.cmake)
emc_add_firmware(fwtest main.c)
"""

ARENA_MAIN = r"""
#include <stdint.h>
#include "cycles.h"
#include "semihost.h"
__attribute__((section(".emc_arena"), aligned(16))) int8_t arena[100000];
int main(void)
{
    emc_bench_begin();
    for (int i = 0; i < 100; i++) {
        arena[i * 997] = (int8_t)i;
    }
    uint32_t cycles = emc_bench_end();
    emc_write_str("arena ");
    emc_write_u32(cycles);
    emc_write_str("\n");
    return arena[997];
}
"""


def sh(cmd, cwd):
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_cmake_build_as_a_user_would(tmp_path):
    cmake = support.tool("cmake")
    support.tool("arm-none-eabi-gcc")
    mcus.render_firmware("stm32f405", tmp_path)
    (tmp_path / "main.c").write_text((HERE / "firmware_test_main.c").read_text())
    (tmp_path / "CMakeLists.txt").write_text(CMAKELISTS)
    sh([cmake, "-S", ".", "-B", "build", "-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake"], tmp_path)
    out = sh([cmake, "--build", "build"], tmp_path)
    elf = tmp_path / "build/fwtest.elf"
    assert elf.is_file() and (tmp_path / "build/fwtest.map").is_file()
    assert (tmp_path / "build/fwtest.bin").stat().st_size > 0
    # --print-memory-usage from the link, and `size -A` from the post-build step
    flash = re.search(r"FLASH:\s+(\d+) B\s+1 MB", out)
    assert flash, out
    report = qemu.size_report(elf)
    # the linker counts alignment gaps between sections too (.text is 64-byte aligned at -O3)
    assert report["flash_bytes"] <= int(flash[1]) < report["flash_bytes"] + 256
    assert (tmp_path / "build/fwtest.bin").stat().st_size == int(flash[1])
    assert re.search(r"^\.stack\s+8192\s+536870912$", out, re.M)

    cache = (tmp_path / "build/CMakeCache.txt").read_text()
    assert "EMC_MCU_FLAGS:STRING=-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard" in cache
    assert "EMC_SEMIHOSTING:BOOL=ON" in cache and "CMAKE_BUILD_TYPE:STRING=Release" in cache

    support.tool("qemu-system-arm")
    support.tool("gcc")
    result = qemu.run_elf(elf, machine="netduinoplus2", semihosting_args=["exit", "42"],
                          plugin_dir=tmp_path / "plugin", timeout=20)
    assert result.exit_code == 42
    assert qemu.run_elf(elf, machine="netduinoplus2", count_instructions=False,
                        timeout=20).stdout == "hello from emcgen firmware\n"


@pytest.mark.parametrize("semihosting", [False, True])
@pytest.mark.parametrize("name", ["stm32f746", "stm32h743"])
def test_m7_memory_maps_link(tmp_path, name, semihosting):
    """Compile with -Wall -Wextra -Werror and link against the real F7/H7 memory maps."""
    gcc = support.tool("arm-none-eabi-gcc")
    mcu = mcus.get_mcu(name)
    mcus.render_firmware(mcu, tmp_path)
    fw = tmp_path / "firmware"
    (tmp_path / "main.c").write_text(ARENA_MAIN)
    elf = tmp_path / "fw.elf"
    cmd = [gcc, *mcu.cpu_flags, "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11", "-ffunction-sections",
           "-fdata-sections", f"-DEMC_SEMIHOSTING={int(semihosting)}", f"-DEMC_IRQ_COUNT={mcu.irq_count}",
           f"-I{fw}", "-nostartfiles", "--specs=nano.specs", "-T", str(fw / f"{name}.ld"),
           "-Wl,--gc-sections", "-Wl,--fatal-warnings", "main.c", *(str(fw / f) for f in
                                                                   ("startup.c", "semihost.c", "cycles.c")),
           "-o", str(elf)]
    sh(cmd, tmp_path)
    nm = sh([support.tool("arm-none-eabi-nm"), str(elf)], tmp_path)
    sym = {p[2]: int(p[0], 16) for p in (line.split() for line in nm.splitlines()) if len(p) == 3}
    assert sym["emc_vector_table"] == mcu.flash.origin
    assert sym["__stack_bottom"] == mcu.ram.origin
    assert sym["__stack_top"] == mcu.ram.origin + mcus.DEFAULT_STACK_SIZE
    arena = mcu.arena_region
    assert arena.origin <= sym["arena"] and sym["arena"] + 100000 <= arena.origin + arena.size
    assert sym["arena"] % 16 == 0
    report = qemu.size_report(elf)
    assert report["arena"] == 100000 and report["stack"] == mcus.DEFAULT_STACK_SIZE
    assert report["sections"][".isr_vector"] == 4 * (16 + mcu.irq_count)
    readelf = sh([support.tool("arm-none-eabi-readelf"), "-A", str(elf)], tmp_path)
    assert 'Tag_CPU_name: "7E-M"' in readelf and "Tag_FP_arch: FPv5/FP-D16 for ARMv8" in readelf
    assert ("Tag_ABI_HardFP_use: SP only" in readelf) == ("-mfpu=fpv5-sp-d16" in mcu.cpu_flags)


def test_arena_too_large_does_not_link(tmp_path):
    """A model arena larger than the arena region must fail at link time, naming the region."""
    gcc = support.tool("arm-none-eabi-gcc")
    mcu = mcus.get_mcu("stm32f405")
    mcus.render_firmware(mcu, tmp_path)
    fw = tmp_path / "firmware"
    (tmp_path / "main.c").write_text(ARENA_MAIN.replace("arena[100000]", "arena[200000]"))
    cmd = [gcc, *mcu.cpu_flags, "-O2", f"-I{fw}", "-DEMC_SEMIHOSTING=1", "-nostartfiles", "--specs=nano.specs",
           "-T", str(fw / "stm32f405.ld"), "main.c", str(fw / "startup.c"), str(fw / "semihost.c"),
           str(fw / "cycles.c"), "-o", str(tmp_path / "fw.elf")]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert re.search(r"region `RAM' overflowed", proc.stderr)
