"""emc_nn_extra.h (pad, concat, requantize, mean, nearest resize, quantize, dequantize) and arm_softmax_s8
against the TFLM interpreter's reference kernels, on seeded random vectors, byte for byte.

The golden CMSIS-NN vectors hold only 28 softmax calls; the random softmax sweep here exercises the
fixed-point exp / reciprocal over many more input scales, betas and row sizes.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import support

HARNESS = Path(__file__).parent / "harness"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, HARNESS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


cases_mod = _load("emc_nn_cases")
tflm = _load("emc_nn_tflm")


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    support.module("tflite_micro")
    gcc = support.tool("gcc")
    workdir = tmp_path_factory.mktemp("emc_nn_extra")
    # The sanitizers stay on: these vectors also reach corners the golden vectors do not.
    exe = cases_mod.build_harness(gcc, workdir / "emc_nn_vectors",
                                  ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"])

    def run(calls):
        """calls: [(function, ints, arrays, expected ndarray)]; returns a list of mismatch descriptions."""
        records = [cases_mod.encode_call(fn, ints, arrays) for fn, ints, arrays, _ in calls]
        results = cases_mod.run_harness(exe, records, workdir)
        problems = []
        for i, ((fn, ints, _, expected), res) in enumerate(zip(calls, results, strict=True)):
            want = np.ascontiguousarray(expected).tobytes()
            if res.output != want or res.ret != 0 or res.flags != 0:
                got = np.frombuffer(res.output, dtype=expected.dtype)
                diff = int(np.sum(got != expected.ravel())) if got.size == expected.size else "size"
                problems.append(f"#{i} {fn} ints={ints}: ret {res.ret} flags {res.flags}, "
                                f"{diff} values differ")
        return problems

    return run


def _s8(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int8)


def _f32_bits(x: float) -> int:
    return int(np.array([x], dtype=np.float32).view(np.int32)[0])


def test_softmax_random_sweep(harness):
    # Rows stay below 512 values: with 512 or more values at the row maximum the sum of exps reaches 2^28,
    # TFLM aborts (RoundingDivideByPOT exponent > 31) and CMSIS-NN shifts by 32 (undefined).
    rng = np.random.default_rng(20261127)
    calls = []
    for _ in range(60):
        scale = float(np.exp(rng.uniform(np.log(1e-3), np.log(2.0))))
        beta = float(rng.choice([1.0, 0.5, 2.0, rng.uniform(0.05, 8.0)]))
        zp = int(rng.integers(-128, 128))
        rows, size = int(rng.integers(1, 5)), int(rng.choice([1, 2, 3, 10, 17, 64, 100, 255, 300]))
        spread = int(rng.choice([1, 8, 40, 255]))
        x = np.clip(rng.integers(-128, 128) + rng.integers(-spread, spread + 1, size=(rows, size)), -128, 127)
        x = x.astype(np.int8)
        mult, shift, diff_min = tflm.softmax_params(scale, beta)
        expected = tflm.softmax(x, scale, zp, beta)
        calls.append(("arm_softmax_s8", [rows, size, mult, shift, diff_min], [x], expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)


def test_pad(harness):
    rng = np.random.default_rng(1)
    calls = []
    for shape, pads in [((1, 3, 4, 2), (1, 0, 2, 1)), ((2, 5, 5, 3), (0, 0, 0, 0)),
                        ((1, 1, 1, 8), (3, 3, 3, 3)), ((3, 4, 2, 1), (0, 2, 1, 0)),
                        ((1, 7, 6, 5), (1, 1, 0, 2))]:
        zp = int(rng.integers(-128, 128))
        x = _s8(rng, shape)
        expected = tflm.pad(x, pads, 0.05, zp)
        calls.append(("emc_nn_pad_s8", [*shape, *pads, zp], [x], expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)


def test_concat_channels(harness):
    rng = np.random.default_rng(2)
    calls = []
    for outer_shape, channels in [((1, 4, 4), (3, 5)), ((2, 3, 1), (1, 1, 1, 1)), ((1, 1, 1), (16, 8, 2)),
                                  ((1, 5, 7), (4, 7, 1))]:
        xs = [_s8(rng, (*outer_shape, c)) for c in channels]
        expected = tflm.concat(xs, 0.1, -3)
        outer = int(np.prod(outer_shape))
        calls.append(("emc_nn_concat_s8", [outer, len(xs), *channels], xs, expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)


def test_requantize(harness):
    rng = np.random.default_rng(3)
    calls = []
    for s_in, s_out in [(0.1, 0.07), (0.02, 0.5), (0.5, 0.01), (0.0123, 0.0123), (1e-3, 1.0), (0.3, 0.0009)]:
        for zp_in, zp_out in [(0, 0), (-128, 127), (127, -128), (int(rng.integers(-128, 128)), 5)]:
            x = np.arange(-128, 128, dtype=np.int8)
            mult, shift = tflm.quantize_multiplier(tflm.f32(s_in) / tflm.f32(s_out))
            expected = tflm.requantize(x, s_in, zp_in, s_out, zp_out)
            calls.append(("emc_nn_requantize_s8", [x.size, -zp_in, mult, shift, zp_out], [x], expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)


def test_mean_over_height_and_width(harness):
    rng = np.random.default_rng(4)
    calls = []
    for shape in [(1, 7, 7, 8), (1, 1, 1, 3), (2, 5, 3, 4), (1, 13, 13, 2), (1, 2, 2, 16), (3, 4, 6, 1),
                  (1, 32, 32, 2)]:
        for s_in, s_out in [(0.05, 0.05), (0.05, 0.02), (0.01, 0.08), (0.2, 0.003)]:
            zp_in, zp_out = int(rng.integers(-128, 128)), int(rng.integers(-128, 128))
            x = _s8(rng, shape)
            mult, shift = tflm.quantize_multiplier(tflm.f32(s_in) / tflm.f32(s_out))
            keep = bool(rng.integers(0, 2))
            expected = tflm.mean_hw(x, s_in, zp_in, s_out, zp_out, keep)
            calls.append(("emc_nn_mean_s8", [*shape, -zp_in, mult, shift, zp_out], [x], expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)


def test_resize_nearest(harness):
    rng = np.random.default_rng(5)
    calls = []
    for shape, out_hw in [((1, 4, 4, 3), (8, 8)), ((1, 3, 5, 2), (7, 11)), ((2, 9, 9, 1), (4, 4)),
                          ((1, 1, 1, 4), (5, 3)), ((1, 6, 10, 2), (6, 10)), ((1, 14, 7, 1), (20, 3))]:
        for align in (False, True):
            for half in (False, True):
                if align and half:
                    continue  # TFLite rejects align_corners together with half_pixel_centers
                x = _s8(rng, shape)
                expected = tflm.resize_nearest(x, out_hw, align, half)
                ints = [*shape, *out_hw, int(align), int(half)]
                calls.append(("emc_nn_resize_nearest_s8", ints, [x], expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)


def test_quantize_float_to_int8(harness):
    rng = np.random.default_rng(6)
    calls = []
    for scale, zp in [(0.02, 3), (1.0 / 255, -128), (0.1, 0), (0.0078125, 127), (3.7, -5)]:
        s = np.float32(scale)
        k = np.arange(-300, 300, dtype=np.float32)
        # Random values, exact half-way points (ties round away from zero), values beyond the int8 range.
        # Not beyond the int32 range: TFLite's float->int32 cast is undefined there (x86 gives INT32_MIN).
        x = np.concatenate([rng.normal(0, 80 * s, 500).astype(np.float32), (k + np.float32(0.5)) * s,
                            np.array([1e5, -1e5, 0.0, -0.0], dtype=np.float32) * s]).astype(np.float32)
        expected = tflm.quantize(x, scale, zp)
        calls.append(("emc_nn_quantize_f32_s8", [x.size, _f32_bits(scale), zp], [x], expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)


def test_dequantize_int8_to_float(harness):
    calls = []
    for scale, zp in [(0.02, 3), (1.0 / 255, -128), (0.1, 0), (1e-5, 127), (3.7, -5)]:
        x = np.arange(-128, 128, dtype=np.int8)
        expected = tflm.dequantize(x, scale, zp).astype(np.float32)
        calls.append(("emc_nn_dequantize_s8_f32", [x.size, _f32_bits(scale), zp], [x], expected))
    problems = harness(calls)
    assert not problems, "\n".join(problems)
