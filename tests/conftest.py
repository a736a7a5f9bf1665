"""Shared test set-up.

Tests that need ../shared/ (fixtures, reference models) or an external tool (gcc, arm-none-eabi-gcc,
qemu-system-arm, riscv64-unknown-elf-gcc, node) use the helpers in support.py: they skip with the reason
in a user's clone, and fail under CI=true, so a missing tool can never pass as a skipped test in CI.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
