"""Building kmodels from scratch: nncase's files are reproduced byte for byte from their contents."""

import kmodel_testdata as td
import numpy as np
import pytest

from emcgen.errors import EmcError
from emcgen.kmodel import (
    activation,
    assemble,
    batch_norm,
    channelwise_dequantize,
    check,
    concat,
    conv_registers,
    fully_connected,
    k210_conv,
    layer,
    load,
    run,
)
from emcgen.kmodel.format import pack


def recipe_for(conv, **extra):
    g, r = conv.geometry, conv.regs
    cv = r.conv_value
    return conv_registers(
        **extra,
        in_shape=g.in_shape,
        out_channels=g.out_channels,
        kernel=g.kernel,
        src_line=g.src_line,
        dst_line=g.dst_line,
        pool_type=g.pool_type,
        depthwise=g.depthwise,
        pad_value=r.kernel_pool_type_cfg.pad_value,
        arg_x=cv.arg_x,
        shr_x=cv.shr_x,
        arg_w=cv.arg_w,
        shr_w=cv.shr_w,
        arg_add=r.conv_value2.arg_add,
    )


def test_register_recipe_reproduces_every_nncase_conv():
    convs = [lay for lay in td.model("yolo").layers if lay.type.tail == "conv"]
    assert len(convs) == 16
    for conv in convs:
        assert pack(recipe_for(conv)) == pack(conv.regs)


@pytest.mark.parametrize("key", td.MAIX_EMC)
def test_register_recipe_on_maix_emc_differs_only_in_load_split_and_send_data_out(key):
    for conv in [lay for lay in td.model(key).layers if lay.type.tail == "conv"]:
        mine, theirs = pack(recipe_for(conv)), pack(conv.regs)
        differ = {k for k in range(12) if mine[8 * k : 8 * k + 8] != theirs[8 * k : 8 * k + 8]}
        assert differ <= {2, 5, 11}  # o_ch_num_coef / load_time+para_size (Maix-EMC's 72 KiB rule), DMA flag
        # with Maix-EMC's split given explicitly only send_data_out (set from flags by the SDK) differs
        split = conv.regs.image_channel_num.o_ch_num_coef + 1
        mine = pack(recipe_for(conv, oc_per_load=split))
        differ = {k for k in range(12) if mine[8 * k : 8 * k + 8] != theirs[8 * k : 8 * k + 8]}
        assert differ <= {11} and (differ == {11}) == bool(conv.regs.dma_parameter.send_data_out)


def test_yolo_rebuilt_from_scratch_is_the_nncase_file():
    src = td.model("yolo")
    layers = []
    for lay in src.layers:
        if lay.type.tail == "conv":
            out = lay.body.main_mem_out_address if lay.body.flags & 1 else None
            bn = batch_norm(lay.bn.norm_mul, lay.bn.norm_add, lay.bn.norm_shift)
            act = activation(lay.act.x_start, lay.act.y_mul, lay.act.shift_number, lay.act.bias)
            layers.append(k210_conv(recipe_for(lay), lay.weights, bn, act, main_mem_out_address=out))
        else:
            b = lay.body
            layers.append(
                channelwise_dequantize(
                    b.main_mem_in_address,
                    b.main_mem_out_address,
                    b.channel_size,
                    lay.quant_params,
                    flags=b.flags,
                )
            )
    km = assemble(layers, [(o.address, o.size) for o in src.outputs], main_mem_usage=src.main_mem_usage)
    assert km.max_start_address == 0  # lowest KPU line used (layer 0 writes line 0)
    assert km.to_bytes() == td.data("yolo") + bytes(4)  # nncase leaves out the last 4 padding bytes


def test_iris_rebuilt_from_scratch():
    src = td.model("iris")
    layers = [
        fully_connected(
            lay.body.main_mem_in_address,
            lay.body.main_mem_out_address,
            lay.weights,
            lay.bias,
            act=lay.body.act,
        )
        for lay in src.layers
    ]
    km = assemble(layers, [(0, 12)], main_mem_usage=56)
    assert km.max_start_address == 32768
    assert km.to_bytes() == td.data("iris") + bytes(4)


