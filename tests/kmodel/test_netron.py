"""Netron (PyPI `netron`, its own kmodel.js run by node) opens the kmodel v3 files emcgen writes.

tests/kmodel/netron_open.mjs imports Netron's modules from the installed package at run time (nothing of
Netron is copied into this repository), opens the file through Netron's own dispatch (view.ModelFactory-
Service -> kmodel.js match() then open()), walks the whole model, decodes every tensor with Netron's
base.Tensor and prints a JSON summary. Each summary is compared with what emcgen's own reader
(emcgen.kmodel.load) finds in the same file: layer count and type names, main/KPU addresses, body
fields, K210_CONV register fields, batch-norm and activation tables, and the bytes of every weight and
bias tensor. The two readers were written independently, so agreement checks both; the real nncase and
Maix-EMC files check the comparison itself, and one flipped bit in each compared place must be seen.

Netron 8.7.3 (and 9.3.3, whose kmodel.js is identical) registers QUANTIZED_ADD, AVERAGE_POOL2D and
LOGISTIC without a reader and does not know CHANNELWISE_DEQUANTIZE at all: a file with one of those layers
does not open in Netron. Those cases are strict xfails (reported as such, and an XPASS fails the run),
so the day Netron learns a type the list below must shrink. Netron picks kmodel.js by the '.kmodel' file
name extension only: the same bytes named model.bin are "Unsupported file content" to it.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import support
from kmodel_testdata import path as fixture_path

from emcgen import kmodel
from emcgen.kmodel import assemble, concat, fully_connected, layer
from emcgen.kmodel.format import SIGNED_BITFIELDS

ROOT = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("netron_open.mjs")


class NetronRefusedLayer(Exception):
    """Netron's kmodel.js has no reader for a layer type of the file."""


@pytest.fixture(scope="module")
def netron():
    """(node executable, directory of the installed netron package)."""
    node = support.tool("node")
    mod = support.module("netron")
    directory = Path(mod.__file__).resolve().parent
    if not (directory / "kmodel.js").is_file():
        pytest.fail(f"netron {getattr(mod, '__version__', '?')} at {directory} has no kmodel.js")
    return node, directory


def run_netron(netron, path: Path) -> subprocess.CompletedProcess:
    node, directory = netron
    return subprocess.run([node, str(HARNESS), str(directory), str(path)], capture_output=True, text=True,
                          timeout=60)


def netron_open(netron, path: Path) -> dict:
    """Netron's summary of `path`; fails the test with Netron's message when it does not open."""
    result = run_netron(netron, path)
    refused = "Unsupported version '3' layer "
    if result.returncode != 0 and refused in result.stderr:
        raise NetronRefusedLayer(result.stderr.strip())
    assert result.returncode == 0, f"Netron did not open {path.name}: {result.stderr.strip()}"
    return json.loads(result.stdout)


def base_name(name: str) -> str:
    """Netron appends '#<layer>' to an address written again by a later layer."""
    return name.split("#")[0]


def values(node: dict, arg: str) -> list[dict]:
    return next(a["value"] for a in node["inputs"] + node["outputs"] if a["name"] == arg)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- comparison of Netron's summary with emcgen's reading of the same file --------------------------

IN_FIELDS = ("main_mem_in_address",)
OUT_FIELDS = ("main_mem_out_address", "mem_out_address", "kpu_mem_out_address")
SCALARS = ("flags", "count", "channels", "kernel_size", "in_channels", "out_channels", "out_width", "out_height",
           "align_corners")


