"""Run emc_nn test vectors on a Cortex-M under QEMU with the firmware harness emc_nn_fw_vectors.c.

The firmware has fixed-size static buffers, so the cases are packed into batches that fit; each batch is one
QEMU run (cases.bin in, results.bin out, through semihosting). QEMU's instruction-counting plugin gives the
instructions of every call (one emc_bench_begin/end region per case).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from emcgen.targets.stm32 import mcus, qemu

HERE = Path(__file__).resolve().parent
EMC_NN = HERE.parent.parent.parent / "templates" / "stm32_cmsis" / "emc_nn"

# Static buffers of the firmware (RAM of the smallest MCU used: 128 KB, of which 8 KB stack).
CAPS = {"EMC_CASES_CAP": 48 * 1024, "EMC_POOL_CAP": 40 * 1024, "EMC_RESULTS_CAP": 24 * 1024}
GUARD_BYTES = 64
RESULT_HEADER = 16


def _round4(n: int) -> int:
    return (n + 3) & ~3


def build(mcu_name: str, outdir: Path, gcc: str, extra_flags: tuple[str, ...] = (), emc_nn_dir: Path = EMC_NN,
          name: str = "emc_nn_fw_vectors") -> Path:
    """Link the firmware harness, the emc_nn sources and the firmware skeleton for an MCU of mcus.py."""
    mcu = mcus.get_mcu(mcu_name)
    mcus.render_firmware(mcu, outdir)
    fw = outdir / "firmware"
    elf = outdir / f"{name}_{mcu.name}.elf"
    sources = [HERE / "emc_nn_fw_vectors.c", *sorted((emc_nn_dir / "src").glob("*.c")),
               fw / "startup.c", fw / "semihost.c", fw / "cycles.c"]
    cmd = [gcc, *mcu.cpu_flags, "-O2", "-g", "-std=c11", "-Wall", "-Wextra", "-Werror",
           "-ffunction-sections", "-fdata-sections", "-DEMC_SEMIHOSTING=1",
           f"-DEMC_IRQ_COUNT={mcu.irq_count}",
           *(f"-D{k}={v}" for k, v in CAPS.items()), *extra_flags,
           f"-I{fw}", f"-I{emc_nn_dir / 'include'}", f"-I{HERE}",
           "-nostartfiles", "--specs=nano.specs", "-T", str(fw / f"{mcu.name}.ld"), "-Wl,--gc-sections",
           *map(str, sources), "-o", str(elf)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f"firmware build failed:\n{' '.join(cmd)}\n{proc.stderr}")
    return elf


def pack(records: list[bytes], array_sizes: list[list[int]], out_sizes: list[int],
         scratch_bounds: list[int]) -> list[list[int]]:
    """Indices of the cases in each batch, so every batch fits the firmware's buffers."""
    batches, current, case_bytes, result_bytes = [], [], 0, 0
    for i, record in enumerate(records):
        pool = sum(_round4(n) for n in array_sizes[i]) + _round4(out_sizes[i] + GUARD_BYTES) + \
            _round4(scratch_bounds[i] + GUARD_BYTES)
        result = RESULT_HEADER + out_sizes[i]
        if (len(record) >= CAPS["EMC_CASES_CAP"] or pool > CAPS["EMC_POOL_CAP"]
                or result > CAPS["EMC_RESULTS_CAP"]):
            raise ValueError(f"case {i} does not fit the firmware buffers")
        if current and (case_bytes + len(record) >= CAPS["EMC_CASES_CAP"]
                        or result_bytes + result > CAPS["EMC_RESULTS_CAP"]):
            batches.append(current)
            current, case_bytes, result_bytes = [], 0, 0
        current.append(i)
        case_bytes += len(record)
        result_bytes += result
    if current:
        batches.append(current)
    return batches


def run(elf: Path, machine: str, records: list[bytes], batches: list[list[int]], workdir: Path,
        parse_results, plugin_dir: Path):
    """Results (in case order) and the instructions of each call."""
    results, instructions = [None] * len(records), [None] * len(records)
    for batch in batches:
        (workdir / "cases.bin").write_bytes(b"".join(records[i] for i in batch))
        (workdir / "results.bin").unlink(missing_ok=True)
        res = qemu.run_elf(elf, machine=machine, cwd=workdir, timeout=120, plugin_dir=plugin_dir)
        if res.exit_code != 0:
            raise AssertionError(f"firmware exited with {res.exit_code}: {res.stdout}{res.stderr[-500:]}")
        batch_results = parse_results((workdir / "results.bin").read_bytes(), len(batch))
        if len(res.instructions_per_region) != len(batch):
            raise AssertionError(f"{len(res.instructions_per_region)} counted regions for {len(batch)} cases")
        for i, r, n in zip(batch, batch_results, res.instructions_per_region, strict=True):
            results[i], instructions[i] = r, n
    return results, instructions