def every_cpu_layer():
    """One of each layer kind with a known body (CPU and K210 helpers), values arbitrary but in range."""
    shape = (4, 4, 2)
    return [
        layer("ADD", main_mem_in_a_address=0, main_mem_in_b_address=8, main_mem_out_address=16, count=2),
        layer(
            "QUANTIZED_ADD",
            main_mem_in_a_address=0,
            main_mem_in_b_address=8,
            main_mem_out_address=16,
            count=8,
            in_a_offset=-3,
            in_a_mul=1 << 20,
            in_a_shift=20,
            in_b_offset=-4,
            in_b_mul=3 << 19,
            in_b_shift=20,
            out_offset=7,
            out_mul=1 << 30,
            out_shift=31,
        ),
        layer(
            "GLOBAL_AVERAGE_POOL2D",
            main_mem_in_address=0,
            main_mem_out_address=64,
            kernel_size=16,
            channels=2,
        ),
        layer(
            "QUANTIZED_MAX_POOL2D",
            main_mem_in_address=0,
            main_mem_out_address=64,
            in_shape=shape,
            out_shape=(2, 2, 2),
            kernel_width=2,
            kernel_height=2,
            stride_width=2,
            stride_height=2,
            padding_width=0,
            padding_height=0,
        ),
        layer(
            "AVERAGE_POOL2D",
            main_mem_in_address=0,
            main_mem_out_address=64,
            in_shape=shape,
            out_shape=(2, 2, 2),
            kernel_width=3,
            kernel_height=3,
            stride_width=2,
            stride_height=2,
            padding_width=1,
            padding_height=1,
            act=0,
        ),
        layer("QUANTIZE", main_mem_in_address=0, mem_out_address=64, count=8, quant_param=(0.5, -1.0)),
        layer("DEQUANTIZE", main_mem_in_address=0, main_mem_out_address=64, count=8, quant_param=(0.5, -1.0)),
        layer(
            "REQUANTIZE", main_mem_in_address=0, main_mem_out_address=64, count=8, table=np.arange(256)[::-1]
        ),
        layer("L2_NORMALIZATION", main_mem_in_address=0, main_mem_out_address=64, channels=8),
        layer("SOFTMAX", main_mem_in_address=0, main_mem_out_address=64, channels=8),
        concat(64, [(0, 8), (16, 8)]),
        concat(64, [(0, 4)], quantized=True),
        fully_connected(0, 64, np.arange(6, dtype=np.float32).reshape(2, 3), [0.5, -0.5], act=1),
        layer("TENSORFLOW_FLATTEN", main_mem_in_address=0, main_mem_out_address=64, shape=shape),
        layer(
            "RESIZE_NEAREST_NEIGHBOR",
            main_mem_in_address=0,
            main_mem_out_address=64,
            in_shape=shape,
            out_width=8,
            out_height=8,
            align_corners=0,
        ),
        layer(
            "QUANTIZED_RESIZE_NEAREST_NEIGHBOR",
            main_mem_in_address=0,
            main_mem_out_address=64,
            in_shape=shape,
            out_width=2,
            out_height=2,
            align_corners=1,
        ),
        channelwise_dequantize(0, 64, 4, [[0.5, 1.0], [0.25, -2.0]]),
        layer("LOGISTIC", main_mem_in_address=0, main_mem_out_address=64, channels=8),
        layer("K210_ADD_PADDING", main_mem_in_address=0, kpu_mem_out_address=100, channels=8),
        layer("K210_REMOVE_PADDING", main_mem_in_address=0, main_mem_out_address=64, channels=2),
        layer("K210_UPLOAD", main_mem_in_address=0, kpu_mem_out_address=100, width=4, height=4, channels=2),
    ]