def check_conv(node: dict, lay, km) -> None:
    a = node["attributes"]
    regs = lay.regs
    assert [base_name(v["name"]) for v in values(node, "input")] == [f"kpu:{regs.image_addr.image_src_addr}"]
    outs = [base_name(v["name"]) for v in values(node, "output")]
    assert outs == [f"main:{lay.body.main_mem_out_address}", f"kpu:{regs.image_addr.image_dst_addr}"]
    compared = 0
    for word, fields in a.items():
        if not isinstance(fields, dict):
            continue
        ours = getattr(regs, word)
        for name, value in fields.items():
            if name in SIGNED_BITFIELDS:
                continue  # Netron reads them unsigned with 32-bit JavaScript shifts
            assert value == getattr(ours, name), f"{word}.{name}"
            compared += 1
    assert compared >= 25
    # weights: Netron reads ic*oc*k*k (or oc*k*k) uint8 at weights_offset; for 16-bit weights that is
    # the first half of the table (Netron ignores the header's eight-bit flag)
    (w,) = values(node, "weights")
    t = w["initializer"]
    raw = np.asarray(lay.weights, dtype=km.weight_dtype).tobytes()
    assert t["count"] == lay.weights.size == int(np.prod(t["shape"]))
    assert t["sha256"] == sha(raw[:t["bytes"]])
    bn, act = node["chain"]
    assert (bn["type"], act["type"]) == ("BATCH_NORM", "ACTIVATION")
    got = np.array([[e["norm_mul"], e["norm_add"], e["norm_shift"]] for e in bn["attributes"]["weights"]])
    assert np.array_equal(got[:, 0] % 2**24, lay.bn.norm_mul % 2**24)
    assert np.array_equal(got[:, 1] % 2**32, lay.bn.norm_add % 2**32)
    assert np.array_equal(got[:, 2], lay.bn.norm_shift)
    seg = act["attributes"]["activate_para"]
    assert [s["shift_number"] for s in seg] == lay.act.shift_number.tolist()
    assert [s["y_mul"] for s in seg] == lay.act.y_mul.tolist()
    assert [s["bias"] % 256 for s in seg] == lay.act.bias.tolist()


def check_layer(node: dict, lay, km) -> None:
    assert node["type"] == lay.name
    if lay.name == "K210_CONV":
        check_conv(node, lay, km)
        return
    body, a = lay.body, node["attributes"]
    for field in IN_FIELDS:
        if hasattr(body, field):
            assert [base_name(v["name"]) for v in values(node, "input")] == [f"main:{getattr(body, field)}"]
    for field in OUT_FIELDS:
        if hasattr(body, field):
            space = "kpu" if field.startswith("kpu") else "main"
            assert [base_name(v["name"]) for v in values(node, "output")] == [f"{space}:{getattr(body, field)}"]
    for field in SCALARS:
        if field in a:
            assert a[field] == getattr(body, field), field
    if hasattr(body, "quant_param"):
        assert np.float32(a["scale"]) == np.float32(body.quant_param.scale)
        assert np.float32(a["bias"]) == np.float32(body.quant_param.bias)
    if lay.name == "FULLY_CONNECTED":
        (w,), (b,) = values(node, "weights"), values(node, "bias")
        assert w["initializer"]["sha256"] == sha(np.asarray(lay.weights, "<f4").tobytes())
        assert b["initializer"]["sha256"] == sha(np.asarray(lay.bias, "<f4").tobytes())
        assert w["initializer"]["finite"] and b["initializer"]["finite"]
        act = [c["type"] for c in node["chain"]]
        assert act == ([] if body.act == 0 else [["LINEAR", "RELU", "RELU6"][body.act]])
    if lay.name in ("CONCAT", "QUANTIZED_CONCAT"):
        assert [(m["start"], m["end"]) for m in a["inputs_mem"]] == [(r.start, r.size) for r in lay.inputs]
    if lay.name == "REQUANTIZE":
        assert a["table"]["length"] == 256
    if hasattr(body, "in_shape"):
        s = body.in_shape
        assert values(node, "input")[0]["type"] == f"?[{s.width},{s.height},{s.channels}]"


def check_model(summary: dict, km) -> None:
    assert summary["format"] == "kmodel v3"
    assert "./kmodel" in summary["factories"]
    assert summary["graphs"] == 1
    assert summary["node_count"] == len(km.layers)
    assert summary["node_types"] == [lay.name for lay in km.layers]
    graph = summary["modules"][0]
    assert [base_name(v["name"]) for a in graph["outputs"] for v in a["value"]] == [
        f"main:{o.address}" for o in km.outputs
    ]
    for node, lay in zip(graph["nodes"], km.layers, strict=True):
        check_layer(node, lay, km)


