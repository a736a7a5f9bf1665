"""The worked encodings of docs/kmodel_v3.md (appendix A and §3.3) decode to the documented numbers."""

import kmodel_testdata as td
import numpy as np

from emcgen.kmodel import conv_registers, cs, load
from emcgen.kmodel.format import pack, sign_fix

FACE_DETECT_LAYER0 = [
    0x0,
    0x00005B70000071F0,
    0x000F000F00000002,
    0x0001DC9F0003BD3F,
    0x00000000000F0411,
    0x0000000000D80001,
    0x0,
    0x00000000900504B0,
    0x0000000000130168,
    0x00A78000000000F0,
    0x0,
    0x0004AFFF4AFF0000,
]
CIFAR_LAYER0 = [
    0x0,
    0x00007E0000000000,
    0x001F001F00000002,
    0x00007C1F00007C1F,
    0x00000000000F0401,
    0x0000000001B00001,
    0x0,
    0x00000000A0010020,
    0x0000000000210020,
    0x00C45A58000000F0,
    0x0,
    0x00007FFF03FF0001,
]


def words(values):
    return b"".join(v.to_bytes(8, "little") for v in values)


def test_cifar_layer0_body_and_registers():
    km = load(td.data("cifar_hw"))
    conv = km.layers[0]
    assert conv.source.body_offset == 108
    b = conv.body
    assert (b.flags, b.main_mem_out_address, b.layer_offset, b.weights_offset, b.bn_offset, b.act_offset) == (
        1,
        0,
        136,
        256,
        1152,
        1408,
    )
    assert pack(conv.regs) == words(CIFAR_LAYER0)
    r = conv.regs
    assert (r.image_addr.image_src_addr, r.image_addr.image_dst_addr) == (0, 32256)
    ch = r.image_channel_num
    assert (ch.i_ch_num + 1, ch.o_ch_num + 1, ch.o_ch_num_coef + 1) == (3, 32, 32)
    sz = r.image_size
    assert (sz.i_row_wid + 1, sz.i_col_high + 1, sz.o_row_wid + 1, sz.o_col_high + 1) == (32, 32, 32, 32)
    kp = r.kernel_pool_type_cfg
    assert (kp.kernel_type, kp.pool_type, kp.load_para, kp.dma_burst_size, kp.pad_value) == (1, 0, 1, 15, 0)
    assert (r.kernel_load_cfg.load_time + 1, r.kernel_load_cfg.para_size) == (1, 864)
    ct = r.kernel_calc_type_cfg
    assert (ct.channel_switch_addr, ct.row_switch_addr, ct.coef_group, ct.load_act) == (32, 1, 2, 1)
    wb = r.write_back_cfg
    assert (wb.wb_channel_switch_addr, wb.wb_row_switch_addr, wb.wb_group) == (32, 1, 2)
    cv = r.conv_value
    assert (cv.shr_w, cv.shr_x, cv.arg_w, cv.arg_x) == (0, 15, 0, -3909032)
    d = r.dma_parameter
    assert (d.send_data_out, d.channel_byte_num + 1, d.dma_total_byte + 1) == (1, 1024, 32768)


def test_cifar_layer0_payload():
    conv = load(td.data("cifar_hw")).layers[0]
    assert conv.weights.dtype == np.uint8 and conv.weights.shape == (32, 3, 3, 3)
    assert conv.weights[0, 0].reshape(-1).tolist() == [166, 160, 103, 115, 129, 91, 104, 88, 99]
    assert (conv.bn.norm_mul[0], conv.bn.norm_add[0], conv.bn.norm_shift[0]) == (772625, 140600, 15)
    act = conv.act
    assert (act.x_start[0], act.y_mul[0], act.shift_number[0]) == (-(2**35), 0, 0)
    assert (act.x_start[1], act.y_mul[1], act.shift_number[1]) == (0, 27544, 28)
    assert (act.x_start[2], act.y_mul[2], act.shift_number[2]) == (165679, 27544, 28)
    assert act.bias.tolist() == [0, 0] + [17 * k for k in range(1, 15)]
    raw = td.data("cifar_hw")
    assert raw[1408 + 128 : 1408 + 144] == words([0x6655443322110000, 0xEEDDCCBBAA998877])


def test_face_detect_registers_decode_and_recipe():
    regs = sign_fix(cs.kpu_layer_argument(words(FACE_DETECT_LAYER0)))
    g = regs and load_geometry(regs)
    assert g.in_shape == (3, 240, 320) and g.out_shape == (16, 120, 160)
    assert (g.src_line, g.dst_line, g.kernel, g.pool_type, g.depthwise) == (29168, 23408, 3, 1, False)
    assert (regs.kernel_load_cfg.load_time, regs.kernel_load_cfg.para_size) == (0, 432)
    assert (regs.kernel_calc_type_cfg.row_switch_addr, regs.kernel_calc_type_cfg.coef_group) == (5, 1)
    cv = regs.conv_value
    assert (cv.arg_x, cv.shr_x, cv.arg_w, regs.conv_value2.arg_add) == (-5799936, 15, 0, 0)
    assert cv.arg_x == -177 * 2**15
    # the register recipe (docs §3.4) rebuilds the nncase-written words from the shapes alone
    mine = conv_registers(
        in_shape=(3, 240, 320),
        out_channels=16,
        kernel=3,
        pool_type=1,
        src_line=29168,
        dst_line=23408,
        arg_x=-5799936,
        shr_x=15,
    )
    assert pack(mine) == words(FACE_DETECT_LAYER0)


def load_geometry(regs):
    from emcgen.kmodel.layout import ConvGeometry

    return ConvGeometry.of(regs)


def test_iris_bodies():
    raw = td.data("iris")
    km = load(raw)
    assert len(raw) == 436 and km.source.body_end == 440
    fc0, fc1 = km.layers
    assert fc0.source.body_offset == 52 and fc1.source.body_offset == 280
    b = fc0.body
    assert (b.flags, b.main_mem_in_address, b.main_mem_out_address, b.in_channels, b.out_channels, b.act) == (
        0,
        0,
        16,
        4,
        10,
        1,
    )
    assert fc0.weights.shape == (10, 4) and fc0.bias.shape == (10,)
    assert (
        fc0.weights[0, 0].tobytes() == bytes.fromhex("f6063f3e") and abs(fc0.weights[0, 0] - 0.18655) < 1e-5
    )
    assert fc0.source.body_size - fc0.source.content_size == 4
    b = fc1.body
    assert (b.flags, b.main_mem_in_address, b.main_mem_out_address, b.in_channels, b.out_channels, b.act) == (
        0,
        16,
        0,
        10,
        3,
        0,
    )
    assert (km.main_mem_usage, km.max_start_address, [(o.address, o.size) for o in km.outputs]) == (
        56,
        32768,
        [(0, 12)],
    )


def test_cifar_header_and_layer_list():
    km = load(td.data("cifar_hw"))
    assert (km.flags, km.max_start_address, km.main_mem_usage) == (1, 0, 40960)
    assert [(o.address, o.size) for o in km.outputs] == [(40920, 40)]
    assert [layer.name for layer in km.layers] == [
        "K210_CONV",
        "QUANTIZED_MAX_POOL2D",
        "K210_UPLOAD",
        "K210_CONV",
        "QUANTIZED_MAX_POOL2D",
        "QUANTIZED_TENSORFLOW_FLATTEN",
        "DEQUANTIZE",
        "FULLY_CONNECTED",
        "FULLY_CONNECTED",
    ]
