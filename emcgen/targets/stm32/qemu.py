"""Run Cortex-M firmware under qemu-system-arm, count its instructions, and measure its size.

Why instructions: QEMU models no cycle timing and no DWT cycle counter, but it executes every guest
instruction exactly and deterministically. The TCG plugin in qemu_plugin/insn_count.c counts executed
instructions in total and between the entries of two marker functions (emc_bench_begin/emc_bench_end of
the firmware's cycles.c), one count per begin/end pair. These are a relative cost, not a latency.

The firmware talks to the host through semihosting (-semihosting-config enable=on,target=native):
its console is captured through a file chardev (QemuResult.stdout; QEMU's own messages stay apart in
.stderr), its exit code becomes QEMU's exit status (0..255), and emc_host_read_file/emc_host_write_file
open files relative to QEMU's working directory (`cwd` of run_elf). The firmware's command line
(emc_host_cmdline) is the ELF's file name followed by `semihosting_args`, separated by spaces.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import EmcError
from .mcus import MCUS

PLUGIN_DIR = Path(__file__).resolve().parent / "qemu_plugin"
PLUGIN_SOURCES = ("insn_count.c", "emc_qemu_plugin.h")
PLUGIN_CFLAGS = ("-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden")
DEFAULT_MARKERS = ("emc_bench_begin", "emc_bench_end")

# tool -> Debian package that provides it
_PACKAGES = {
    "qemu-system-arm": "qemu-system-arm",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "arm-none-eabi-nm": "binutils-arm-none-eabi",
    "arm-none-eabi-size": "binutils-arm-none-eabi",
    "gcc": "gcc",
}

# Output sections of the firmware linker script (templates/stm32_cmsis/firmware/mcu.ld.j2) by kind.
_TEXT = (".isr_vector", ".text", ".ARM.extab", ".ARM.exidx")
_NOT_IN_MEMORY = (".debug", ".comment", ".ARM.attributes", ".symtab", ".strtab", ".shstrtab", ".stab")
_RAM_ONLY = frozenset((".bss", ".stack", ".emc_arena",
                       *(f".{r.name.lower()}" for mcu in MCUS.values() for r in mcu.extra_sections)))


class QemuTimeout(EmcError):
    """The firmware did not exit in time (no semihosting exit, a hang, or a wait for an interrupt)."""


@dataclass
class QemuResult:
    stdout: str                        # semihosting console output
    exit_code: int                     # QEMU's exit status = the firmware's exit code (semihosting)
    instructions_total: int | None     # every instruction executed, None when not counted
    instructions_per_region: list[int] = field(default_factory=list)   # one per begin/end pair
    stderr: str = ""


def require_tool(name: str) -> str:
    """Full path of a host tool, or an EmcError naming the Debian package to install."""
    found = shutil.which(name)
    if not found:
        package = _PACKAGES.get(name, name)
        raise EmcError(f"{name} not found on PATH; install the Debian package {package} "
                       f"(apt-get install {package})")
    return found


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "emcgen"


def build_plugin(workdir: Path | None = None, *, api_version: int = 1) -> Path:
    """Compile the instruction-counting plugin with the host gcc; cached by source and flag hash."""
    gcc = require_tool("gcc")
    workdir = Path(workdir) if workdir is not None else default_cache_dir()
    digest = hashlib.sha256()
    for name in PLUGIN_SOURCES:
        digest.update((PLUGIN_DIR / name).read_bytes())
    flags = (*PLUGIN_CFLAGS, f"-DEMC_QEMU_PLUGIN_API_VERSION={api_version}")
    digest.update(" ".join(flags).encode())
    target = workdir.resolve() / f"libemc_insn_count-{digest.hexdigest()[:12]}.so"
    if target.exists():
        return target
    workdir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".so", dir=workdir)   # parallel builds must not collide
    os.close(fd)
    cmd = [gcc, *flags, "-o", tmp_name, str(PLUGIN_DIR / "insn_count.c")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        os.unlink(tmp_name)
        first = (proc.stderr.strip().splitlines() or ["no message"])[0]
        raise EmcError(f"building the QEMU plugin with {gcc} failed: {first}")
    os.replace(tmp_name, target)
    return target


def symbol_addresses(elf: Path, names: Sequence[str]) -> dict[str, int]:
    """Addresses of ELF symbols from arm-none-eabi-nm, Thumb bit cleared (the address QEMU executes)."""
    nm = require_tool("arm-none-eabi-nm")
    proc = subprocess.run([nm, str(elf)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EmcError(f"{elf}: arm-none-eabi-nm failed: {proc.stderr.strip()}")
    found = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in names:
            found[parts[2]] = int(parts[0], 16) & ~1
    missing = [n for n in names if n not in found]
    if missing:
        raise EmcError(f"{elf}: symbol {missing[0]} not found (is cycles.c linked and the marker called?)")
    return found


def _qemu_escape(value: str) -> str:
    return value.replace(",", ",,")   # QEMU option syntax: a comma inside a value is written twice


def _semihosting_config(elf: Path, args: Sequence[str] | None) -> str:
    config = "enable=on,target=native,chardev=emc_semihost"
    for arg in (elf.name, *(args or ())):
        if not arg or re.search(r"\s", arg):
            raise EmcError(f"semihosting argument {arg!r} must be non-empty and without spaces")
        config += ",arg=" + _qemu_escape(arg)
    return config


def _parse_plugin_log(text: str) -> tuple[int, list[int]] | None:
    regions: dict[int, int] = {}
    total = None
    for line in text.splitlines():
        if m := re.fullmatch(r"emc_insn_count region\[(\d+)\]=(\d+)", line.strip()):
            regions[int(m[1])] = int(m[2])
        elif m := re.fullmatch(r"emc_insn_count regions=(\d+) open=[01] total=(\d+)", line.strip()):
            total = int(m[2])
            if sorted(regions) != list(range(int(m[1]))):
                return None
    if total is None:
        return None
    return total, [regions[i] for i in sorted(regions)]


def run_elf(elf: Path, *, machine: str, timeout: float = 60,
            count_between: tuple[str, str] | None = DEFAULT_MARKERS,
            semihosting_args: Sequence[str] | None = None, cwd: Path | None = None,
            count_instructions: bool = True, icount: bool = True, serial: str = "null",
            extra_args: Sequence[str] = (), plugin_dir: Path | None = None) -> QemuResult:
    """Run `elf` on QEMU `machine` until it exits through semihosting; count instructions.

    count_between: marker symbols whose begin/end executions delimit the counted regions (None: total
      only). count_instructions=False runs without the plugin (no host gcc needed).
    cwd: QEMU's working directory, where the firmware's host files are read and written.
    icount: -icount shift=0 so timers follow executed instructions (deterministic runs).
    serial: QEMU -serial value for the first UART (e.g. "file:uart.txt"); default discards it.
    Raises QemuTimeout after `timeout` seconds, EmcError when a tool is missing or QEMU fails to start.
    """
    qemu = require_tool("qemu-system-arm")
    elf = Path(elf).resolve()
    if not elf.is_file():
        raise EmcError(f"firmware {elf} does not exist")
    with tempfile.TemporaryDirectory(prefix="emcgen-qemu-") as tmp:
        console = Path(tmp) / "console.txt"   # semihosting console (without a chardev QEMU uses stderr)
        log = Path(tmp) / "plugin.log"
        cmd = [qemu, "-M", machine, "-nographic", "-monitor", "none", "-serial", serial,
               "-chardev", f"file,id=emc_semihost,path={_qemu_escape(str(console))}",
               "-semihosting-config", _semihosting_config(elf, semihosting_args)]
        if icount:
            cmd += ["-icount", "shift=0,align=off,sleep=off"]
        if count_instructions:
            plugin = _qemu_escape(str(build_plugin(plugin_dir)))
            if count_between:
                addresses = symbol_addresses(elf, count_between)
                plugin += ",begin=0x{:x},end=0x{:x}".format(*(addresses[n] for n in count_between))
            cmd += ["-plugin", plugin, "-d", "plugin", "-D", str(log)]
        cmd += ["-kernel", str(elf), *extra_args]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
                                  cwd=cwd)
        except subprocess.TimeoutExpired:
            tail = console.read_text(errors="replace")[-200:] if console.exists() else ""
            raise QemuTimeout(f"{elf.name} did not exit within {timeout:g} s on {machine} "
                              f"(last output: {tail!r})") from None
        stdout = console.read_text(errors="replace") if console.exists() else ""
        stderr = proc.stderr.decode(errors="replace") + proc.stdout.decode(errors="replace")
        counts = _parse_plugin_log(log.read_text(errors="replace")) if log.exists() else None
    if proc.returncode < 0:
        raise EmcError(f"qemu-system-arm was killed by signal {-proc.returncode} running {elf.name}")
    errors = [line for line in stderr.splitlines()
              if line.startswith("qemu-system-arm:") and "warning" not in line]
    if (count_instructions and counts is None) or (proc.returncode == 1 and errors):
        first = (errors or stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
        raise EmcError(f"qemu-system-arm failed running {elf.name} on {machine}: {first}")
    total, regions = counts if counts else (None, [])
    return QemuResult(stdout=stdout, exit_code=proc.returncode, instructions_total=total,
                      instructions_per_region=regions, stderr=stderr)


def size_report(elf: Path) -> dict:
    """Flash and RAM use of a firmware ELF from `arm-none-eabi-size -A`, by section kind.

    flash_bytes = text + rodata + data (the load copy of .data) + other loadable sections;
    ram_bytes = data + bss + arena + stack (+ region sections such as .ccmram), over all RAM regions.
    Sums of section sizes, like `arm-none-eabi-size -B`: alignment gaps between sections are not counted
    (the linker's --print-memory-usage and the .bin size include them).
    Keys: flash_bytes, ram_bytes, text, rodata, data, bss, arena, stack, sections (name -> size).
    """
    size = require_tool("arm-none-eabi-size")
    proc = subprocess.run([size, "-A", "-d", str(elf)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise EmcError(f"{elf}: arm-none-eabi-size failed: {proc.stderr.strip()}")
    sections: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            if not parts[0].startswith(_NOT_IN_MEMORY):
                sections[parts[0]] = int(parts[1])
    text = sum(sections.get(name, 0) for name in _TEXT)
    rodata = sections.get(".rodata", 0)
    data = sections.get(".data", 0)
    ram_only = sum(size for name, size in sections.items() if name in _RAM_ONLY)
    other_flash = sum(size for name, size in sections.items()
                      if name not in _RAM_ONLY and name not in (*_TEXT, ".rodata", ".data"))
    return {
        "flash_bytes": text + rodata + data + other_flash,
        "ram_bytes": data + ram_only,
        "text": text,
        "rodata": rodata,
        "data": data,
        "bss": sections.get(".bss", 0),
        "arena": sections.get(".emc_arena", 0),
        "stack": sections.get(".stack", 0),
        "sections": sections,
    }