# ---- (a) real kmodel files from nncase and Maix-EMC ------------------------------------------------

@pytest.mark.parametrize("key", ["iris", "cifar_hw"])
def test_netron_opens_the_real_kmodels_as_emcgen_reads_them(netron, key):
    path = fixture_path(key)
    check_model(netron_open(netron, path), kmodel.load(path))


def test_netron_cannot_open_nncase_yolo_with_its_channelwise_dequantize(netron):
    """nncase's YOLO ends with CHANNELWISE_DEQUANTIZE (type 24), which Netron's kmodel.js does not know."""
    result = run_netron(netron, fixture_path("yolo"))
    assert result.returncode != 0
    assert "Unsupported version '3' layer type '24'" in result.stderr
    assert [lay.name for lay in kmodel.load(fixture_path("yolo")).layers][-1] == "CHANNELWISE_DEQUANTIZE"


# ---- (b) what emcgen writes ------------------------------------------------------------------------

def convert(tmp_path, name: str, h5: str, dataset: str, **options) -> Path:
    from emcgen.convert import convert as emc_convert

    out = tmp_path / f"{name}.kmodel"
    emc_convert(ROOT / h5, "kmodel", out, dataset=str(ROOT / dataset), options=options or None,
                log=lambda *a: None)
    return out


def test_netron_opens_emcgen_mnist(netron, tmp_path):
    path = convert(tmp_path, "mnist", "examples/mnist/mnist_cnn.h5", "examples/mnist/calibration")
    km = kmodel.load(path)
    summary = netron_open(netron, path)
    check_model(summary, km)
    assert {"K210_CONV", "DEQUANTIZE", "FULLY_CONNECTED"} <= set(summary["node_types"])


def test_netron_opens_emcgen_mnist_with_16_bit_weights(netron, tmp_path):
    path = convert(tmp_path, "mnist16", "examples/mnist/mnist_cnn.h5", "examples/mnist/calibration",
                   weight_bits=16)
    km = kmodel.load(path)
    assert not km.eight_bit
    check_model(netron_open(netron, path), km)


def test_netron_opens_emcgen_mnist_with_softmax(netron, tmp_path):
    from emcgen import save_kmodel

    path = tmp_path / "mnist_sm.kmodel"
    save_kmodel(str(ROOT / "examples/mnist/mnist_cnn.h5"), str(path), str(ROOT / "examples/mnist/calibration"),
                sm_flag=True)
    km = kmodel.load(path)
    summary = netron_open(netron, path)
    check_model(summary, km)
    assert summary["node_types"][-1] == "SOFTMAX"


@pytest.mark.slow  # 1-7 s measured: the K210 target emulates the ten calibration images for its error report
def test_netron_opens_emcgen_seed_cifar(netron, tmp_path):
    path = convert(tmp_path, "cifar10", "examples/cifar/cifar10.h5", "examples/cifar/cifar10_dataset")
    km = kmodel.load(path)
    summary = netron_open(netron, path)
    check_model(summary, km)
    assert {"K210_CONV", "QUANTIZED_MAX_POOL2D", "K210_UPLOAD", "DEQUANTIZE", "FULLY_CONNECTED"} <= set(
        summary["node_types"])


# Every other layer type the K210 target emits (emcgen/targets/k210/emit.py), each on a tiny model
# written by emcgen's kmodel writer after an identity FULLY_CONNECTED (which gives Netron the graph input).
A, B, OUT = 64, 512, 256
SHAPE = dict(in_shape=(2, 2, 1), out_shape=(1, 1, 1), kernel_width=2, kernel_height=2, stride_width=2,
             stride_height=2, padding_width=0, padding_height=0)
ADD = dict(in_a_offset=0, in_a_mul=1, in_a_shift=0, in_b_offset=0, in_b_mul=1, in_b_shift=0, out_offset=0,
           out_mul=1, out_shift=0)
