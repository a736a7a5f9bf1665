"""The calibration driver and the minmax method on small IR graphs, against numpy computed in the test.

The expected activations are computed here with an explicit shift-and-add convolution (not the op
module's im2col), so a wrong range, a lost batch or a mixed-up tensor shows up as a mismatch.
"""
import math

import numpy as np
import pytest

from emcgen import calibration, interpreter, ops
from emcgen.calibration import registry
from emcgen.errors import EmcError
from emcgen.ir import Graph

rng = np.random.default_rng(7)
W = rng.normal(size=(3, 3, 2, 4)).astype(np.float32)
B = np.array([0.5, -0.25, 0.0, -4.0], np.float32)


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def conv_relu_graph():
    g = Graph("cr")
    g.add_tensor("x", (1, 6, 6, 2))
    g.inputs = ["x"]
    w, b = g.add_const("w", W), g.add_const("b", B)
    g.add_tensor("conv", (1, 6, 6, 4))
    g.add_op("conv2d", "conv1", ["x", w, b], ["conv"], stride=(1, 1), pads=(1, 1, 1, 1))
    g.add_tensor("relu", (1, 6, 6, 4))
    g.add_op("activation", "relu1", ["conv"], ["relu"], function="relu")
    g.add_tensor("pool", (1, 3, 3, 4))
    g.add_op("max_pool2d", "pool1", ["relu"], ["pool"], kernel=(2, 2), stride=(2, 2))
    g.outputs = ["pool"]
    ops.infer_shapes(g)
    g.validate()
    return g


def numpy_conv_relu(x):
    """SAME 3x3 convolution as a sum of 9 shifted matrix products, then ReLU and 2x2 max pooling."""
    xp = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    conv = np.zeros(x.shape[:3] + (4,))
    for dy in range(3):
        for dx in range(3):
            conv += np.einsum("nhwc,co->nhwo", xp[:, dy:dy + 6, dx:dx + 6, :], W[dy, dx].astype(np.float64))
    conv += B
    relu = np.maximum(conv, 0)
    pool = relu.reshape(x.shape[0], 3, 2, 3, 2, 4).max(axis=(2, 4))
    return {"x": x.astype(np.float64), "conv": conv, "relu": relu, "pool": pool}


def test_minmax_matches_numpy_over_several_batches():
    x = rng.uniform(-1, 2, (150, 6, 6, 2)).astype(np.float32)
    want = numpy_conv_relu(x)
    r = calibration.calibrate(conv_relu_graph(), x, "minmax", batch_size=64)  # batches of 64, 64, 22
    assert set(r) == {"x", "conv", "relu", "pool"} and r.samples == 150 and r.method == "minmax"
    for name, v in want.items():
        lo, hi = r[name]
        assert lo == pytest.approx(v.min(), abs=1e-5) and hi == pytest.approx(v.max(), abs=1e-5), name
        s = r.stats[name]
        assert s.count == v.size
        assert s.mean == pytest.approx(v.mean(), rel=1e-5, abs=1e-6) and s.std == pytest.approx(v.std(), rel=1e-4)
        assert s.absmax == pytest.approx(np.abs(v).max(), abs=1e-5)
    assert r["relu"][0] == 0.0  # zero is seen, not forced


def test_result_does_not_depend_on_batch_size():
    x = rng.normal(size=(33, 6, 6, 2)).astype(np.float32)
    a = calibration.calibrate(conv_relu_graph(), x, "percentile", batch_size=1)
    b = calibration.calibrate(conv_relu_graph(), x, "percentile", batch_size=64)
    for name in a:
        assert a[name] == pytest.approx(b[name], rel=1e-6, abs=1e-6)


def test_batches_and_passes(monkeypatch):
    """Work is done batch by batch (never the whole set at once); histogram methods run the data twice."""
    sizes = []
    real_run = interpreter.run

    def spy(graph, inputs, **kw):
        sizes.append(inputs[0].shape[0])
        return real_run(graph, inputs, **kw)

    monkeypatch.setattr(interpreter, "run", spy)
    x = rng.normal(size=(70, 6, 6, 2)).astype(np.float32)
    calibration.calibrate(conv_relu_graph(), x, "minmax", batch_size=32)
    assert sizes == [32, 32, 6]
    sizes.clear()
    r = calibration.calibrate(conv_relu_graph(), x, "kld", batch_size=32)
    assert sizes == [32, 32, 6] * 2
    h = r.stats["conv"].histogram
    assert h is not None and h.total == 70 * 6 * 6 * 4 and h.absolute


def test_inputs_as_list_and_dict():
    x = rng.normal(size=(5, 6, 6, 2)).astype(np.float32)
    a = calibration.calibrate(conv_relu_graph(), [x])
    b = calibration.calibrate(conv_relu_graph(), {"x": x})
    assert dict(a) == dict(b)


