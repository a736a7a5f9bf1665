"""Struct layouts and the layer-type table against the numbers of docs/kmodel_v3.md §1-§3."""

import numpy as np
import pytest

from emcgen.errors import EmcError
from emcgen.kmodel import format as fmt
from emcgen.kmodel.format import BY_NAME, LAYER_TYPES, RUNTIMES, bitfields, cs, layer_type

# body sizes in bytes as listed in docs §2.3 / §3.1 (fixed part only)
DOC_BODY_SIZES = {
    "ADD": 20,
    "QUANTIZED_ADD": 56,
    "GLOBAL_AVERAGE_POOL2D": 20,
    "QUANTIZED_MAX_POOL2D": 60,
    "AVERAGE_POOL2D": 64,
    "QUANTIZE": 24,
    "DEQUANTIZE": 24,
    "REQUANTIZE": 272,
    "L2_NORMALIZATION": 16,
    "SOFTMAX": 16,
    "CONCAT": 12,
    "QUANTIZED_CONCAT": 12,
    "FULLY_CONNECTED": 24,
    "TENSORFLOW_FLATTEN": 24,
    "QUANTIZED_TENSORFLOW_FLATTEN": 24,
    "RESIZE_NEAREST_NEIGHBOR": 36,
    "QUANTIZED_RESIZE_NEAREST_NEIGHBOR": 36,
    "CHANNELWISE_DEQUANTIZE": 20,
    "LOGISTIC": 16,
    "K210_CONV": 24,
    "K210_ADD_PADDING": 16,
    "K210_REMOVE_PADDING": 16,
    "K210_UPLOAD": 24,
}

# (word, field, lowest bit, width) from the register table of docs §3.3
DOC_REGISTER_BITS = [
    ("interrupt_enabe", "depth_wise_layer", 3, 1),
    ("image_addr", "image_src_addr", 0, 15),
    ("image_addr", "image_dst_addr", 32, 15),
    ("image_channel_num", "o_ch_num", 32, 10),
    ("image_channel_num", "o_ch_num_coef", 48, 10),
    ("image_size", "i_col_high", 10, 9),
    ("image_size", "o_row_wid", 32, 10),
    ("image_size", "o_col_high", 42, 9),
    ("kernel_pool_type_cfg", "pool_type", 4, 4),
    ("kernel_pool_type_cfg", "load_para", 10, 1),
    ("kernel_pool_type_cfg", "dma_burst_size", 16, 8),
    ("kernel_pool_type_cfg", "pad_value", 24, 8),
    ("kernel_pool_type_cfg", "bwsx_base_addr", 32, 32),
    ("kernel_load_cfg", "load_time", 1, 6),
    ("kernel_load_cfg", "para_size", 15, 17),
    ("kernel_offset", "coef_row_offset", 4, 12),
    ("kernel_calc_type_cfg", "row_switch_addr", 16, 4),
    ("kernel_calc_type_cfg", "coef_size", 20, 8),
    ("kernel_calc_type_cfg", "coef_group", 28, 3),
    ("kernel_calc_type_cfg", "load_act", 31, 1),
    ("write_back_cfg", "wb_row_switch_addr", 16, 4),
    ("write_back_cfg", "wb_group", 20, 3),
    ("conv_value", "shr_x", 4, 4),
    ("conv_value", "arg_w", 8, 24),
    ("conv_value", "arg_x", 32, 24),
    ("conv_value2", "arg_add", 0, 40),
    ("dma_parameter", "channel_byte_num", 16, 16),
    ("dma_parameter", "dma_total_byte", 32, 32),
]


def test_body_sizes_match_the_documentation():
    for name, size in DOC_BODY_SIZES.items():
        assert BY_NAME[name].fixed_size == size, name


def test_table_is_consistent():
    codes = [t.code for t in LAYER_TYPES]
    assert len(set(codes)) == len(codes) and len(BY_NAME) == len(LAYER_TYPES)
    assert set(codes) == set(range(26)) | {10240, 10241, 10242, 10243}
    # the official SDK lacks exactly these (docs §6), Maix-EMC's kpu.c adds 6 and 21
    assert {t.code for t in LAYER_TYPES if not t.sdk} == {0, 3, 4, 6, 7, 10, 19, 21}
    assert RUNTIMES["maix-emc"] - RUNTIMES["sdk"] == {6, 21}