EMITTED = {
    "QUANTIZE": lambda: layer("QUANTIZE", main_mem_in_address=A, mem_out_address=B, count=4,
                              quant_param=(0.25, 3.0)),
    "DEQUANTIZE": lambda: layer("DEQUANTIZE", main_mem_in_address=B, main_mem_out_address=OUT, count=4,
                                quant_param=(0.5, -1.5)),
    "QUANTIZED_MAX_POOL2D": lambda: layer("QUANTIZED_MAX_POOL2D", main_mem_in_address=B,
                                          main_mem_out_address=OUT, **SHAPE),
    "GLOBAL_AVERAGE_POOL2D": lambda: layer("GLOBAL_AVERAGE_POOL2D", main_mem_in_address=A,
                                           main_mem_out_address=OUT, kernel_size=4, channels=1),
    "QUANTIZED_CONCAT": lambda: concat(OUT, [(B, 2), (B + 8, 2)], quantized=True),
    "REQUANTIZE": lambda: layer("REQUANTIZE", main_mem_in_address=B, main_mem_out_address=OUT, count=4,
                                table=np.arange(255, -1, -1)),
    "SOFTMAX": lambda: layer("SOFTMAX", main_mem_in_address=A, main_mem_out_address=OUT, channels=4),
    "TENSORFLOW_FLATTEN": lambda: layer("TENSORFLOW_FLATTEN", main_mem_in_address=A, main_mem_out_address=OUT,
                                        shape=(2, 2, 1)),
    "QUANTIZED_RESIZE_NEAREST_NEIGHBOR": lambda: layer(
        "QUANTIZED_RESIZE_NEAREST_NEIGHBOR", main_mem_in_address=B, main_mem_out_address=OUT, in_shape=(2, 2, 1),
        out_width=4, out_height=3, align_corners=0),
    "K210_UPLOAD": lambda: layer("K210_UPLOAD", main_mem_in_address=B, kpu_mem_out_address=7, width=2, height=2,
                                 channels=1),
    "K210_ADD_PADDING": lambda: layer("K210_ADD_PADDING", main_mem_in_address=B, kpu_mem_out_address=9, channels=4),
    "K210_REMOVE_PADDING": lambda: layer("K210_REMOVE_PADDING", main_mem_in_address=B, main_mem_out_address=OUT,
                                         channels=4),
    "FULLY_CONNECTED": lambda: fully_connected(A, OUT, np.arange(8, dtype=np.float32).reshape(2, 4) - 3.5,
                                               [0.5, -0.25], act=2),
    "QUANTIZED_ADD": lambda: layer("QUANTIZED_ADD", main_mem_in_a_address=B, main_mem_in_b_address=B + 8,
                                   main_mem_out_address=OUT, count=4, **ADD),
    "AVERAGE_POOL2D": lambda: layer("AVERAGE_POOL2D", main_mem_in_address=A, main_mem_out_address=OUT, act=0,
                                    **SHAPE),
    "LOGISTIC": lambda: layer("LOGISTIC", main_mem_in_address=A, main_mem_out_address=OUT, channels=4),
}
NETRON_LACKS = ("QUANTIZED_ADD", "AVERAGE_POOL2D", "LOGISTIC")   # (nor ADD: Netron reads no add layer at all)


def test_the_list_covers_every_layer_type_the_emitter_writes():
    import re

    source = (support.ROOT / "emcgen/targets/k210/emit.py").read_text()
    written = set(re.findall(r'kmodel\.layer\(\s*"([A-Z0-9_]+)"', source)) | {"FULLY_CONNECTED"}
    if "kmodel.concat(" in source:
        written.add("QUANTIZED_CONCAT")
    if 'k in ("softmax", "logistic")' in source:
        written |= {"SOFTMAX", "LOGISTIC"}
    assert written <= set(EMITTED), written - set(EMITTED)


def lacking(kind):
    return pytest.param(kind, marks=pytest.mark.xfail(
        raises=NetronRefusedLayer, strict=True,
        reason=f"Netron's kmodel.js (8.7.3 ... 9.3.3) registers {kind} without a reader"))