def test_degenerate_range_widened_upwards():
    g = conv_relu_graph()
    g.tensors["w"].data = np.zeros_like(W)
    g.tensors["b"].data = np.array([-1, -1, -1, -1], np.float32)  # ReLU never fires: always 0
    r = calibration.calibrate(g, rng.normal(size=(4, 6, 6, 2)).astype(np.float32))
    lo, hi = r["relu"]
    assert lo == 0.0 and 0 < hi <= 1e-6
    assert r.stats["relu"].max == 0.0
    assert r["conv"] == (-1.0, -1.0 + 1e-6)
    assert calibration.widen(5.0, 5.0) == (5.0, 5.0 + 5e-6)
    assert calibration.widen(-2.0, 3.0) == (-2.0, 3.0)


def test_nan_activation_is_reported_by_tensor():
    g = conv_relu_graph()
    g.tensors["b"].data = np.array([np.inf, 0, 0, 0], np.float32)
    with pytest.raises(EmcError, match=r"tensor 'conv' \(output of conv2d 'conv1'\) has NaN or infinite"):
        calibration.calibrate(g, rng.normal(size=(2, 6, 6, 2)).astype(np.float32))


def test_data_errors():
    g = conv_relu_graph()
    with pytest.raises(EmcError, match=r"shape \(3, 5, 5, 2\); expected \(N, 6, 6, 2\)"):
        calibration.calibrate(g, np.zeros((3, 5, 5, 2), np.float32))
    with pytest.raises(EmcError, match="no samples"):
        calibration.calibrate(g, np.zeros((0, 6, 6, 2), np.float32))
    with pytest.raises(EmcError, match="1 inputs; calibration data gives 2 arrays"):
        calibration.calibrate(g, [np.zeros((1, 6, 6, 2))] * 2)
    with pytest.raises(EmcError, match=r"model input\(s\) 'x' \(given: 'y'\)"):
        calibration.calibrate(g, {"y": np.zeros((1, 6, 6, 2))})
    with pytest.raises(EmcError, match="batch size.*0"):
        calibration.calibrate(g, np.zeros((1, 6, 6, 2)), batch_size=0)


def test_unknown_method_and_options():
    x = np.zeros((1, 6, 6, 2), np.float32)
    with pytest.raises(EmcError, match=r"unknown calibration method 'entropy'; known: minmax, kld, percentile"):
        calibration.calibrate(conv_relu_graph(), x, "entropy")
    with pytest.raises(EmcError, match=r"'kld' has no option bin; its options: bins, levels"):
        calibration.calibrate(conv_relu_graph(), x, "kld", bin=100)
    with pytest.raises(EmcError, match=r"'percentile': percentile must be in \(50, 100\], got 30"):
        calibration.get_method("percentile", percentile=30)
    with pytest.raises(EmcError, match=r"'kld': option bins must be an integer >= 2, got 'many'"):
        calibration.get_method("kld", bins="many")
    with pytest.raises(EmcError, match=r"'minmax' has no option percentile; its options: none"):
        calibration.get_method("minmax", percentile=99)


def test_register_custom_method():
    class Symmetric(calibration.CalibrationMethod):
        name = "symmetric"

        def range(self, stats):
            return -stats.absmax * self.k, stats.absmax * self.k

    def factory(k=1.0):
        m = Symmetric()
        m.k = k
        return m

    calibration.register_method("symmetric", factory)
    assert "symmetric" in calibration.method_names()
    x = rng.uniform(-1, 2, (20, 6, 6, 2)).astype(np.float32)
    want = numpy_conv_relu(x)
    r = calibration.calibrate(conv_relu_graph(), x, "symmetric", k=2.0)
    m = np.abs(want["conv"]).max()
    assert r["conv"] == pytest.approx((-2 * m, 2 * m), rel=1e-5)
    assert r["x"] == pytest.approx((x.min(), x.max()))  # inputs keep min/max by default
    r = calibration.calibrate(conv_relu_graph(), x, "symmetric", clip_inputs=True)
    assert r["x"] == pytest.approx((-np.abs(x).max(), np.abs(x).max()))
    with pytest.raises(EmcError, match="'symmetric' is already registered"):
        calibration.register_method("symmetric", factory)


def test_progress_is_monotonic_and_finishes():
    x = rng.normal(size=(40, 6, 6, 2)).astype(np.float32)
    for method in ("minmax", "kld"):
        seen = []
        calibration.calibrate(conv_relu_graph(), x, method, progress=seen.append, batch_size=8)
        assert seen == sorted(seen) and seen[-1] == 1.0 and all(0 <= f <= 1 for f in seen), method
        assert len(seen) >= 5


def test_to_json_round_numbers():
    x = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    r = calibration.calibrate(conv_relu_graph(), x, "percentile", percentile=99.0)
    j = r.to_json(histograms=True)
    assert j["method"] == "percentile" and j["options"]["lower"] == pytest.approx(1.0)
    assert j["tensors"]["conv"]["min"] == r["conv"][0]
    assert sum(j["tensors"]["conv"]["stats"]["histogram"]["counts"]) == 3 * 6 * 6 * 4
    assert all(math.isfinite(v["max"]) for v in j["tensors"].values())
