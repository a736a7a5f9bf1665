"""inspect.describe / render contain the documented fields (docs/kmodel_v3.md appendix A, fixtures README)."""

import json

import kmodel_testdata as td
import pytest

from emcgen.kmodel import describe, render


@pytest.mark.parametrize("key", sorted(td.FILES))
def test_describe_is_json_serialisable(key):
    d = describe(td.model(key))
    again = json.loads(json.dumps(d))
    assert again["header"]["version"] == 3 and len(again["layers"]) == again["header"]["layers_length"]
    assert again["file_size"] == len(td.data(key))


def test_describe_cifar():
    d = describe(td.model("cifar_hw"))
    assert d["header"] == {
        "version": 3,
        "flags": 1,
        "eight_bit_mode": True,
        "arch": 0,
        "layers_length": 9,
        "max_start_address": 0,
        "main_mem_usage": 40960,
        "output_count": 1,
    }
    assert d["outputs"] == [{"index": 0, "address": 40920, "size": 40}]
    conv = d["layers"][0]
    assert (conv["type"], conv["code"], conv["body_offset"], conv["body_size"]) == (
        "K210_CONV",
        10240,
        108,
        1444,
    )
    assert conv["fields"]["act_offset"] == 1408
    c = conv["conv"]
    assert c["in_shape"] == [3, 32, 32] and c["out_shape"] == [32, 32, 32] and c["kernel"] == 3
    assert c["registers"]["conv_value"]["arg_x"] == -3909032
    assert c["registers"]["kernel_calc_type_cfg"]["coef_group"] == 2
    assert c["register_words"][1] == "0x00007e0000000000"
    assert (c["bn"]["norm_mul"][0], c["bn"]["norm_add"][0], c["bn"]["norm_shift"][0]) == (772625, 140600, 15)
    # KPU-RAM lines: 3 channels of 32x32 at 2 per line = 2 groups x 32 lines; output 16 groups x 32 lines
    assert conv["kpu_reads"] == [[0, 64]] and conv["kpu_writes"] == [[32256, 32768]]
    assert conv["main_writes"] == [[0, 32768]]
    flat = d["layers"][5]
    assert (
        flat["type"] == "QUANTIZED_TENSORFLOW_FLATTEN" and flat["sdk"] is False and flat["maix_emc"] is True
    )
    assert flat["main_reads"] == [[36864, 40960]] and flat["main_writes"] == [[0, 4096]]
    assert d["layers"][7]["weights"] == {"dtype": "float32", "shape": [16, 4096]}


def test_render_cifar():
    text = render(td.model("cifar_hw"))
    assert text.splitlines()[0].startswith(
        "kmodel v3  283924 bytes  9 layers  8-bit weights  main_mem_usage 40960"
    )
    for needle in (
        "output 0: main [40920, 40960) 40 B",
        "QUANTIZED_TENSORFLOW_FLATTEN *",
        "conv 3x3 3x32x32 -> 32x32x32 pool 0 (bypass) uint8 weights +main out",
        "arg_x=-3909032",
        "channel_switch_addr=32 row_switch_addr=1",
        "0x00c45a58000000f0",
        "not executed by the official SDK v3 runtime",
    ):
        assert needle in text, needle


def test_render_yolo_mentions_pool_and_depthwise():
    text = render(td.model("yolo"))
    assert "dw 3x3 16x120x160 -> 16x120x160 pool 0" in text
    assert "conv 3x3 3x240x320 -> 16x120x160 pool 1 (max 2x2 stride 2)" in text
    assert "CHANNELWISE_DEQUANTIZE" in text and " *" not in text


def test_describe_a_model_built_in_memory():
    import numpy as np

    from emcgen.kmodel import assemble, fully_connected

    km = assemble([fully_connected(0, 16, np.ones((2, 4), np.float32))], [(16, 8)], main_mem_usage=24)
    d = describe(km)
    assert d["file_size"] == 28 + 8 + 8 + 24 + 32 + 8 + 4  # header, output, layer header, body padded to 8
    assert d["layers"][0]["body_offset"] == 44 and d["layers"][0]["main_reads"] == [[0, 16]]
    assert "FULLY_CONNECTED" in render(km)
