"""The int8 kernels against real CMSIS-NN outputs (../shared/fixtures/cmsis_nn_vectors, 274 calls).

Each case's arguments are mapped onto emcgen's kernel (weights converted from CMSIS-NN's OHWI / 1HWC /
[out][in] layouts to the IR layouts) and the output must be byte-identical to what CMSIS-NN computed.
A second set of tests derives the same call parameters from the case's TFLite provenance (float32 scales,
zero points, fused activation) with emcgen.tflite_int8.quant and compares them with the arguments the
case passed to CMSIS-NN (which TFLM reproduced, see the fixture README).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import support

from emcgen.tflite_int8 import kernels as K
from emcgen.tflite_int8 import quant as Q

_DIR = ("fixtures", "cmsis_nn_vectors")


def _load():
    doc = json.loads(support.shared(*_DIR, "cases.json").read_text())
    out = []
    for fname, fn in doc["functions"].items():
        with np.load(support.shared(*_DIR, fn["npz"])) as z:
            arrays = {k: z[k] for k in z.files}
        for case in fn["cases"]:
            out.append((fname, case, arrays))
    return out


@pytest.fixture(scope="module")
def cases():
    return _load()


def _arr(arrays, ref):
    return arrays[ref["array"]]


def _pads(in_dims, out_dims, filt_hw, stride, padding, dilation=(1, 1)):
    """(top, bottom, left, right): CMSIS-NN passes only top/left; the rest follows from the output size."""
    pads = []
    ins, outs = (in_dims["h"], in_dims["w"]), (out_dims["h"], out_dims["w"])
    for i, o, k, s, p, d in zip(ins, outs, filt_hw, stride, padding, dilation, strict=True):
        after = (o - 1) * s + (k - 1) * d + 1 - i - p
        pads += [p, max(after, 0)]
    return tuple(pads)


def _tile(t):
    return (t["h"], t["w"])


def _conv_quant(params, arrays, qp):
    act = params["activation"]
    return Q.ConvQuant(params["input_offset"], params["output_offset"],
                       _arr(arrays, qp["multiplier"]).astype(np.int64),
                       _arr(arrays, qp["shift"]).astype(np.int64),
                       act["min"], act["max"])


def run_case(fname, case, arrays) -> tuple[np.ndarray, np.ndarray]:
    """Run one case through emcgen's kernel; returns (got, expected)."""
    a = case["args"]
    if fname in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_depthwise_conv_wrapper_s8"):
        depthwise = fname.startswith("arm_depthwise")
        p = a["dw_conv_params" if depthwise else "conv_params"]
        x = _arr(arrays, a["input_data"])
        filt = _arr(arrays, a["filter_data"])
        fd, idims, odims = a["filter_dims"], a["input_dims"], a["output_dims"]
        stride, dil = _tile(p["stride"]), _tile(p["dilation"])
        pads = _pads(idims, odims, (fd["h"], fd["w"]), stride, _tile(p["padding"]), dil)
        q = _conv_quant(p, arrays, a["quant_params"])
        bias = _arr(arrays, a["bias_data"])
        if depthwise:
            w = filt.reshape(fd["h"], fd["w"], idims["c"], p["ch_mult"])
            got = K.depthwise_conv2d(x, w, bias, q, stride, pads, dil)
        else:
            got = K.conv2d(x, filt.transpose(1, 2, 3, 0), bias, q, stride, pads, dil)
        return got, _arr(arrays, a["output_data"])
    if fname == "arm_fully_connected_s8":
        p, qp = a["fc_params"], a["quant_params"]
        act = p["activation"]
        q = Q.ConvQuant(p["input_offset"], p["output_offset"], np.array([qp["multiplier"]]),
                        np.array([qp["shift"]]), act["min"], act["max"], filter_offset=p["filter_offset"])
        x = _arr(arrays, a["input_data"])
        got = K.fully_connected(x, _arr(arrays, a["filter_data"]).T, _arr(arrays, a["bias_data"]), q)
        expected = _arr(arrays, a["output_data"])
        return got, expected.reshape(got.shape)
    if fname in ("arm_max_pool_s8", "arm_avgpool_s8"):
        p = a["pool_params"]
        fd, idims, odims = a["filter_dims"], a["input_dims"], a["output_dims"]
        kernel, stride = (fd["h"], fd["w"]), _tile(p["stride"])
        pads = _pads(idims, odims, kernel, stride, _tile(p["padding"]))
        fn = K.max_pool2d if fname == "arm_max_pool_s8" else K.avg_pool2d
        act = p["activation"]
        got = fn(_arr(arrays, a["input_data"]), kernel, stride, pads, act["min"], act["max"])
        return got, _arr(arrays, a["output_data"])
    if fname == "arm_elementwise_add_s8":
        q = Q.AddQuant(a["input_1_offset"], a["input_1_mult"], a["input_1_shift"], a["input_2_offset"],
                       a["input_2_mult"], a["input_2_shift"], a["out_offset"], a["out_mult"], a["out_shift"],
                       a["out_activation_min"], a["out_activation_max"], a["left_shift"])
        got = K.add(_arr(arrays, a["input_1_vect"]), _arr(arrays, a["input_2_vect"]), q)
        return got, _arr(arrays, a["output"])
    if fname == "arm_elementwise_mul_s8":
        q = Q.MulQuant(a["input_1_offset"], a["input_2_offset"], a["out_offset"], a["out_mult"],
                       a["out_shift"],
                       a["out_activation_min"], a["out_activation_max"])
        got = K.mul(_arr(arrays, a["input_1_vect"]), _arr(arrays, a["input_2_vect"]), q)
        return got, _arr(arrays, a["output"])
    if fname == "arm_softmax_s8":
        q = Q.SoftmaxQuant(a["mult"], a["shift"], a["diff_min"])
        x = _arr(arrays, a["input"]).reshape(a["num_rows"], a["row_size"])
        return K.softmax(x, q), _arr(arrays, a["output"]).reshape(a["num_rows"], a["row_size"])
    raise AssertionError(f"no mapping for {fname}")


