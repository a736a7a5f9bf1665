"""emc_nn API behaviour the golden vectors do not cover: NULL bias, arm_convolve_s8's upscale_dims, and
the argument errors.

Each check compares two calls that must agree by the API's definition (NULL bias = zero bias; an upscaled
input = the same input with zero points inserted by numpy), or expects CMSIS-NN's documented return code.
"""
from __future__ import annotations

import copy
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


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    gcc = support.tool("gcc")
    root = support.shared("fixtures", "cmsis_nn_vectors", "cases.json").parent
    doc, npz = cases_mod.load_fixtures(root)
    workdir = tmp_path_factory.mktemp("emc_nn_api")
    exe = cases_mod.build_harness(gcc, workdir / "emc_nn_vectors",
                                  ["-O1", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"])
    return {"doc": doc, "npz": npz, "run": lambda records: cases_mod.run_harness(exe, records, workdir)}


def _arrays(env, fn, case):
    z = env["npz"][fn]
    return [z[name] for name in cases_mod.array_names(fn, case["args"])]


def test_null_bias_is_zero_bias(env):
    records = []
    for fn in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_depthwise_conv_wrapper_s8",
               "arm_fully_connected_s8"):
        for case in env["doc"]["functions"][fn]["cases"]:
            ints = cases_mod.scalars(fn, case["args"])
            arrays = _arrays(env, fn, case)
            zero = list(arrays)
            zero[2] = np.zeros_like(arrays[2])
            null = list(arrays)
            null[2] = np.zeros(0, dtype=np.int32)  # the harness passes an empty array as NULL
            records += [cases_mod.encode_call(fn, ints, zero), cases_mod.encode_call(fn, ints, null)]
    results = env["run"](records)
    pairs = list(zip(results[0::2], results[1::2], strict=True))
    assert len(pairs) == 135
    bad = [i for i, (a, b) in enumerate(pairs) if a.output != b.output or a.ret != 0 or b.ret != 0]
    assert not bad
    # Not vacuous: the zero-bias outputs differ from the fixture outputs made with the real bias.
    assert any(a.output != b for (a, _), b in zip(pairs, _expected_outputs(env), strict=True))


def _expected_outputs(env):
    out = []
    for fn in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_depthwise_conv_wrapper_s8",
               "arm_fully_connected_s8"):
        z = env["npz"][fn]
        for case in env["doc"]["functions"][fn]["cases"]:
            out.append(z[cases_mod.output_name(fn, case["args"])].tobytes())
    return out


@pytest.mark.parametrize("up_h, up_w", [(2, 2), (2, 1), (1, 2), (1, 1)])
def test_upscale_dims_reads_a_zero_inserted_input(env, up_h, up_w):
    fn = "arm_convolve_s8"
    records = []
    for case in env["doc"]["functions"][fn]["cases"][:12]:
        a = copy.deepcopy(case["args"])
        x, flt, bias, mult, shift = _arrays(env, fn, case)
        n, h, w, c = x.shape
        zp = -a["conv_params"]["input_offset"]
        big = np.full((n, h * up_h, w * up_w, c), zp, dtype=np.int8)
        big[:, ::up_h, ::up_w] = x
        p = a["conv_params"]

        def out_size(size, axis, kernel, p=p):
            reach = p["dilation"][axis] * (kernel - 1) + 1
            return (size + 2 * p["padding"][axis] - reach) // p["stride"][axis] + 1

        out_h = out_size(big.shape[1], "h", a["filter_dims"]["h"])
        out_w = out_size(big.shape[2], "w", a["filter_dims"]["w"])
        a["input_dims"] = {"n": n, "h": big.shape[1], "w": big.shape[2], "c": c}
        a["output_dims"] = {"n": n, "h": out_h, "w": out_w, "c": a["output_dims"]["c"]}
        plain = cases_mod.scalars(fn, a)
        a["upscale_dims"] = {"n": 1, "h": up_h, "w": up_w, "c": 1}
        upscaled = cases_mod.scalars(fn, a)
        records += [cases_mod.encode_call(fn, plain, [big, flt, bias, mult, shift]),
                    cases_mod.encode_call(fn, upscaled, [x, flt, bias, mult, shift])]
    results = env["run"](records)
    for i, (plain_res, up_res) in enumerate(zip(results[0::2], results[1::2], strict=True)):
        assert plain_res.ret == 0 and up_res.ret == 0, i
        assert up_res.output == plain_res.output, f"case {i}: upscale {up_h}x{up_w} differs"


def test_argument_errors(env):
    fn = "arm_convolve_s8"
    case = env["doc"]["functions"][fn]["cases"][0]
    arrays = _arrays(env, fn, case)
    a = copy.deepcopy(case["args"])
    # Output channels that the groups do not divide (filter C 1 of input C k -> k groups).
    a["filter_dims"]["c"] = 1
    a["input_dims"]["c"] = 3
    a["output_dims"]["c"] = 4
    bad_groups = cases_mod.encode_call(fn, cases_mod.scalars(fn, a), arrays)
    pool = env["doc"]["functions"]["arm_max_pool_s8"]["cases"][0]
    p = copy.deepcopy(pool["args"])
    p["input_dims"]["n"] = 0
    no_batch = cases_mod.encode_call("arm_max_pool_s8", cases_mod.scalars("arm_max_pool_s8", p),
                                     _arrays(env, "arm_max_pool_s8", pool))
    results = env["run"]([bad_groups, no_batch])
    assert [r.ret for r in results] == [-1, -1]  # ARM_CMSIS_NN_ARG_ERROR
