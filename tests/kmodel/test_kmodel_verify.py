"""verify/check: every real kmodel passes; deliberately broken models are rejected with the right message."""

import kmodel_testdata as td
import pytest

from emcgen.errors import FormatError
from emcgen.kmodel import check, load, verify


@pytest.mark.parametrize("key", sorted(td.FILES))
def test_fixtures_pass_the_structural_checks(key):
    assert check(td.model(key), runtime=None) == []


@pytest.mark.parametrize("key", td.NNCASE)
def test_nncase_files_pass_for_the_official_sdk(key):
    verify(td.model(key))


@pytest.mark.parametrize("key", td.MAIX_EMC)
def test_maix_emc_files_need_the_patched_runtime(key):
    km = td.model(key)
    verify(km, runtime="maix-emc")
    problems = check(km)  # official SDK
    assert len(problems) == 1
    assert (
        "(QUANTIZED_TENSORFLOW_FLATTEN): not executed by the official Kendryte SDK v3 runtime; needs "
        "Maix-EMC's patched kpu.c" in problems[0]
    )


def broken(key, edit):
    km = td.model(key)
    edit(km)
    return check(km, runtime=None)


def one(problems, text):
    assert any(text in p for p in problems), problems


def test_wrong_input_layout():
    p = broken("yolo", lambda km: setattr(km.layers[2].regs.kernel_calc_type_cfg, "channel_switch_addr", 300))
    one(p, "layer 2 (K210_CONV): channel_switch_addr = 300, but a input map 160 wide and 120 high needs 360")


def test_wrong_output_groups():
    p = broken("cifar_hw", lambda km: setattr(km.layers[3].regs.write_back_cfg, "wb_group", 2))
    one(p, "layer 3 (K210_CONV): wb_group = 2, but a output map 16 wide and 16 high needs 4")


def test_wrong_dma_count():
    p = broken("cifar_hw", lambda km: setattr(km.layers[0].regs.dma_parameter, "dma_total_byte", 1000))
    one(p, "dma_total_byte 1000, expected W_out*H_out*C_out-1 = 32767")


def test_overlapping_kpu_regions():
    p = broken("yolo", lambda km: setattr(km.layers[0].regs.image_addr, "image_dst_addr", 29000))
    # 16 channels of 160x120 (3 lines per row): 5760 lines from 29000
    one(p, "layer 0 (K210_CONV): input lines [29168, 32768) and output lines [29000, 34760) overlap")
    one(p, "past line 32768")


def test_main_memory_too_small_for_dma_rounding():
    # yolo's last conv DMAs 8750 bytes as 8752 and the dequantize writes up to 43752
    p = broken("yolo", lambda km: setattr(km, "main_mem_usage", 43750))
    one(
        p,
        "layer 16 (CHANNELWISE_DEQUANTIZE): writes main-buffer bytes [8752, 43752), "
        "past main_mem_usage 43750",
    )
    p = broken("yolo", lambda km: setattr(km.layers[15].body, "main_mem_out_address", 35001))
    one(p, "layer 15 (K210_CONV): writes main-buffer bytes [35001, 43753), past main_mem_usage 43752")


def test_loads_and_para_size():
    p = broken("yolo", lambda km: setattr(km.layers[12].regs.kernel_load_cfg, "para_size", 30000))
    one(p, "para_size 30000, but 60 kernels of 512 bytes per load are 30720")
    p = broken("yolo", lambda km: setattr(km.layers[12].regs.kernel_load_cfg, "load_time", 3))
    one(p, "load_time+1 = 4 weight loads, but 1024 channels at 60 per load need 18")


def test_max_start_address():
    p = broken("iris", lambda km: setattr(km, "max_start_address", 5))
    one(p, "max_start_address 5, but the lowest KPU-RAM line used is 32768")


def test_last_layer_must_not_be_a_silent_conv():
    def edit(km):
        del km.layers[16]
        km.layers[15].body.flags = 0

    one(
        broken("yolo", edit),
        "layer 15 (K210_CONV): the last layer must be a CPU layer or a conv with flags bit 0",
    )


def test_first_layer_rule_and_read_before_write():
    def edit(km):
        del km.layers[0]

    p = broken("cifar_hw", edit)
    one(p, "layer 0 (QUANTIZED_MAX_POOL2D): the runtime starts only with K210_CONV or FULLY_CONNECTED")
    one(p, "reads main-buffer byte 0 (of [0, 32768)) before any layer writes it")


def test_header_values():
    p = broken("iris", lambda km: (setattr(km, "flags", 3), setattr(km, "version", 4)))
    one(p, "header: version 4")
    one(p, "flags 0x3 sets undefined bits")


def test_unaligned_body():
    raw = td.data("iris")
    raw = raw[:280] + bytes(2) + raw[280:]  # 2 more bytes of layer-0 padding: layer 1 at 282
    raw = raw[:40] + (230).to_bytes(4, "little") + raw[44:]
    km = load(raw)
    with pytest.raises(
        FormatError, match=r"layer 1 \(FULLY_CONNECTED\): body at file offset 282 is not 4-byte"
    ):
        verify(km)


def test_conv_option_bits_and_activation_table():
    def edit(km):
        km.layers[0].regs.kernel_calc_type_cfg.load_act = 0
        km.layers[0].act.x_start[0] = 5

    p = broken("cifar_hw", edit)
    one(p, "kernel_calc_type_cfg.load_act = 0, every producer writes 1")
    one(p, "activation segment 0 starts at 5, not -2^35")
    one(p, "activation segments are not in ascending x_start order")


def test_verify_raises_the_first_problem():
    km = td.model("cifar_hw")
    with pytest.raises(FormatError, match=r"^layer 5 \(QUANTIZED_TENSORFLOW_FLATTEN\): not executed"):
        verify(km)


def test_conv_payload_outside_its_body():
    raw = bytearray(td.data("cifar_hw"))
    raw[108 + 20 : 108 + 24] = (1536).to_bytes(4, "little")  # layer 0 act_offset: into layer 1's body
    problems = check(load(bytes(raw)), runtime=None)
    one(
        problems,
        "layer 0 (K210_CONV): activation table [1536, 1680) lies outside the layer's body [132, 1552)",
    )


def test_quantized_add_rounding_must_fit_the_main_buffer():
    import numpy as np

    from emcgen.kmodel import assemble, fully_connected, layer

    fc = fully_connected(0, 64, np.eye(9, dtype=np.float32))
    q = layer("QUANTIZE", main_mem_in_address=64, mem_out_address=0, count=9, quant_param=(1.0, 0.0))
    add = layer(
        "QUANTIZED_ADD",
        main_mem_in_a_address=0,
        main_mem_in_b_address=0,
        main_mem_out_address=100,
        count=9,
        in_a_offset=0,
        in_a_mul=1,
        in_a_shift=0,
        in_b_offset=0,
        in_b_mul=1,
        in_b_shift=0,
        out_offset=0,
        out_mul=1,
        out_shift=0,
    )
    km = assemble([fc, q, add], [(100, 9)], main_mem_usage=109)
    # 9 elements are processed as 16: reads [0, 16) and writes [100, 116)
    one(check(km), "layer 2 (QUANTIZED_ADD): writes main-buffer bytes [100, 116), past main_mem_usage 109")
    km.main_mem_usage = 116
    assert check(km) == []