def test_every_case_is_byte_identical(cases):
    assert len(cases) == 274
    failures = []
    counts: dict[str, int] = {}
    for fname, case, arrays in cases:
        got, expected = run_case(fname, case, arrays)
        counts[fname] = counts.get(fname, 0) + 1
        if got.shape != expected.shape or got.dtype != np.int8 or not np.array_equal(got, expected):
            n_bad = int((got != expected).sum()) if got.shape == expected.shape else -1
            failures.append(f"{fname} {case['id']} ({case['desc']}): {n_bad} bytes differ")
    assert not failures, "\n".join(failures)
    assert sum(counts.values()) == 274 and len(counts) == 9


def test_kernels_can_fail(cases):
    """The comparison is sensitive: a multiplier 0.5 % off changes some output of most conv cases."""
    changed = 0
    conv = [(f, c, a) for f, c, a in cases if f == "arm_convolve_s8"]
    for fname, case, arrays in conv:
        arrays = dict(arrays)
        ref = case["args"]["quant_params"]["multiplier"]["array"]
        arrays[ref] = arrays[ref] + arrays[ref] // 200
        got, expected = run_case(fname, case, arrays)
        changed += not np.array_equal(got, expected)
    assert changed >= len(conv) // 2


# ---- parameters from the TFLite provenance ---------------------------------------------------------
_ACT = {"NONE": None, "RELU": "relu", "RELU6": "relu6", "RELU_N1_TO_1": "relu_n1_to_1"}


def _expressible(case):
    t = case["tflite"]
    return t.get("tflm_expressible") and t.get("fused_activation", "NONE") in _ACT


