"""MCU table and firmware template rendering (no toolchain needed)."""
import re

import pytest

from emcgen.errors import UnsupportedError
from emcgen.targets.stm32 import mcus


def test_default_and_lookup():
    assert mcus.get_mcu().name == "stm32f405"
    assert mcus.get_mcu(" STM32H743 ").name == "stm32h743"
    assert {"stm32f405", "stm32f746", "stm32h743"} <= set(mcus.supported_mcus())


def test_unknown_mcu_lists_supported():
    with pytest.raises(UnsupportedError, match=r"unsupported MCU 'stm32f999'; supported: stm32f405, .*stm32h743"):
        mcus.get_mcu("stm32f999")


@pytest.mark.parametrize("name", mcus.supported_mcus())
def test_regions_are_sane(name):
    mcu = mcus.get_mcu(name)
    spans = sorted((r.origin, r.origin + r.size, r.name) for r in mcu.regions)
    for (_, end, a), (start, _, b) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"{name}: regions {a} and {b} overlap"
    assert len({r.name for r in mcu.regions}) == len(mcu.regions)
    assert all(r.size % 1024 == 0 and r.size > 0 for r in mcu.regions)
    assert mcu.arena_region in mcu.regions
    assert mcu.core in ("cortex-m4", "cortex-m7") and f"-mcpu={mcu.core}" in mcu.cpu_flags


def test_known_memory_maps():
    f405, f746, h743 = (mcus.get_mcu(n) for n in ("stm32f405", "stm32f746", "stm32h743"))
    assert (f405.flash.origin, f405.flash.size, f405.ram.origin, f405.ram.size) == (
        0x0800_0000, 1024 * 1024, 0x2000_0000, 128 * 1024)
    assert f405.region("CCMRAM").origin == 0x1000_0000 and f405.qemu_machine == "netduinoplus2"
    assert f746.ram.size == 320 * 1024 and f746.qemu_machine is None
    assert "-mfpu=fpv5-sp-d16" in f746.cpu_flags and "-mfpu=fpv5-d16" in h743.cpu_flags
    assert h743.arena_region.name == "AXISRAM"
    assert (h743.arena_region.origin, h743.arena_region.size) == (0x2400_0000, 512 * 1024)
    assert h743.arena_region.size == max(r.size for r in h743.regions if r is not h743.flash)
    assert h743.ram.name == "DTCM" and h743.qemu_machine is None
    assert mcus.get_mcu("qemu-m7").qemu_machine == "mps2-an500"


def test_render_f405(tmp_path):
    written = mcus.render_firmware("stm32f405", tmp_path)
    names = {p.relative_to(tmp_path).as_posix() for p in written}
    assert {"cmake/arm-none-eabi.cmake", "firmware/firmware.cmake", "firmware/stm32f405.ld",
            "firmware/startup.c", "firmware/semihost.c", "firmware/semihost.h", "firmware/cycles.c",
            "firmware/cycles.h", "firmware/README.md"} <= names
    assert not any(n.endswith(".j2") for n in names)

    ld = (tmp_path / "firmware/stm32f405.ld").read_text()
    memory = dict(re.findall(r"^\s+(\w+)\s+\(\w+\)\s+:\s+(ORIGIN = 0x[0-9A-F]+, LENGTH = \d+K)", ld, re.M))
    assert memory == {"FLASH": "ORIGIN = 0x08000000, LENGTH = 1024K",
                      "RAM": "ORIGIN = 0x20000000, LENGTH = 128K",
                      "CCMRAM": "ORIGIN = 0x10000000, LENGTH = 64K"}
    for section in (".stack", ".bss", ".emc_arena"):   # NOLOAD sections must not ride on .data's header
        body = ld[ld.index(f"  {section} (NOLOAD)"):]
        assert re.match(r"[^}]*}\s*> RAM AT > RAM", body, re.S), section
    assert re.search(r"\.data :[^}]*}\s*> RAM AT > FLASH", ld, re.S)
    assert "_emc_stack_size : 8192;" in ld

    toolchain = (tmp_path / "cmake/arm-none-eabi.cmake").read_text()
    assert 'set(EMC_MCU_FLAGS "-mcpu=cortex-m4 -mthumb -mfpu=fpv4-sp-d16 -mfloat-abi=hard"' in toolchain
    assert "CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY" in toolchain
    fragment = (tmp_path / "firmware/firmware.cmake").read_text()
    assert 'option(EMC_SEMIHOSTING "use Arm semihosting for console, exit code and host files" ON)' in fragment
    assert "EMC_IRQ_COUNT=82" in fragment


def test_render_build_only_mcu_defaults_semihosting_off(tmp_path):
    mcus.render_firmware("stm32h743", tmp_path, stack_size=4096)
    fragment = (tmp_path / "firmware/firmware.cmake").read_text()
    assert re.search(r"option\(EMC_SEMIHOSTING .* OFF\)", fragment)
    ld = (tmp_path / "firmware/stm32h743.ld").read_text()
    assert re.search(r"\.emc_arena \(NOLOAD\)[^}]*}\s*> AXISRAM AT > AXISRAM", ld, re.S)
    assert re.search(r"\.stack \(NOLOAD\)[^}]*}\s*> DTCM AT > DTCM", ld, re.S)
    assert ".axisram (NOLOAD)" not in ld and ".sram4 (NOLOAD)" in ld
    assert "_emc_stack_size : 4096;" in ld


def test_bad_stack_size_writes_nothing(tmp_path):
    with pytest.raises(UnsupportedError, match="stack size 1001"):
        mcus.render_firmware("stm32f405", tmp_path / "p", stack_size=1001)
    assert not (tmp_path / "p").exists()
