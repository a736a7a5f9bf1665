"""K210 lowering, path by path: each small graph is converted to a kmodel, checked by the kmodel verifier,
run in the emulator (proven against the K210 hardware vector and nncase's files in tests/kmodel) and
compared with the float interpreter (proven against TensorFlow in tests/ops).

Tolerances are stated in units of the output range: 8-bit weights and activations through a few layers
stay within a few percent; the test fails if a lowering path is wrong (wrong pixel phase, wrong weight
order, wrong scale), which costs tens of percent.
"""
import numpy as np
import pytest

from emcgen import interpreter, kmodel
from emcgen.convert import convert
from emcgen.errors import DoesNotFitError, UnsupportedError
from emcgen.ir import Graph
from emcgen.ops import infer_shapes

rng = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def _seed():
    """Every test draws its weights and pictures from the same seed, whatever the test order."""
    global rng
    rng = np.random.default_rng(7)


class G:
    """Tiny graph builder: chains ops on named tensors."""

    def __init__(self, shape=(1, 16, 16, 3)):
        self.g = Graph("t")
        self.g.add_tensor("in", shape)
        self.g.inputs = ["in"]
        self.n = 0

    def op(self, typ, inputs, consts=(), **attrs):
        names = [self.g.add_const(f"c{self.n}_{i}", c) if c is not None else "" for i, c in enumerate(consts)]
        out = f"{typ}{self.n}"
        self.n += 1
        self.g.add_tensor(out, (1,))
        self.g.add_op(typ, out, list(inputs) + names, [out], **attrs)
        return out

    def conv(self, x, cin, cout, k=3, stride=1, pads=None, act="relu", **kw):
        pads = (k // 2,) * 4 if pads is None else pads
        w = (rng.standard_normal((k, k, cin, cout)) / np.sqrt(k * k * cin)).astype("f4")
        b = (rng.standard_normal(cout) * 0.1).astype("f4")
        return self.op("conv2d", [x], [w, b], stride=(stride, stride), pads=pads, activation=act, **kw)

    def dw(self, x, c, stride=1, pads=(1, 1, 1, 1), act="relu6", mult=1):
        w = (rng.standard_normal((3, 3, c, mult)) / 3).astype("f4")
        return self.op("depthwise_conv2d", [x], [w, np.zeros(c * mult, "f4")], stride=(stride, stride), pads=pads,
                       activation=act)

    def dense(self, x, cin, cout, act=None):
        w = (rng.standard_normal((cin, cout)) / np.sqrt(cin)).astype("f4")
        return self.op("dense", [x], [w, (rng.standard_normal(cout) * 0.1).astype("f4")], activation=act)

    def done(self, *outputs):
        self.g.outputs = list(outputs)
        infer_shapes(self.g)
        self.g.validate()
        return self.g


def images(n, shape):
    """Smooth random pictures (low-frequency noise), uint8."""
    h, w, c = shape
    base = rng.standard_normal((n, h // 4 + 2, w // 4 + 2, c))
    up = np.repeat(np.repeat(base, 4, axis=1), 4, axis=2)[:, :h, :w]
    return np.clip(128 + 60 * up + rng.standard_normal((n, h, w, c)) * 10, 0, 255).astype(np.uint8)


def convert_and_compare(graph, tmp_path, n_cal=24, n_test=6, options=None):
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    data = images(n_cal + n_test, shape)
    np.save(tmp_path / "cal.npy", data[:n_cal])
    out = tmp_path / "m.kmodel"
    report = convert(graph, "kmodel", out, dataset=str(tmp_path / "cal.npy"), options=options or {}, log=lambda *a: 0)
    km = kmodel.load(out.read_bytes())
    assert kmodel.check(km, runtime="sdk") == []
    errs = []
    for x in data[n_cal:]:
        got = kmodel.run(km, x, runtime="sdk")
        ref = interpreter.run(graph, (x[None] / 255.0).astype("f4"))
        for k, name in enumerate(graph.outputs):
            r = ref[name][0]
            r = (r.transpose(2, 0, 1) if r.ndim == 3 else r).reshape(-1)
            span = max(float(r.max() - r.min()), 1e-6)
            errs.append(float(np.abs(got[k].reshape(-1) - r).max()) / span)
    return km, report, max(errs)


def layer_names(km):
    return [layer.name for layer in km.layers]


def test_conv_chain_with_fused_pools_runs_on_the_kpu(tmp_path):
    b = G((1, 32, 32, 3))
    x = b.conv("in", 3, 8)
    x = b.op("max_pool2d", [x], kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0))
    x = b.conv(x, 8, 16, k=1)
    x = b.op("avg_pool2d", [x], kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0))
    km, report, err = convert_and_compare(b.done(x), tmp_path)
    assert layer_names(km) == ["K210_CONV", "K210_CONV", "DEQUANTIZE"]
    pools = [layer.regs.kernel_pool_type_cfg.pool_type for layer in km.layers[:2]]
    assert pools == [1, 2]
    assert err < 0.04
    assert report.memory["kmodel_bytes"] == len(km.to_bytes())


def test_tf_same_stride2_samples_the_odd_pixels(tmp_path):
    """TF SAME stride 2 on an even map pads (0, 1): the KPU conv runs at stride 1, the CPU keeps (2i+1, 2j+1)."""
    b = G((1, 16, 16, 3))
    x = b.conv("in", 3, 8, stride=2, pads=(0, 1, 0, 1))
    km, _, err = convert_and_compare(b.done(x), tmp_path)
    assert layer_names(km) == ["K210_CONV", "QUANTIZED_MAX_POOL2D", "DEQUANTIZE"]
    assert err < 0.04


def test_symmetric_pad_stride2_uses_the_kpu_left_top_pool(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.conv("in", 3, 8, stride=2, pads=(1, 1, 1, 1))
    km, _, err = convert_and_compare(b.done(x), tmp_path)
    assert layer_names(km) == ["K210_CONV", "DEQUANTIZE"]
    assert km.layers[0].regs.kernel_pool_type_cfg.pool_type == 5
    assert err < 0.04


def test_valid_conv_crops_the_border(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.conv("in", 3, 8, pads=(0, 0, 0, 0))
    x = b.conv(x, 8, 8)
    km, _, err = convert_and_compare(b.done(x), tmp_path)
    assert layer_names(km) == ["K210_CONV", "QUANTIZED_MAX_POOL2D", "K210_UPLOAD", "K210_CONV", "DEQUANTIZE"]
    assert err < 0.05


def test_depthwise_stride2_defers_its_select_to_the_pointwise_conv(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.conv("in", 3, 8)
    x = b.dw(x, 8, stride=2, pads=(1, 1, 1, 1))
    x = b.conv(x, 8, 16, k=1)
    km, _, err = convert_and_compare(b.done(x), tmp_path)
    assert layer_names(km) == ["K210_CONV", "K210_CONV", "K210_CONV", "DEQUANTIZE"]
    assert [layer.regs.kernel_pool_type_cfg.pool_type for layer in km.layers[:3]] == [0, 0, 5]
    assert km.layers[1].regs.interrupt_enabe.depth_wise_layer == 1
    assert err < 0.05


def test_depthwise_tf_same_stride2_and_multiplier(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.dw("in", 3, stride=1, mult=2)                      # multiplier 2 -> a normal conv on the KPU
    x = b.dw(x, 6, stride=2, pads=(0, 1, 0, 1))              # TF SAME stride 2: CPU picks the odd pixels
    km, _, err = convert_and_compare(b.done(x), tmp_path)
    assert layer_names(km) == ["K210_CONV", "K210_CONV", "QUANTIZED_MAX_POOL2D", "DEQUANTIZE"]
    assert km.layers[0].regs.interrupt_enabe.depth_wise_layer == 0
    assert err < 0.05


def test_residual_add_concat_and_heads(tmp_path):
    b = G((1, 16, 16, 3))
    a = b.conv("in", 3, 8)
    c1 = b.conv(a, 8, 8, act=None)
    s = b.op("add", [a, c1], activation="relu")
    c2 = b.conv(s, 8, 4, k=1, act="leaky_relu", alpha=0.1)
    cat = b.op("concat", [s, c2], axis=-1)
    gmax = b.op("global_max_pool", [cat])
    gap = b.op("global_avg_pool", [cat])
    both = b.op("concat", [gmax, gap], axis=-1)
    logits = b.dense(both, 24, 5)
    probs = b.op("softmax", [logits])
    sig = b.op("activation", [b.dense(gap, 12, 3)], function="sigmoid")
    km, _, err = convert_and_compare(b.done(probs, sig), tmp_path)
    names = layer_names(km)
    for t in ("QUANTIZED_ADD", "QUANTIZED_CONCAT", "QUANTIZED_MAX_POOL2D", "GLOBAL_AVERAGE_POOL2D", "SOFTMAX",
              "LOGISTIC"):
        assert t in names, (t, names)
    assert err < 0.05


def test_upsample_avgpool_sigmoid_tanh_tables(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.conv("in", 3, 8, act="tanh")
    x = b.op("avg_pool2d", [x], kernel=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1))
    x = b.op("upsample_nearest", [x], size=(16, 16))
    x = b.conv(x, 8, 4, k=1, act="sigmoid")
    km, report, err = convert_and_compare(b.done(x), tmp_path)
    names = layer_names(km)
    assert "AVERAGE_POOL2D" in names and "QUANTIZED_RESIZE_NEAREST_NEIGHBOR" in names
    assert any("max error" in n for n in report.extra["notes"])
    assert err < 0.06


def test_flattened_map_as_output(tmp_path):
    b = G((1, 8, 8, 3))
    x = b.conv("in", 3, 4)
    flat = b.op("reshape", [x], shape=(-1,))
    km, _, err = convert_and_compare(b.done(flat), tmp_path)
    assert "TENSORFLOW_FLATTEN" in layer_names(km)
    assert err < 0.04


def test_fc_first_model_takes_floats(tmp_path):
    """An MLP (like nncase's iris example): the first layer is FULLY_CONNECTED on float32 input."""
    b = G((1, 1, 1, 4))
    h = b.dense("in", 4, 10, act="relu")
    y = b.dense(h, 10, 3)
    g = b.done(y)
    x = rng.uniform(0, 8, (32, 1, 1, 4)).astype("f4")
    np.save(tmp_path / "cal.npy", x)
    convert(g, "kmodel", tmp_path / "m.kmodel", dataset=str(tmp_path / "cal.npy"), log=lambda *a: 0)
    km = kmodel.load(tmp_path / "m.kmodel")
    assert layer_names(km) == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
    for xi in x[:4]:
        got = kmodel.run(km, xi.reshape(-1), runtime="sdk")[0]
        np.testing.assert_allclose(got, interpreter.run(g, xi[None])[y][0], rtol=1e-5, atol=1e-5)


def test_fully_connected_on_the_kpu_between_add_and_remove_padding(tmp_path):
    b = G((1, 8, 8, 3))
    x = b.conv("in", 3, 16)
    gap = b.op("global_avg_pool", [x])
    h = b.dense(gap, 16, 32, act="relu")
    y = b.dense(h, 32, 10)
    km, report, err = convert_and_compare(b.done(y), tmp_path, options={"fc": "kpu"})
    names = layer_names(km)
    assert names.count("K210_ADD_PADDING") == 2 and names.count("K210_REMOVE_PADDING") == 2
    assert "FULLY_CONNECTED" not in names
    assert err < 0.05


def test_sixteen_bit_weights(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.conv(b.conv("in", 3, 8), 8, 8)
    global rng
    state = rng.bit_generator.state
    km8, r8, err8 = convert_and_compare(b.done(x), tmp_path)
    rng.bit_generator.state = state                            # the same pictures for both widths
    km16, r16, err16 = convert_and_compare(b.g, tmp_path, options={"weight_bits": 16})
    assert km16.flags & 1 == 0 and km8.flags & 1 == 1
    assert km16.layers[0].weights.dtype.itemsize == 2
    assert err16 < 0.04 and err8 < 0.04
    assert r16.layers[0]["max_error_lsb"] < r8.layers[0]["max_error_lsb"]


def test_maps_smaller_than_4x4_are_expanded_for_the_kpu(tmp_path):
    b = G((1, 12, 12, 3))
    x = b.conv("in", 3, 8, stride=2, pads=(1, 1, 1, 1))          # 6x6
    x = b.conv(x, 8, 8, stride=2, pads=(0, 1, 0, 1))             # TF SAME stride 2 -> 3x3
    x = b.dw(x, 8, act="relu6")                                  # 3x3 depthwise on 3x3 (zero point 0: ReLU)
    x = b.conv(x, 8, 12, k=1, act=None)                          # 1x1 on 3x3, linear
    km, _, err = convert_and_compare(b.done(x), tmp_path)
    assert err < 0.05
    for layer in km.layers:
        if layer.name == "K210_CONV":
            assert min(layer.geometry.in_height, layer.geometry.in_width) >= 4


def test_3x3_conv_on_a_small_map_needs_zero_point_0(tmp_path):
    b = G((1, 12, 12, 3))
    x = b.conv("in", 3, 8, stride=2, pads=(1, 1, 1, 1))
    x = b.conv(x, 8, 8, stride=2, pads=(1, 1, 1, 1), act=None)   # linear 3x3 output: zero point > 0
    x = b.conv(x, 8, 4)
    with pytest.raises(UnsupportedError, match=r"smaller than the KPU's minimum 4x4; a 3x3 conv"):
        convert_and_compare(b.done(x), tmp_path)


def test_unsupported_kernel_names_the_layer(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.conv("in", 3, 4, k=5)
    with pytest.raises(UnsupportedError, match=r"layer 'conv2d0': kernel 5x5; the KPU runs 1x1 and 3x3"):
        convert_and_compare(b.done(x), tmp_path)
    assert not (tmp_path / "m.kmodel").exists()


def test_first_layer_must_be_a_kpu_conv(tmp_path):
    b = G((1, 16, 16, 3))
    x = b.op("max_pool2d", ["in"], kernel=(2, 2), stride=(2, 2), pads=(0, 0, 0, 0))
    with pytest.raises(UnsupportedError, match="first layer must be a convolution"):
        convert_and_compare(b.done(b.conv(x, 3, 4)), tmp_path)


def test_too_big_for_kpu_ram_names_layer_and_bytes(tmp_path):
    b = G((1, 256, 256, 3))
    x = b.conv("in", 3, 40, k=1)
    with pytest.raises(DoesNotFitError, match=r"needs [\d,]+ bytes of KPU RAM .* the K210 has 2,097,152"):
        convert_and_compare(b.done(x), tmp_path, n_cal=2, n_test=1)