def test_every_layer_kind_writes_and_reads_back_in_the_recommended_layout():
    layers = [fully_connected(0, 0, np.eye(32, dtype=np.float32))] + every_cpu_layer()
    km = assemble(layers, [(64, 8)], main_mem_usage=512)
    raw = km.to_bytes()
    again = load(raw)
    assert again.to_bytes() == raw and again.to_bytes(layout="recommended") == raw
    pos = 28 + 8 * (1 + len(layers))
    for a, b in zip(layers, again.layers, strict=True):
        assert a.type is b.type and a.body.dumps() == b.body.dumps()
        assert b.source.body_offset == pos and (pos + b.source.body_size) % 8 == 0
        assert raw[pos + b.source.content_size : pos + b.source.body_size] == bytes(
            b.source.body_size - b.source.content_size
        )
        pos += b.source.body_size
    assert pos == len(raw)  # the last body's padding is written too
    assert again.layers[13].weights.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert [(r.start, r.size) for r in again.layers[11].inputs] == [(0, 8), (16, 8)]
    assert again.layers[17].quant_params.tolist() == [[0.5, 1.0], [0.25, -2.0]]
    assert again.layers[2].body.in_a_offset == -3


def test_conv_layer_from_scratch_gets_aligned_payload_and_runs():
    regs = conv_registers(in_shape=(3, 8, 8), out_channels=2, kernel=3, src_line=0, dst_line=64)
    weights = np.ones((2, 3, 3, 3), np.uint8)
    act = activation([-(2**35), 0] + [2**34] * 14, [0, 1] + [0] * 14, [0, 0] + [0] * 14, 0)
    conv = k210_conv(regs, weights, batch_norm([1, 2], 0, 0), act, main_mem_out_address=0)
    km = assemble([conv], [(0, 128)], main_mem_usage=128)
    assert check(km) == []
    again = load(km.to_bytes())
    b = again.layers[0].body
    assert (b.layer_offset % 8, b.weights_offset % 128, b.bn_offset % 128, b.act_offset % 256) == (0, 0, 0, 0)
    out = run(again, np.full((3, 8, 8), 2, np.uint8))[0].reshape(2, 8, 8)
    # interior pixels: 27 taps of 2*1 = 54 (x1 or x2 from BN); corners see 12 taps = 24 (pad_value 0)
    assert out[0, 3, 3] == 54 and out[1, 3, 3] == 108 and out[0, 0, 0] == 24


def test_constructor_errors():
    with pytest.raises(EmcError, match="QUANTIZE: unknown field.* mem_out; missing field.*mem_out_address"):
        layer("QUANTIZE", main_mem_in_address=0, mem_out=4, count=1, quant_param=(1.0, 0.0))
    with pytest.raises(EmcError, match="use|k210_conv"):
        layer("K210_CONV")
    with pytest.raises(EmcError, match="no known body layout"):
        layer("MAX_POOL2D")
    with pytest.raises(EmcError, match="kernel 5x5: the KPU supports 1x1 and 3x3"):
        conv_registers(in_shape=(3, 8, 8), out_channels=2, kernel=5, src_line=0, dst_line=64)
    with pytest.raises(EmcError, match="depthwise K210_CONV needs as many output as input channels"):
        conv_registers(in_shape=(3, 8, 8), out_channels=2, kernel=3, src_line=0, dst_line=64, depthwise=True)
    km = assemble(
        [layer("SOFTMAX", main_mem_in_address=0, main_mem_out_address=2**32, channels=1)], [(0, 4)], 8
    )
    with pytest.raises(
        EmcError, match=r"layer 0 \(SOFTMAX\).body.main_mem_out_address = 4294967296 is outside"
    ):
        km.to_bytes()


def test_load_split_follows_nncase_budget():
    r = conv_registers(in_shape=(512, 10, 7), out_channels=1024, kernel=1, src_line=0, dst_line=100)
    assert (
        r.image_channel_num.o_ch_num_coef + 1,
        r.kernel_load_cfg.load_time + 1,
        r.kernel_load_cfg.para_size,
    ) == (60, 18, 30720)  # as in nncase's yolo layer 12