@pytest.mark.parametrize("kind", [lacking(k) if k in NETRON_LACKS else k for k in EMITTED])
def test_netron_opens_each_layer_type_emcgen_emits(netron, tmp_path, kind):
    identity = fully_connected(0, A, np.eye(4, dtype=np.float32))
    path = tmp_path / f"{kind}.kmodel"
    assemble([identity, EMITTED[kind]()], [(OUT, 16)], main_mem_usage=1024).save(path)
    km = kmodel.load(path)
    summary = netron_open(netron, path)
    assert summary["node_types"] == ["FULLY_CONNECTED", kind]
    check_model(summary, km)


# ---- the harness can fail ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def iris_bytes():
    return fixture_path("iris").read_bytes()


def test_harness_rejects_a_version_4_header(netron, tmp_path, iris_bytes):
    path = tmp_path / "v4.kmodel"
    path.write_bytes(b"\x04\x00\x00\x00" + iris_bytes[4:])
    result = run_netron(netron, path)
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.startswith("netron_open: Unsupported file content.")


def test_harness_rejects_a_truncated_file(netron, tmp_path):
    km = kmodel.assemble([fully_connected(0, A, np.ones((8, 16), np.float32))], [(A, 32)], main_mem_usage=256)
    data = km.to_bytes()
    path = tmp_path / "cut.kmodel"
    path.write_bytes(data[: len(data) - 64])  # cuts into the FC weights
    result = run_netron(netron, path)
    assert result.returncode != 0 and result.stdout == ""
    assert "Unexpected end of file" in result.stderr


def test_harness_rejects_an_unknown_layer_type(netron, tmp_path, iris_bytes):
    data = bytearray(iris_bytes)
    first_layer_type = 28 + 8 * 1  # header (7 x uint32) + one output entry
    assert int.from_bytes(data[first_layer_type:first_layer_type + 4], "little") == 18
    data[first_layer_type:first_layer_type + 4] = (999).to_bytes(4, "little")
    path = tmp_path / "type999.kmodel"
    path.write_bytes(bytes(data))
    result = run_netron(netron, path)
    assert result.returncode != 0
    assert "layer type '999'" in result.stderr


# One flipped bit in each place the comparison covers, in Maix-EMC's CIFAR-10 file (K210_CONV, pool, upload,
# dequantize, two FCs): Netron reads the changed file, emcgen's reading of the original must then disagree.
# (layer index, byte offset from the layer's Placement, xor mask); layer None = the header's output table.
MUTATIONS = {
    "conv register i_ch_num": (0, lambda s: s.conv_blocks[0] + 16, 0x01),
    "conv weights": (0, lambda s: s.conv_blocks[1] + 5, 0x01),
    "conv batch norm": (0, lambda s: s.conv_blocks[2] + 8, 0x01),
    "conv activation y_mul": (0, lambda s: s.conv_blocks[3] + 8 + 1, 0x01),
    "conv activation bias": (0, lambda s: s.conv_blocks[3] + 128 + 3, 0x01),
    "conv main output address": (0, lambda s: s.body_offset + 4, 0x08),
    "pool in_shape": (1, lambda s: s.body_offset + 12, 0x01),
    "upload input address": (2, lambda s: s.body_offset + 4, 0x08),
    "dequantize scale": (6, lambda s: s.body_offset + 16, 0x01),
    "fc activation": (7, lambda s: s.body_offset + 20, 0x01),
    "fc weights": (7, lambda s: s.body_offset + 24 + 4 * 1000, 0x40),
    "fc bias": (8, lambda s: s.body_offset + 24 + 4 * 16 * 10, 0x40),
    "output address": (None, lambda s: 28, 0x08),
}


@pytest.mark.parametrize("where", MUTATIONS)
def test_comparison_sees_one_changed_bit(netron, tmp_path, where):
    original = fixture_path("cifar_hw").read_bytes()
    km = kmodel.load(original)
    index, offset, mask = MUTATIONS[where]
    at = offset(km.layers[index].source if index is not None else None)
    changed = bytearray(original)
    changed[at] ^= mask
    path = tmp_path / "changed.kmodel"
    path.write_bytes(bytes(changed))
    summary = netron_open(netron, path)
    with pytest.raises(AssertionError):
        check_model(summary, km)
