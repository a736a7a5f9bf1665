"""emc_nn against the outputs of real CMSIS-NN: all 274 golden-vector calls, byte for byte.

The expected bytes come from ../shared/fixtures/cmsis_nn_vectors (real CMSIS-NN v7.0.0-43, see its README),
not from emc_nn. The harness (tests/stm32/harness/emc_nn_vectors.c) also reports the scratch size emc_nn
asks for, whether every output byte was written (two runs over different garbage agree) and whether an
input was modified.
"""
from __future__ import annotations

import collections
import importlib.util
from pathlib import Path

import pytest
import support

_spec = importlib.util.spec_from_file_location(
    "emc_nn_cases", Path(__file__).parent / "harness" / "emc_nn_cases.py")
emc_nn_cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(emc_nn_cases)

SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all"]


@pytest.fixture(scope="module")
def vectors():
    root = support.shared("fixtures", "cmsis_nn_vectors", "cases.json").parent
    doc, npz = emc_nn_cases.load_fixtures(root)
    return emc_nn_cases.all_cases(doc, npz)


def _run(vectors, flags, workdir):
    gcc = support.tool("gcc")
    exe = emc_nn_cases.build_harness(gcc, workdir / "emc_nn_vectors", flags)
    return emc_nn_cases.run_harness(exe, [record for _, _, record, _ in vectors], workdir)


@pytest.fixture(scope="module")
def results_o2(vectors, tmp_path_factory):
    return _run(vectors, ["-O2"], tmp_path_factory.mktemp("emc_nn_o2"))


def _failures(vectors, results):
    """Per-function pass counts and a description of every failing case."""
    passed, failures = collections.Counter(), []
    for (fn, case, _, expected), res in zip(vectors, results, strict=True):
        problems = []
        if res.output != expected:
            diff = sum(a != b for a, b in zip(res.output, expected, strict=False))
            problems.append(f"{diff} of {len(expected)} output bytes differ (len {len(res.output)})")
        if case["return_value"] is not None and res.ret != case["return_value"]:
            problems.append(f"returned {res.ret}, CMSIS-NN {case['return_value']}")
        if res.flags & 1:
            problems.append("output not fully written or depends on scratch contents")
        if res.flags & 2:
            problems.append("an input array was modified")
        if problems:
            failures.append(f"{fn} {case['id']} ({case['desc']}): {'; '.join(problems)}")
        else:
            passed[fn] += 1
    return passed, failures


def test_fixture_has_all_cases(vectors):
    counts = collections.Counter(fn for fn, _, _, _ in vectors)
    assert sum(counts.values()) == 274
    assert set(counts) == {fn for fn in emc_nn_cases.FUNCTION_IDS if fn.startswith("arm_")}


def test_bit_exact_with_cmsis_nn(vectors, results_o2):
    passed, failures = _failures(vectors, results_o2)
    assert not failures, "\n".join(failures)
    assert sum(passed.values()) == 274


def test_bit_exact_and_clean_under_asan_ubsan(vectors, tmp_path):
    # Exact-size heap buffers + ASan catch any read or write past an array; UBSan aborts on any UB
    # (signed overflow, bad shifts, misaligned access) because of -fno-sanitize-recover.
    results = _run(vectors, SANITIZE, tmp_path)
    _, failures = _failures(vectors, results)
    assert not failures, "\n".join(failures)


def test_scratch_never_exceeds_cmsis_nn_m4(vectors, results_o2):
    # A project sizes one scratch buffer with CMSIS-NN's Cortex-M4 (DSP) numbers; emc_nn must fit in it.
    too_big = []
    for (fn, case, _, _), res in zip(vectors, results_o2, strict=True):
        limit = case["buffer_size"]["cortex_m4_dsp"] if case["buffer_size"] else 0
        if res.scratch_bytes > limit or res.scratch_bytes < 0:
            too_big.append(f"{fn} {case['id']}: emc_nn {res.scratch_bytes} B > CMSIS-NN M4 {limit} B")
    assert not too_big, "\n".join(too_big)
