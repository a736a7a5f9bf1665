"""emcgen.targets.stm32.cmsis_buffers against the scratch sizes real CMSIS-NN returned.

Every buffer_size entry of ../shared/fixtures/cmsis_nn_vectors/cases.json was measured with real CMSIS-NN
(x86-64 pure C, and arm-none-eabi-gcc builds for Cortex-M3, M4 and M55 run under QEMU). The "emc_nn" flavour
is checked against what the compiled emc_nn library itself asks for.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import support

from emcgen.errors import UnsupportedError
from emcgen.targets.stm32 import cmsis_buffers as cb

MEASURED = {
    "x86_64_pure_c": "pure_c",
    "cortex_m3_pure_c": "pure_c",
    "cortex_m4_dsp": "dsp",
    "cortex_m55_mve": "mve",
}


def _load_harness_module():
    spec = importlib.util.spec_from_file_location(
        "emc_nn_cases", Path(__file__).parent / "harness" / "emc_nn_cases.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def doc():
    return json.loads(support.shared("fixtures", "cmsis_nn_vectors", "cases.json").read_text())


def predicted(fn: str, a: dict, flavour: str) -> int:
    """cmsis_buffers' size for one fixture call."""
    if fn == "arm_convolve_wrapper_s8":
        p = a["conv_params"]
        return cb.convolve_wrapper_s8(p["stride"], p["padding"], p["dilation"], a["input_dims"],
                                      a["filter_dims"], a["output_dims"], flavour)
    if fn == "arm_convolve_s8":
        return cb.convolve_s8(a["input_dims"], a["filter_dims"], flavour)
    if fn == "arm_depthwise_conv_wrapper_s8":
        p = a["dw_conv_params"]
        return cb.depthwise_conv_wrapper_s8(p["stride"], p["padding"], p["dilation"], a["input_dims"],
                                            a["filter_dims"], a["output_dims"], flavour)
    if fn == "arm_fully_connected_s8":
        return cb.fully_connected_s8(a["filter_dims"], flavour)
    if fn == "arm_avgpool_s8":
        return cb.avgpool_s8(a["output_dims"]["w"], a["input_dims"]["c"], flavour)
    raise AssertionError(f"no buffer size rule for {fn}")


def _sized_cases(doc):
    for fn, spec in doc["functions"].items():
        for case in spec["cases"]:
            if case["buffer_size"] is not None:
                yield fn, case


def test_every_measured_size(doc):
    checked, wrong = 0, []
    for fn, case in _sized_cases(doc):
        for build, flavour in MEASURED.items():
            want = case["buffer_size"][build]
            got = predicted(fn, case["args"], flavour)
            checked += 1
            if got != want:
                wrong.append(f"{fn} {case['id']} {build}: predicted {got}, CMSIS-NN returned {want}")
    assert not wrong, "\n".join(wrong)
    assert checked == 4 * 161  # 161 cases of the five functions with a *_get_buffer_size


def test_emc_nn_flavour_matches_the_library_and_fits_cmsis_m4(doc, tmp_path):
    gcc = support.tool("gcc")
    harness = _load_harness_module()
    root = support.shared("fixtures", "cmsis_nn_vectors", "cases.json").parent
    vectors = [v for v in harness.all_cases(*harness.load_fixtures(root)) if v[1]["buffer_size"] is not None]
    exe = harness.build_harness(gcc, tmp_path / "emc_nn_vectors", ["-O1"])
    results = harness.run_harness(exe, [record for _, _, record, _ in vectors], tmp_path)
    for (fn, case, _, _), res in zip(vectors, results, strict=True):
        ours = predicted(fn, case["args"], "emc_nn")
        assert ours == res.scratch_bytes, f"{fn} {case['id']}: python {ours}, C {res.scratch_bytes}"
        assert ours <= case["buffer_size"]["cortex_m4_dsp"], f"{fn} {case['id']}"


def test_compiler_dependent_sizes():
    inp, flt, out = {"n": 1, "h": 8, "w": 8, "c": 16}, {"n": 32, "h": 1, "w": 1, "c": 16}, (1, 8, 8, 32)
    one = {"w": 1, "h": 1}
    zero = {"w": 0, "h": 0}
    # Arm Compiler 6 gives the DSP 1x1 fast kernel an int16 buffer of 2 * C_IN; gcc builds need none.
    assert cb.convolve_wrapper_s8(one, zero, one, inp, flt, out, "dsp", "armclang") == 64
    assert cb.convolve_wrapper_s8(one, zero, one, inp, flt, out, "dsp", "gcc") == 0
    # MVE runs a 1-input-channel depthwise conv as a conv above 1 (gcc) or 8 (armclang) output channels.
    dw_in, dw_flt, dw_out = (1, 10, 10, 1), (1, 3, 3, 4), (1, 10, 10, 4)
    pad = {"w": 1, "h": 1}
    assert cb.depthwise_conv_wrapper_s8(one, pad, one, dw_in, dw_flt, dw_out, "mve", "gcc") == 4 * 16 + 36
    assert cb.depthwise_conv_wrapper_s8(one, pad, one, dw_in, dw_flt, dw_out, "mve", "armclang") == 0


def test_flavour_for_core():
    assert cb.flavour_for_core("cortex-m4") == "dsp"
    assert cb.flavour_for_core("Cortex-M7") == "dsp"
    assert cb.flavour_for_core("cortex-m3") == "pure_c"
    assert cb.flavour_for_core("cortex-m55") == "mve"
    with pytest.raises(UnsupportedError, match="cortex-m99"):
        cb.flavour_for_core("cortex-m99")


def test_bad_flavour_is_a_clear_error():
    with pytest.raises(UnsupportedError, match="flavour 'neon'"):
        cb.fully_connected_s8((10, 1, 1, 4), "neon")
    with pytest.raises(UnsupportedError, match="compiler 'iar'"):
        cb.avgpool_s8(4, 8, "dsp", "iar")
