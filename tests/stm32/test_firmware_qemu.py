"""Firmware skeleton on QEMU: console, exit codes, host files, instruction counts, faults, sizes.

The firmware is built from the rendered templates plus tests/stm32/firmware_test_main.c (one ELF whose
behaviour is chosen by its semihosting arguments) with arm-none-eabi-gcc, and run on netduinoplus2.
Independent checks: QEMU's own execution trace (-singlestep -d exec) for the instruction counts,
arm-none-eabi-size -B / nm / objdump for sizes and addresses.
"""
import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import support

from emcgen.errors import EmcError
from emcgen.targets.stm32 import mcus, qemu

HERE = Path(__file__).resolve().parent
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-std=c11"]

UART_HOOKS = r"""
#include <stdint.h>
#include "semihost.h"
#define USART1_DR (*(volatile uint32_t *)0x40011004u)
#define SCB_AIRCR (*(volatile uint32_t *)0xE000ED0Cu)
void emc_putchar(char c) { USART1_DR = (uint8_t)c; }
void emc_on_exit(int code)
{
    emc_write_str("exit code ");
    emc_write_i32(code);
    emc_write_str("\n");
    SCB_AIRCR = 0x05FA0004u;   /* SYSRESETREQ: QEMU with -no-reboot then quits */
    for (;;) {
    }
}
"""