def test_conv_and_depthwise_params_from_scales(cases):
    n = 0
    for fname, case, arrays in cases:
        if fname not in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_depthwise_conv_wrapper_s8"):
            continue
        if not _expressible(case):
            continue
        t, a = case["tflite"], case["args"]
        p = a["dw_conv_params" if fname.startswith("arm_depthwise") else "conv_params"]
        q = Q.conv_params(t["input_scale"], t["input_zero_point"], t["filter_scales"], t["output_scale"],
                          t["output_zero_point"], _ACT[t["fused_activation"]])
        assert q.input_offset == p["input_offset"] and q.output_offset == p["output_offset"], case["id"]
        np.testing.assert_array_equal(q.multiplier, _arr(arrays, a["quant_params"]["multiplier"]), case["id"])
        np.testing.assert_array_equal(q.shift, _arr(arrays, a["quant_params"]["shift"]), case["id"])
        assert (q.act_min, q.act_max) == (p["activation"]["min"], p["activation"]["max"]), case["id"]
        n += 1
    assert n >= 90


def test_fc_add_mul_softmax_params_from_scales(cases):
    seen = {"fc": 0, "add": 0, "mul": 0, "softmax": 0}
    for fname, case, _arrays in cases:
        if not _expressible(case):
            continue
        t, a = case["tflite"], case["args"]
        act = _ACT.get(t.get("fused_activation", "NONE"))
        if fname == "arm_fully_connected_s8":
            q = Q.conv_params(t["input_scale"], t["input_zero_point"], t["filter_scale"], t["output_scale"],
                              t["output_zero_point"], act)
            assert (int(q.multiplier[0]), int(q.shift[0])) == (a["quant_params"]["multiplier"],
                                                               a["quant_params"]["shift"]), case["id"]
            assert (q.act_min, q.act_max) == (a["fc_params"]["activation"]["min"],
                                              a["fc_params"]["activation"]["max"]), case["id"]
            seen["fc"] += 1
        elif fname == "arm_elementwise_add_s8":
            q = Q.add_params(t["input_1_scale"], t["input_1_zero_point"], t["input_2_scale"],
                             t["input_2_zero_point"], t["output_scale"], t["output_zero_point"], act)
            ours = (q.input1_offset, q.input1_multiplier, q.input1_shift, q.input2_offset,
                    q.input2_multiplier, q.input2_shift, q.output_offset, q.output_multiplier,
                    q.output_shift, q.act_min, q.act_max)
            keys = ("input_1_offset", "input_1_mult", "input_1_shift", "input_2_offset", "input_2_mult",
                    "input_2_shift", "out_offset", "out_mult", "out_shift", "out_activation_min",
                    "out_activation_max")
            theirs = tuple(a[k] for k in keys)
            assert ours == theirs, case["id"]
            seen["add"] += 1
        elif fname == "arm_elementwise_mul_s8":
            q = Q.mul_params(t["input_1_scale"], t["input_1_zero_point"], t["input_2_scale"],
                             t["input_2_zero_point"], t["output_scale"], t["output_zero_point"], act)
            assert (q.input1_offset, q.input2_offset, q.output_offset, q.output_multiplier, q.output_shift,
                    q.act_min, q.act_max) == (a["input_1_offset"], a["input_2_offset"], a["out_offset"],
                                              a["out_mult"], a["out_shift"], a["out_activation_min"],
                                              a["out_activation_max"]), case["id"]
            seen["mul"] += 1
        elif fname == "arm_softmax_s8":
            q = Q.softmax_params(t["input_scale"], t["beta"])
            if a["mult"] == Q.INT32_MAX:
                # Saturated beta * scale: TFLite (double rounding) gets shift 31 / diff_min 0 here, the case
                # passed CMSIS-NN the single-rounding clamp (30, -1); both leave only the row maximum.
                assert (q.multiplier, q.shift, q.diff_min) == (Q.INT32_MAX, 31, 0), case["id"]
            else:
                want = (a["mult"], a["shift"], a["diff_min"])
                assert (q.multiplier, q.shift, q.diff_min) == want, case["id"]
            seen["softmax"] += 1
    assert min(seen.values()) >= 20, seen
