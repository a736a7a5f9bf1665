"""Feed test vectors (the CMSIS-NN golden vectors of ../shared/fixtures/cmsis_nn_vectors, or vectors checked
against the TFLM interpreter) to the C harness emc_nn_vectors.c.

encode_cases() turns cases.json + the npz arrays into the harness's binary input, parse_results() reads its
binary output back, build_harness() compiles it together with the emc_nn sources.
The scalar layout per function here must match decode() in emc_nn_vectors.c.
"""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path
from typing import NamedTuple

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
EMC_NN = REPO / "templates" / "stm32_cmsis" / "emc_nn"
HARNESS_C = HERE / "emc_nn_vectors.c"

FUNCTION_IDS = {
    "arm_convolve_wrapper_s8": 0,
    "arm_convolve_s8": 1,
    "arm_depthwise_conv_wrapper_s8": 2,
    "arm_fully_connected_s8": 3,
    "arm_max_pool_s8": 4,
    "arm_avgpool_s8": 5,
    "arm_elementwise_add_s8": 6,
    "arm_elementwise_mul_s8": 7,
    "arm_softmax_s8": 8,
    # emc_nn_extra.h, checked against the TFLM interpreter
    "emc_nn_pad_s8": 20,
    "emc_nn_concat_s8": 21,
    "emc_nn_requantize_s8": 22,
    "emc_nn_mean_s8": 23,
    "emc_nn_resize_nearest_s8": 24,
    "emc_nn_quantize_f32_s8": 25,
    "emc_nn_dequantize_s8_f32": 26,
}

WARNINGS = ["-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wdouble-promotion"]


class Result(NamedTuple):
    ret: int
    scratch_bytes: int
    flags: int
    output: bytes


def _dims(d) -> list[int]:
    return [d["n"], d["h"], d["w"], d["c"]]


def _conv_ints(p) -> list[int]:
    return [p["input_offset"], p["output_offset"], p["stride"]["w"], p["stride"]["h"], p["padding"]["w"],
            p["padding"]["h"], p["dilation"]["w"], p["dilation"]["h"], p["activation"]["min"],
            p["activation"]["max"]]


def scalars(fn: str, a: dict) -> list[int]:
    """The int32 arguments of one call, in the order emc_nn_vectors.c decodes them."""
    if fn in ("arm_convolve_wrapper_s8", "arm_convolve_s8"):
        ints = _conv_ints(a["conv_params"]) + _dims(a["input_dims"]) + _dims(a["filter_dims"]) + \
            _dims(a["bias_dims"]) + _dims(a["output_dims"])
        up = a.get("upscale_dims")
        return ints + ([0, 0, 0, 0, 0] if up is None else [1] + _dims(up))
    if fn == "arm_depthwise_conv_wrapper_s8":
        p = a["dw_conv_params"]
        return [p["input_offset"], p["output_offset"], p["ch_mult"], p["stride"]["w"], p["stride"]["h"],
                p["padding"]["w"], p["padding"]["h"], p["dilation"]["w"], p["dilation"]["h"],
                p["activation"]["min"], p["activation"]["max"]] + _dims(a["input_dims"]) + \
            _dims(a["filter_dims"]) + _dims(a["bias_dims"]) + _dims(a["output_dims"])
    if fn == "arm_fully_connected_s8":
        p, q = a["fc_params"], a["quant_params"]
        return [p["input_offset"], p["filter_offset"], p["output_offset"], p["activation"]["min"],
                p["activation"]["max"], q["multiplier"], q["shift"]] + _dims(a["input_dims"]) + \
            _dims(a["filter_dims"]) + _dims(a["bias_dims"]) + _dims(a["output_dims"])
    if fn in ("arm_max_pool_s8", "arm_avgpool_s8"):
        p = a["pool_params"]
        return [p["stride"]["w"], p["stride"]["h"], p["padding"]["w"], p["padding"]["h"],
                p["activation"]["min"], p["activation"]["max"]] + _dims(a["input_dims"]) + \
            _dims(a["filter_dims"]) + _dims(a["output_dims"])
    if fn == "arm_elementwise_add_s8":
        names = ["input_1_offset", "input_1_mult", "input_1_shift", "input_2_offset", "input_2_mult",
                 "input_2_shift", "left_shift", "out_offset", "out_mult", "out_shift", "out_activation_min",
                 "out_activation_max", "block_size"]
        return [a[n] for n in names]
    if fn == "arm_elementwise_mul_s8":
        names = ["input_1_offset", "input_2_offset", "out_offset", "out_mult", "out_shift",
                 "out_activation_min", "out_activation_max", "block_size"]
        return [a[n] for n in names]
    if fn == "arm_softmax_s8":
        return [a["num_rows"], a["row_size"], a["mult"], a["shift"], a["diff_min"]]
    raise ValueError(f"unknown function {fn}")