def build(project: Path, mcu_name: str, sources, name: str, *, semihosting: bool = True) -> Path:
    """Compile and link the rendered firmware plus `sources` directly with arm-none-eabi-gcc."""
    gcc = support.tool("arm-none-eabi-gcc")
    mcu = mcus.get_mcu(mcu_name)
    fw = project / "firmware"
    if not (fw / f"{mcu.name}.ld").exists():
        mcus.render_firmware(mcu, project)
    elf = project / f"{name}.elf"
    cmd = [gcc, *mcu.cpu_flags, "-O2", "-g", *WARNINGS, "-ffunction-sections", "-fdata-sections",
           f"-DEMC_SEMIHOSTING={int(semihosting)}", f"-DEMC_IRQ_COUNT={mcu.irq_count}", f"-I{fw}",
           "-nostartfiles", "--specs=nano.specs", "-T", str(fw / f"{mcu.name}.ld"), "-Wl,--gc-sections",
           *map(str, sources), str(fw / "startup.c"), str(fw / "semihost.c"), str(fw / "cycles.c"),
           "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return elf


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    for name in ("qemu-system-arm", "gcc", "arm-none-eabi-nm", "arm-none-eabi-size", "arm-none-eabi-objdump"):
        support.tool(name)
    root = tmp_path_factory.mktemp("fw")
    elf = build(root, "stm32f405", [HERE / "firmware_test_main.c"], "test")
    plugin_dir = root / "plugin"
    qemu.build_plugin(plugin_dir)
    return {"root": root, "elf": elf, "plugin_dir": plugin_dir}


def run(env, *args, **kw):
    kw.setdefault("machine", "netduinoplus2")
    kw.setdefault("timeout", 20)
    return qemu.run_elf(kw.pop("elf", env["elf"]), semihosting_args=list(args), plugin_dir=env["plugin_dir"],
                        **kw)


def symbols(elf: Path) -> dict[str, tuple[int, int]]:
    """name -> (address, size) from arm-none-eabi-nm -S."""
    out = subprocess.run([support.tool("arm-none-eabi-nm"), "-S", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    return {p[3]: (int(p[0], 16) & ~1, int(p[1], 16)) for p in (line.split() for line in out.splitlines())
            if len(p) == 4}


def test_hello_and_exit_zero(env):
    result = run(env)
    assert result.stdout == "hello from emcgen firmware\n"
    assert result.exit_code == 0
    assert result.instructions_total > 100 and result.instructions_per_region == []


@pytest.mark.parametrize("code", [42, 7, 127])
def test_main_return_value_is_qemu_exit_status(env, code):
    result = run(env, "exit", str(code))
    assert result.exit_code == code and result.stdout == ""


def test_command_line_arguments(env):
    assert run(env, "echo", "a,b", "x=1,,2").stdout == "test.elf echo a,b x=1,,2\n"
    with pytest.raises(EmcError, match="without spaces"):
        run(env, "echo", "two words")


def test_write_buf_with_nul_bytes(env):
    text = bytearray(ord("a") + i % 26 for i in range(150))
    text[3] = text[70] = text[71] = 0
    assert run(env, "buf").stdout.encode() == bytes(text)


def test_data_bss_and_fpu_are_set_up(env):
    assert run(env, "data").stdout == "data=0x12345678 bss=0 fpu=4500\n"


def test_host_file_round_trip(env, tmp_path):
    payload = np.random.default_rng(5).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    (tmp_path / "in.bin").write_bytes(payload)
    result = run(env, "files", "1000", cwd=tmp_path)
    assert result.stdout == "read=1000 written=1000\n" and result.exit_code == 0
    expected = bytes(b ^ 0x5A for b in reversed(payload))
    assert (tmp_path / "out.bin").read_bytes() == expected

    # asking for more than the file holds reads the whole (shorter) file
    result = run(env, "files", "4096", cwd=tmp_path)
    assert result.stdout == "read=1000 written=1000\n"
    assert (tmp_path / "out.bin").read_bytes() == expected


def test_missing_host_file_reads_minus_one(env, tmp_path):
    assert run(env, "missing", cwd=tmp_path).stdout == "missing=-1\n"


def test_region_counts_exact_and_deterministic(env):
    first = run(env, "bench", "1000", "3000", "1000")
    second = run(env, "bench", "1000", "3000", "1000")
    assert first.stdout == "cycles=0\n" * 3   # QEMU has no DWT: the cycle counter reports 0
    assert first.instructions_per_region == second.instructions_per_region
    assert first.instructions_total == second.instructions_total
    r1, r3, r1b = first.instructions_per_region
    # the measured loop is 2n + 1 instructions; the rest is a fixed call overhead
    assert r3 - r1 == 2 * (3000 - 1000) and r1b == r1
    assert 2001 < r1 < 2001 + 40
    assert first.instructions_total > r1 + r3 + r1b


def trace_regions(pcs: list[int], begin: int, end: int) -> list[int]:
    regions, start = [], None
    for i, pc in enumerate(pcs):
        if pc == begin:
            start = i
        elif pc == end and start is not None:
            regions.append(i - start)
            start = None
    return regions


def test_counts_match_qemu_execution_trace(env, tmp_path):
    """The plugin against QEMU's own one-line-per-instruction trace (-singlestep -d exec,nochain)."""
    qemu_bin = support.tool("qemu-system-arm")
    base = [qemu_bin, "-M", "netduinoplus2", "-nographic", "-monitor", "none", "-serial", "null",
            "-semihosting-config", "enable=on,target=native,arg=test.elf,arg=bench,arg=500,arg=800",
            "-kernel", str(env["elf"])]
    trace = tmp_path / "trace.log"
    subprocess.run([*base, "-singlestep", "-d", "exec,nochain", "-D", str(trace)], stdin=subprocess.DEVNULL,
                   capture_output=True, timeout=60, check=True)
    pcs = [int(m[1], 16) for m in re.finditer(r"^Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/", trace.read_text(),
                                              re.M)]
    sym = symbols(env["elf"])
    begin, end = sym["emc_bench_begin"][0], sym["emc_bench_end"][0]

    result = run(env, "bench", "500", "800", icount=False)
    assert len(pcs) == result.instructions_total
    assert trace_regions(pcs, begin, end) == result.instructions_per_region

    # markers in the middle of a translation block: the instruction after each function entry
    mid_begin, mid_end = pcs[pcs.index(begin) + 1], pcs[pcs.index(end) + 2]
    plugin = qemu.build_plugin(env["plugin_dir"])
    log = tmp_path / "plugin.log"
    subprocess.run([*base, "-plugin", f"{plugin},begin={mid_begin:#x},end={mid_end:#x}", "-d", "plugin",
                    "-D", str(log)], stdin=subprocess.DEVNULL, capture_output=True, timeout=60, check=True)
    total, regions = qemu._parse_plugin_log(log.read_text())
    assert total == len(pcs)
    expected = trace_regions(pcs, mid_begin, mid_end)
    assert len(expected) == 2 and regions == expected


def test_hardfault_reports_and_exits(env):
    result = run(env, "fault")
    assert result.exit_code == 250
    m = re.fullmatch(r"HardFault CFSR=(0x\w+) HFSR=(0x\w+) PC=(0x\w+) LR=0x\w+ MMFAR=0x\w+ BFAR=0x\w+\n",
                     result.stdout)
    assert m, result.stdout
    assert m[1] == "0x00010000"   # UsageFault UNDEFINSTR
    assert m[2] == "0x40000000"   # HFSR FORCED: escalated to HardFault
    address, size = symbols(env["elf"])["main"]
    disasm = subprocess.run([support.tool("arm-none-eabi-objdump"), "-d", str(env["elf"])],
                            capture_output=True, text=True, check=True).stdout
    udf = [int(a, 16) for a in re.findall(r"^\s*([0-9a-f]+):\s+\w+\s+udf\s+#7", disasm, re.M)]
    assert udf == [int(m[3], 16)] and address <= udf[0] < address + size


def test_stack_overflow_faults(env):
    result = run(env, "overflow")
    assert result.exit_code == 250
    assert "stack overflow" in result.stdout and "HardFault" in result.stdout
    bfar = int(re.search(r"BFAR=(0x\w+)", result.stdout)[1], 16)
    assert 0x2000_0000 - 1024 <= bfar < 0x2000_0000   # just below the bottom of the stack / start of RAM


def test_stack_high_water(env):
    used = {}
    for depth in (10, 40):
        out = run(env, "stack", str(depth)).stdout
        m = re.fullmatch(r"stack_used=(\d+) stack_size=(\d+)\n", out)
        assert m, out
        used[depth] = int(m[1])
        assert int(m[2]) == mcus.DEFAULT_STACK_SIZE
    assert 0 < used[10] < used[40] < mcus.DEFAULT_STACK_SIZE
    per_level = (used[40] - used[10]) / 30
    assert 64 < per_level < 160   # each level holds a 64-byte array plus saved registers


def test_size_report_matches_binutils(env):
    report = qemu.size_report(env["elf"])
    out = subprocess.run([support.tool("arm-none-eabi-size"), "-B", "-d", str(env["elf"])],
                         capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    assert report["flash_bytes"] == text + data
    assert report["ram_bytes"] == data + bss
    assert report["stack"] == mcus.DEFAULT_STACK_SIZE
    assert report["bss"] >= 4096   # the test program's 4 KB file buffer
    assert report["text"] + report["rodata"] == text
    sym = symbols(env["elf"])
    assert report["sections"][".isr_vector"] == sym["emc_vector_table"][1] == 4 * (16 + 82)


def test_uart_retarget_without_semihosting(env, tmp_path):
    hooks = tmp_path / "uart_hooks.c"
    hooks.write_text(UART_HOOKS)
    elf = build(env["root"], "stm32f405", [HERE / "firmware_test_main.c", hooks], "uart", semihosting=False)
    result = run(env, elf=elf, serial=f"file:{tmp_path / 'uart.txt'}", extra_args=["-no-reboot"])
    assert result.stdout == ""   # nothing through semihosting
    assert (tmp_path / "uart.txt").read_text() == "hello from emcgen firmware\nexit code 0\n"


def test_timeout_is_reported(env):
    elf = build(env["root"], "stm32f405", [HERE / "firmware_test_main.c"], "nosemi", semihosting=False)
    start = time.monotonic()
    with pytest.raises(qemu.QemuTimeout, match=r"nosemi.elf did not exit within 1.5 s"):
        run(env, elf=elf, timeout=1.5)   # without semihosting emc_exit sleeps forever
    assert time.monotonic() - start < 10


def test_qemu_start_failure_is_an_error(env):
    for count in (True, False):
        with pytest.raises(EmcError, match=r"qemu-system-arm failed running test.elf on no-such-board: "
                                           r"qemu-system-arm: unsupported machine type"):
            run(env, machine="no-such-board", count_instructions=count)


def test_unknown_marker_symbol(env):
    with pytest.raises(EmcError, match="symbol no_such_marker not found"):
        run(env, count_between=("emc_bench_begin", "no_such_marker"))


def test_missing_tools_name_the_package(env, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmcError, match=r"qemu-system-arm not found.*apt-get install qemu-system-arm"):
        qemu.run_elf(env["elf"], machine="netduinoplus2")
    with pytest.raises(EmcError, match=r"arm-none-eabi-size not found.*binutils-arm-none-eabi"):
        qemu.size_report(env["elf"])
    with pytest.raises(EmcError, match=r"gcc not found.*package gcc"):
        qemu.build_plugin(tmp_path / "p")


def test_plugin_build_is_cached(env):
    first = qemu.build_plugin(env["plugin_dir"])
    mtime = os.stat(first).st_mtime_ns
    assert qemu.build_plugin(env["plugin_dir"]) == first and os.stat(first).st_mtime_ns == mtime
    assert qemu.build_plugin(env["plugin_dir"], api_version=2) != first


def test_cortex_m7_on_mps2_an500(env, tmp_path):
    elf = build(tmp_path, "qemu-m7", [HERE / "firmware_test_main.c"], "m7")
    machine = mcus.get_mcu("qemu-m7").qemu_machine
    assert run(env, "exit", "42", elf=elf, machine=machine).exit_code == 42
    result = run(env, "bench", "100", "200", elf=elf, machine=machine)
    r1, r2 = result.instructions_per_region
    assert r2 - r1 == 200
