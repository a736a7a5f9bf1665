"""Supported Cortex-M microcontrollers: memory map, core flags, clock and QEMU machine.

This table is the only place that knows per-MCU facts; the firmware templates (linker script, CMake
toolchain and fragment under templates/stm32_cmsis/firmware/) are rendered from it by render_firmware(),
and the memory planner reads `arena_region` to know how many bytes the activation arena may use.

Why these regions: `ram` holds the stack, .data and .bss; the model's activation arena goes to the
section `.emc_arena`, placed in `arena_region` (the largest contiguous SRAM: the 512 KB AXI SRAM on the
H7, main SRAM elsewhere). Other regions (CCM, DTCM, D2/D3 SRAM) get an empty NOLOAD section named after
the region for the application's own buffers; nothing is put there by default.

M7 and QEMU: Debian's QEMU 7.2 has no STM32F7/H7 machine. stm32f746 and stm32h743 are build-only
(compile and link against the real memory map, run on hardware). For instruction counts of Cortex-M7 code
under emulation there is the pseudo-MCU `qemu-m7`: the same core flags as stm32h743 with the memory map of
QEMU's `mps2-an500` board (not an STM32; its numbers are instructions, not cycles of a real chip).

`clock_hz` is the maximum core clock from the datasheet. The firmware skeleton does not configure the
PLL: out of reset a chip runs from its internal oscillator (16 MHz HSI on F4/F7, 64 MHz HSI on H7).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UnsupportedError
from ...templating import templates_dir as shared_templates_dir

DEFAULT_MCU = "stm32f405"
DEFAULT_STACK_SIZE = 8 * 1024
KB = 1024


@dataclass(frozen=True)
class MemoryRegion:
    """One MEMORY line of the linker script."""

    name: str            # linker region name (FLASH, RAM, AXISRAM, ...)
    origin: int
    size: int            # bytes, a multiple of 1 KB
    attributes: str = "rwx"
    note: str = ""


@dataclass(frozen=True)
class Mcu:
    name: str
    summary: str
    core: str                        # "cortex-m4" / "cortex-m7"
    cpu_flags: tuple[str, ...]       # gcc flags for compiling and linking (multilib selection)
    flash: MemoryRegion
    ram: MemoryRegion                # stack, .data, .bss
    clock_hz: int
    irq_count: int                   # device interrupt vectors after the 16 core vectors
    qemu_machine: str | None = None  # qemu-system-arm -M value, None when the MCU is build-only
    arena: str = "RAM"               # name of the region that holds .emc_arena
    extra_regions: tuple[MemoryRegion, ...] = field(default=())
    notes: str = ""

    @property
    def regions(self) -> tuple[MemoryRegion, ...]:
        """Every region in MEMORY order: flash, main RAM, then the others."""
        return (self.flash, self.ram, *self.extra_regions)

    @property
    def arena_region(self) -> MemoryRegion:
        return self.region(self.arena)

    def region(self, name: str) -> MemoryRegion:
        for region in self.regions:
            if region.name == name:
                return region
        raise KeyError(f"{self.name} has no memory region {name!r}")

    @property
    def extra_sections(self) -> tuple[MemoryRegion, ...]:
        """Regions that are neither flash, main RAM nor the arena: each gets its own NOLOAD section."""
        return tuple(r for r in self.extra_regions if r.name != self.arena)

    @property
    def has_fpu(self) -> bool:
        return "-mfloat-abi=hard" in self.cpu_flags or "-mfloat-abi=softfp" in self.cpu_flags


_M4F = ("-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard")
_M7_SP = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard")
_M7_DP = ("-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard")

MCUS: dict[str, Mcu] = {
    mcu.name: mcu
    for mcu in (
        Mcu(
            name="stm32f405",
            summary="STM32F405, Cortex-M4F 168 MHz, 1 MB flash, 128 KB SRAM + 64 KB CCM",
            core="cortex-m4",
            cpu_flags=_M4F,
            flash=MemoryRegion("FLASH", 0x0800_0000, 1024 * KB, "rx"),
            ram=MemoryRegion("RAM", 0x2000_0000, 128 * KB, note="SRAM1 112 KB + SRAM2 16 KB"),
            extra_regions=(
                MemoryRegion("CCMRAM", 0x1000_0000, 64 * KB, "rw",
                             note="core-coupled, no DMA, not modelled by QEMU netduinoplus2"),
            ),
            clock_hz=168_000_000,
            irq_count=82,
            qemu_machine="netduinoplus2",
            notes="QEMU netduinoplus2 maps 192 KB at 0x20000000; the real chip has 128 KB there",
        ),
        Mcu(
            name="stm32f746",
            summary="STM32F746, Cortex-M7 (single-precision FPU) 216 MHz, 1 MB flash, 320 KB SRAM",
            core="cortex-m7",
            cpu_flags=_M7_SP,
            flash=MemoryRegion("FLASH", 0x0800_0000, 1024 * KB, "rx", note="AXIM interface"),
            ram=MemoryRegion("RAM", 0x2000_0000, 320 * KB,
                             note="DTCM 64 KB + SRAM1 240 KB + SRAM2 16 KB, contiguous"),
            clock_hz=216_000_000,
            irq_count=98,
            notes="build only: no STM32F7 machine in QEMU",
        ),
        Mcu(
            name="stm32h743",
            summary="STM32H743, Cortex-M7 (double-precision FPU) 480 MHz, 2 MB flash, 1 MB SRAM",
            core="cortex-m7",
            cpu_flags=_M7_DP,
            flash=MemoryRegion("FLASH", 0x0800_0000, 2048 * KB, "rx", note="two 1 MB banks"),
            ram=MemoryRegion("DTCM", 0x2000_0000, 128 * KB, note="zero wait state, no DMA"),
            arena="AXISRAM",
            extra_regions=(
                MemoryRegion("AXISRAM", 0x2400_0000, 512 * KB, note="largest contiguous SRAM (D1 domain)"),
                MemoryRegion("SRAM123", 0x3000_0000, 288 * KB, note="D2 domain SRAM1+2+3"),
                MemoryRegion("SRAM4", 0x3800_0000, 64 * KB, note="D3 domain"),
            ),
            clock_hz=480_000_000,
            irq_count=150,
            notes="build only: no STM32H7 machine in QEMU; 480 MHz is revision V (revision Y: 400 MHz)",
        ),
        Mcu(
            name="qemu-m7",
            summary="QEMU mps2-an500 (Cortex-M7, not an STM32): 4 MB code RAM, 4 MB data RAM",
            core="cortex-m7",
            cpu_flags=_M7_DP,
            flash=MemoryRegion("FLASH", 0x0000_0000, 4096 * KB, "rx", note="MPS2 code SSRAM"),
            ram=MemoryRegion("RAM", 0x2000_0000, 4096 * KB, note="MPS2 data SSRAM"),
            clock_hz=25_000_000,
            irq_count=32,
            qemu_machine="mps2-an500",
            notes="emulation only, for Cortex-M7 instruction counts",
        ),
    )
}


def supported_mcus() -> list[str]:
    return list(MCUS)


def get_mcu(name: str | None = None) -> Mcu:
    """The MCU called `name` (default stm32f405); UnsupportedError lists the supported ones."""
    key = (name or DEFAULT_MCU).strip().lower()
    if key not in MCUS:
        raise UnsupportedError(f"unsupported MCU {name!r}; supported: {', '.join(MCUS)}")
    return MCUS[key]


def templates_dir() -> Path:
    """templates/ in a checkout, or emcgen/templates/ in an installed wheel (see emcgen.templating)."""
    return shared_templates_dir("stm32_cmsis").parent


def firmware_context(mcu: Mcu, *, stack_size: int = DEFAULT_STACK_SIZE,
                     semihosting: bool | None = None) -> dict:
    """Values the firmware templates use. semihosting=None: on when the MCU has a QEMU machine."""
    if stack_size <= 0 or stack_size % 8:
        raise UnsupportedError(f"stack size {stack_size} must be a positive multiple of 8 bytes")
    if semihosting is None:
        semihosting = mcu.qemu_machine is not None
    return {"mcu": mcu, "stack_size": stack_size, "semihosting": semihosting}


def render_firmware(mcu: Mcu | str, project_dir: Path, *, stack_size: int = DEFAULT_STACK_SIZE,
                    semihosting: bool | None = None) -> list[Path]:
    """Write the firmware skeleton for `mcu` into a project folder; returns the files written.

    templates/stm32_cmsis/firmware/X goes to <project>/firmware/X, except cmake/X which goes to
    <project>/cmake/X (so `-DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi.cmake` works from the project root).
    `.j2` files are rendered and lose the suffix; mcu.ld.j2 becomes <mcu name>.ld.
    """
    import jinja2  # only when rendering

    if isinstance(mcu, str):
        mcu = get_mcu(mcu)
    context = firmware_context(mcu, stack_size=stack_size, semihosting=semihosting)
    source = templates_dir() / "stm32_cmsis" / "firmware"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(source)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                             autoescape=False)
    project_dir = Path(project_dir)
    outputs: dict[Path, str] = {}   # render everything first: an error leaves no half-written project
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source)
        dest = project_dir / rel if rel.parts[0] == "cmake" else project_dir / "firmware" / rel
        if path.suffix == ".j2":
            dest = dest.with_name(f"{mcu.name}.ld" if path.name == "mcu.ld.j2" else path.stem)
            outputs[dest] = env.get_template(rel.as_posix()).render(**context)
        else:
            outputs[dest] = path.read_text()
    for dest, text in outputs.items():
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text)
    return list(outputs)
