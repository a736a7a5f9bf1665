"""Our own minimal declarations of the Kendryte standalone SDK API that generated K210 projects call.

They exist only for the compile check (a syntax and type check of every generated .c file with
riscv64-unknown-elf-gcc, no link): names and signatures follow the SDK's documented API (kpu.h, sysctl.h,
dmac.h, plic.h, uarths.h, encoding.h), written here in our own words; enum values and struct members are
placeholders. libc/ holds the few C library declarations the generated code uses, because Debian's
riscv64-unknown-elf-gcc ships no C library (the check compiles with -ffreestanding).
These headers are never copied into generated projects; a real build uses the SDK's own headers.

`python3 -m emcgen.targets.k210.sdk_stub` prints this folder (the generated README uses it).
"""
from pathlib import Path

PATH = Path(__file__).resolve().parent
LIBC = PATH / "libc"

# Flags of the compile check (also printed in the generated README, which the tests run verbatim).
CHECK_FLAGS = ["-march=rv64imafc", "-mabi=lp64f", "-mcmodel=medany", "-std=gnu99", "-Os", "-ffreestanding",
               "-Wall", "-Wextra", "-Werror"]
