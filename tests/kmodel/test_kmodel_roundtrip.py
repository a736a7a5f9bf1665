"""Reading and writing: every real kmodel round-trips byte for byte; new models get the §7.2 layout."""

import kmodel_testdata as td
import numpy as np
import pytest

from emcgen.errors import EmcError
from emcgen.kmodel import load


@pytest.mark.parametrize("key", sorted(td.FILES))
def test_fixture_round_trips_byte_identically(key):
    raw = td.data(key)
    assert load(raw).to_bytes() == raw
    assert load(td.path(key)).to_bytes(layout="source") == raw


@pytest.mark.parametrize("key", td.NNCASE)
def test_recommended_layout_is_nncase_layout_with_final_padding(key):
    # nncase v0.1 uses the recommended layout; only the last body's padding is missing from its files
    raw = td.data(key)
    km = load(raw)
    out = km.to_bytes(layout="recommended")
    assert km.source.body_end - len(raw) == 4
    assert out == raw + bytes(4)


@pytest.mark.parametrize("key", td.MAIX_EMC)
def test_recommended_layout_of_maix_emc_files(key):
    km = load(td.data(key))
    out = km.to_bytes(layout="recommended")
    again = load(out)
    assert again.to_bytes() == out
    for a, b in zip(km.layers, again.layers, strict=True):
        assert a.type is b.type
        if a.type.tail == "conv":
            assert np.array_equal(a.weights, b.weights) and np.array_equal(a.bn.norm_mul, b.bn.norm_mul)
            assert np.array_equal(a.act.x_start, b.act.x_start)
            body = b.body
            assert body.layer_offset % 8 == 0 and body.weights_offset % 128 == 0
            assert body.bn_offset % 128 == 0 and body.act_offset % 256 == 0
        else:
            assert a.body.dumps() == b.body.dumps()
    for start, size in [(layer.source.body_offset, layer.source.body_size) for layer in again.layers]:
        assert (start + size) % 8 == 0  # every body padded to 8, padding written
    assert len(out) == again.source.body_end


def test_writer_really_writes_edited_fields():
    raw = td.data("cifar_hw")
    km = load(raw)
    km.layers[0].regs.conv_value.arg_x = -3909033
    km.layers[0].weights[0, 0, 0, 0] = 7
    km.layers[8].bias[0] = 1.5
    km.main_mem_usage = 40968
    out = km.to_bytes()
    diff = np.nonzero(np.frombuffer(raw, np.uint8) != np.frombuffer(out, np.uint8))[0]
    # arg_x lives in register word 9 (file offset 136 + 72 + 4), weights at 256, header field at 20,
    # the last FC's bias after its 24-byte struct and 16x10 weights (body at 283220)
    bias_bytes = set(range(283220 + 24 + 640, 283220 + 24 + 644))
    assert {20, 212, 256} <= set(diff) <= {20, 212, 256} | bias_bytes
    assert set(diff) & bias_bytes
    assert load(out).layers[0].regs.conv_value.arg_x == -3909033


def test_size_change_falls_back_to_recommended_layout():
    km = load(td.data("iris"))
    w = km.layers[1].weights
    km.layers[1].weights = np.vstack([w, w[:1]])
    km.layers[1].bias = np.append(km.layers[1].bias, 0.5).astype(np.float32)
    km.layers[1].body.out_channels = 4
    with pytest.raises(EmcError, match="cannot keep the source layout: layer 1 changed size"):
        km.to_bytes(layout="source")
    again = load(km.to_bytes())
    assert again.layers[1].weights.shape == (4, 10) and again.layers[1].bias[3] == np.float32(0.5)


def test_inconsistent_tail_is_rejected():
    km = load(td.data("iris"))
    km.layers[0].body.out_channels = 11
    with pytest.raises(EmcError, match=r"layer 0 \(FULLY_CONNECTED\): weights has shape \(10, 4\), the body"):
        km.to_bytes()


def test_weight_dtype_must_match_header_mode():
    km = load(td.data("cifar_hw"))
    km.flags = 0
    with pytest.raises(EmcError, match="16-bit .* must be uint16"):
        km.to_bytes()