def array_names(fn: str, a: dict) -> list[str]:
    """The input arrays of one call, in the order emc_nn_vectors.c uses them."""
    if fn in ("arm_convolve_wrapper_s8", "arm_convolve_s8", "arm_depthwise_conv_wrapper_s8"):
        q = a["quant_params"]
        return [a["input_data"]["array"], a["filter_data"]["array"], a["bias_data"]["array"],
                q["multiplier"]["array"], q["shift"]["array"]]
    if fn == "arm_fully_connected_s8":
        return [a["input_data"]["array"], a["filter_data"]["array"], a["bias_data"]["array"]]
    if fn in ("arm_max_pool_s8", "arm_avgpool_s8"):
        return [a["input_data"]["array"]]
    if fn in ("arm_elementwise_add_s8", "arm_elementwise_mul_s8"):
        return [a["input_1_vect"]["array"], a["input_2_vect"]["array"]]
    if fn == "arm_softmax_s8":
        return [a["input"]["array"]]
    raise ValueError(f"unknown function {fn}")


def output_name(fn: str, a: dict) -> str:
    for key in ("output_data", "output"):
        if key in a:
            return a[key]["array"]
    raise ValueError(f"no output array for {fn}")


def encode_call(fn: str, ints: list[int], arrays: list[np.ndarray]) -> bytes:
    """One record of the harness input."""
    out = [struct.pack("<ii", FUNCTION_IDS[fn], len(ints)), struct.pack(f"<{len(ints)}i", *ints),
           struct.pack("<i", len(arrays))]
    for arr in arrays:
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        out.append(struct.pack("<i", len(raw)) + raw)
    return b"".join(out)


def load_fixtures(root: Path):
    """(cases.json document, {function name: loaded npz})."""
    doc = json.loads((root / "cases.json").read_text())
    npz = {fn: np.load(root / spec["npz"]) for fn, spec in doc["functions"].items()}
    return doc, npz


def all_cases(doc, npz):
    """[(function, case, input record bytes, expected output bytes)] for every case of the fixture."""
    cases = []
    for fn, spec in doc["functions"].items():
        z = npz[fn]
        for case in spec["cases"]:
            a = case["args"]
            arrays = [z[name] for name in array_names(fn, a)]
            record = encode_call(fn, scalars(fn, a), arrays)
            cases.append((fn, case, record, z[output_name(fn, a)].tobytes()))
    return cases


def parse_results(raw: bytes, count: int) -> list[Result]:
    results, pos = [], 0
    for _ in range(count):
        ret, scratch, flags, nbytes = struct.unpack_from("<iiii", raw, pos)
        pos += 16
        results.append(Result(ret, scratch, flags, raw[pos:pos + nbytes]))
        pos += nbytes
    if pos != len(raw):
        raise ValueError(f"harness wrote {len(raw)} bytes, {pos} expected for {count} cases")
    return results


def build_harness(cc: str, out: Path, extra_flags: list[str], harness: Path = HARNESS_C) -> Path:
    """Compile a harness C file with every emc_nn source; raise with the compiler output on failure."""
    sources = sorted(str(p) for p in (EMC_NN / "src").glob("*.c"))
    cmd = [cc, *WARNINGS, *extra_flags, "-I", str(EMC_NN / "include"), str(harness), *sources, "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AssertionError(f"compile failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return out


def run_harness(exe: Path, records: list[bytes], workdir: Path) -> list[Result]:
    cases_bin, results_bin = workdir / "cases.bin", workdir / "results.bin"
    cases_bin.write_bytes(b"".join(records))
    proc = subprocess.run([str(exe), str(cases_bin), str(results_bin)], capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{exe.name} exited with {proc.returncode}\n{proc.stdout}{proc.stderr}")
    return parse_results(results_bin.read_bytes(), len(records))
