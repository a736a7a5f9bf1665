"""emc_nn on Cortex-M under QEMU: all 274 CMSIS-NN golden vectors, byte for byte, on the code paths the host
cannot run (the DSP-extension code of emc_nn_dot.h and the depthwise kernel) and on 32-bit Arm portable C.

Builds: Cortex-M4F (stm32f405 on QEMU netduinoplus2) with the DSP code and with -DEMC_NN_PORTABLE, and
Cortex-M7 (QEMU mps2-an500) with the DSP code. The firmware also checks 64 guard bytes after the output and
the scratch buffer and that no input changed. Instruction counts per call come from QEMU's plugin.
"""
from __future__ import annotations

import collections
import importlib.util
import sys
from pathlib import Path

import pytest
import support

HARNESS = Path(__file__).parent / "harness"

BUILDS = {
    "m4-dsp": ("stm32f405", "netduinoplus2", ()),
    "m4-portable": ("stm32f405", "netduinoplus2", ("-DEMC_NN_PORTABLE",)),
    "m7-dsp": ("qemu-m7", "mps2-an500", ()),
}


def _load(name):
    spec = importlib.util.spec_from_file_location(name, HARNESS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-nm", "qemu-system-arm", "gcc"):
        support.tool(tool)
    from emcgen.targets.stm32 import qemu

    cases_mod, firmware = _load("emc_nn_cases"), _load("emc_nn_firmware")
    root = support.shared("fixtures", "cmsis_nn_vectors", "cases.json").parent
    doc, npz = cases_mod.load_fixtures(root)
    vectors = cases_mod.all_cases(doc, npz)
    records = [record for _, _, record, _ in vectors]
    array_sizes = [[npz[fn][n].nbytes for n in cases_mod.array_names(fn, case["args"])]
                   for fn, case, _, _ in vectors]
    out_sizes = [len(expected) for _, _, _, expected in vectors]
    scratch = [case["buffer_size"]["cortex_m4_dsp"] if case["buffer_size"] else 0
               for _, case, _, _ in vectors]
    batches = firmware.pack(records, array_sizes, out_sizes, scratch)
    work = tmp_path_factory.mktemp("emc_nn_qemu")
    plugin_dir = work / "plugin"
    qemu.build_plugin(plugin_dir)
    return {"cases": cases_mod, "firmware": firmware, "vectors": vectors, "records": records,
            "batches": batches, "work": work, "plugin_dir": plugin_dir}


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_bit_exact_on_cortex_m(setup, build):
    mcu, machine, flags = BUILDS[build]
    workdir = setup["work"] / build
    workdir.mkdir()
    elf = setup["firmware"].build(mcu, workdir, support.tool("arm-none-eabi-gcc"), flags)
    results, instructions = setup["firmware"].run(elf, machine, setup["records"], setup["batches"], workdir,
                                                  setup["cases"].parse_results, setup["plugin_dir"])
    failures, passed = [], collections.Counter()
    for (fn, case, _, expected), res in zip(setup["vectors"], results, strict=True):
        problems = []
        if res.output != expected:
            problems.append("output differs")
        if case["return_value"] is not None and res.ret != case["return_value"]:
            problems.append(f"returned {res.ret}")
        if res.flags & 2:
            problems.append("an input was modified")
        if res.flags & 4:
            problems.append("wrote past the output or scratch buffer")
        limit = case["buffer_size"]["cortex_m4_dsp"] if case["buffer_size"] else 0
        if res.scratch_bytes > limit:
            problems.append(f"asks for {res.scratch_bytes} B scratch, CMSIS-NN M4 {limit} B")
        if problems:
            failures.append(f"{build} {fn} {case['id']}: {'; '.join(problems)}")
        else:
            passed[fn] += 1
    assert not failures, "\n".join(failures)
    assert sum(passed.values()) == 274
    assert all(n > 0 for n in instructions)