def test_header_and_tables():
    assert len(cs.kmodel_header) == 28 and len(cs.output_entry) == 8 and len(cs.layer_header) == 8
    assert [f.name for f in cs.kmodel_header.__fields__][4:] == [
        "max_start_address",
        "main_mem_usage",
        "output_count",
    ]
    assert len(cs.kpu_layer_argument) == 96 and len(cs.activate_table) == 144


@pytest.mark.parametrize("word,field,lo,width", DOC_REGISTER_BITS)
def test_register_bit_positions(word, field, lo, width):
    word_type = getattr(cs, type(getattr(fmt.new(cs.kpu_layer_argument), word)).__name__)
    assert (field, lo, width) in bitfields(word_type)


def test_every_word_fills_64_bits():
    for f in cs.kpu_layer_argument.__fields__:
        assert sum(b for _, _, b in bitfields(f.type)) == 64
    assert bitfields(cs.batchnorm_word) == (
        ("norm_mul", 0, 24),
        ("norm_add", 24, 32),
        ("norm_shift", 56, 4),
        ("reserved", 60, 4),
    )
    assert bitfields(cs.activate_segment_word)[:3] == (
        ("shift_number", 0, 8),
        ("y_mul", 8, 16),
        ("x_start", 24, 36),
    )


def test_signed_fields_round_trip_and_range_checks():
    r = fmt.new(cs.kpu_layer_argument)
    r.conv_value.arg_x = -3909032
    raw = fmt.pack(r)
    assert int.from_bytes(raw[72:80], "little") == 0x00C45A5800000000  # docs appendix A
    back = fmt.unpack("kpu_layer_argument", raw)
    assert back.conv_value.arg_x == -3909032
    r.conv_value.arg_x = 1 << 24
    with pytest.raises(EmcError, match="arg_x"):
        fmt.pack(r)
    r.conv_value.arg_x = 0
    r.image_size.i_row_wid = 1024
    with pytest.raises(EmcError, match="i_row_wid = 1024"):
        fmt.pack(r)


def test_vectorized_words_match_documented_bn_entry():
    words = np.array([0x0F000225380BCA11], dtype=np.uint64)  # docs appendix A, BN[0]
    f = fmt.decode_words(words, cs.batchnorm_word)
    assert (f["norm_mul"][0], f["norm_add"][0], f["norm_shift"][0]) == (772625, 140600, 15)
    assert fmt.encode_words(f, cs.batchnorm_word, 1, "bn")[0] == words[0]
    neg = fmt.decode_words(
        fmt.encode_words({"norm_mul": [-5], "norm_add": [-7]}, cs.batchnorm_word, 1, "bn"), cs.batchnorm_word
    )
    assert (neg["norm_mul"][0], neg["norm_add"][0]) == (-5, -7)


def test_layer_type_lookup():
    assert layer_type("k210_conv").code == 10240 and layer_type(21).name == "QUANTIZED_TENSORFLOW_FLATTEN"
    with pytest.raises(EmcError, match="unknown kmodel v3 layer type 99"):
        layer_type(99)


def test_new_instances_do_not_share_nested_words():
    a, b = fmt.new(cs.kpu_layer_argument), fmt.new(cs.kpu_layer_argument)
    a.conv_value.shr_x = 3
    assert b.conv_value.shr_x == 0 and a.conv_value is not b.conv_value


def test_every_executable_type_has_an_emulator_handler_and_an_access_rule():
    from emcgen.kmodel.access import ACCESS
    from emcgen.kmodel.cpu import HANDLERS

    for t in LAYER_TYPES:
        executable = t.sdk or t.maix_emc
        if t.tail in ("conv", "concat"):
            continue
        assert (t.name in HANDLERS) == executable, t.name
        assert (t.name in ACCESS) == executable, t.name


def test_importing_the_package_does_not_import_tensorflow():
    import subprocess
    import sys

    code = "import sys, emcgen.kmodel, emcgen.kmodel.emulator; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
