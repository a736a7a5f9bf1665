"""kld and percentile: hand-computed small cases, synthetic distributions, and np.percentile as the oracle."""
import math

import numpy as np
import pytest

from emcgen import calibration, ops
from emcgen.calibration import kld, percentile
from emcgen.calibration import stats as stats_module
from emcgen.calibration.stats import Histogram, TensorStats
from emcgen.ir import Graph


def identity_graph(features):
    """x (N, features) -> identity -> y: the output's range is calibrated by the method under test."""
    g = Graph("id")
    g.add_tensor("x", (1, features))
    g.inputs = ["x"]
    g.add_tensor("y", (1, features))
    g.add_op("identity", "id", ["x"], ["y"])
    g.outputs = ["y"]
    ops.infer_shapes(g)
    return g


def calibrate_values(values, method, **options):
    values = np.asarray(values, np.float32).reshape(-1, 1000)
    return calibration.calibrate(identity_graph(1000), values, method, batch_size=16, **options)


# ---- histogram ----------------------------------------------------------------------------------------
def test_histogram_matches_numpy(monkeypatch):
    monkeypatch.setattr(stats_module, "CHUNK", 7_000)  # several chunks per add(), with a ragged tail
    v = np.random.default_rng(0).normal(size=50_000)
    h = Histogram.empty(v.min(), v.max(), 100)
    h.add(v[:20_000])
    h.add(v[20_000:])
    want, edges = np.histogram(v, bins=100, range=(v.min(), v.max()))
    np.testing.assert_array_equal(h.counts, want)
    np.testing.assert_allclose(h.edges, edges)
    ha = Histogram.empty(0, np.abs(v).max(), 50, absolute=True)
    ha.add(v)
    np.testing.assert_array_equal(ha.counts, np.histogram(np.abs(v), bins=50, range=(0, np.abs(v).max()))[0])
    s = TensorStats("v")
    s.update(v[:30_000])
    s.update(v[30_000:].astype(np.float32))
    assert s.count == v.size and s.min == v.min() and s.max == pytest.approx(v.max(), rel=1e-7)
    assert s.mean == pytest.approx(v.mean(), abs=1e-7) and s.std == pytest.approx(v.std(), rel=1e-6)


# ---- kld ----------------------------------------------------------------------------------------------
def test_kl_divergences_hand_computed():
    # counts [4, 0, 2, 2], 2 levels; candidates i = 2, 3, 4 (see kld.py for the construction)
    cand, div = kld.kl_divergences(np.array([4, 0, 2, 2]), 2)
    assert cand.tolist() == [2, 3, 4]
    # i=2: P = [4, 4] (outliers 2+2 into bin 1), Q = [4, 0] -> Q floor 1e-12 in bin 1
    assert div[0] == pytest.approx(0.5 * math.log(0.5) + 0.5 * math.log(0.5 / 1e-12), rel=1e-9)
    # i=3: P = [4, 0, 4]; groups {0} and {1, 2}: Q = [4, 0, 2]
    assert div[1] == pytest.approx(0.5 * math.log(0.5 / (4 / 6)) + 0.5 * math.log(0.5 / (2 / 6)), rel=1e-9)
    # i=4: groups {0, 1} -> 4 spread over the one non-zero bin, {2, 3} -> 2 + 2: Q == P
    assert div[2] == pytest.approx(0.0, abs=1e-15)
    assert kld.kl_threshold_bins(np.array([4, 0, 2, 2]), 2) == 4


def test_kld_gaussian_with_outliers_clips_far_below_max():
    rng = np.random.default_rng(1)
    v = rng.normal(size=200_000)
    v[[10, 20_000, 150_000]] = [60.0, -45.0, 30.0]
    r = calibrate_values(v, "kld")
    lo, hi = r["y"]
    assert lo == -hi  # symmetric threshold for a signed tensor
    assert 2.5 < hi < 8.0, hi  # a few sigma, far below max |x| = 60
    assert r["x"] == pytest.approx((-45.0, 60.0))  # graph inputs keep min/max
    lo_in, hi_in = calibrate_values(v, "kld", clip_inputs=True)["x"]
    assert (lo_in, hi_in) == pytest.approx((lo, hi))


def test_kld_uniform_keeps_nearly_everything():
    v = np.random.default_rng(2).uniform(-3, 3, 200_000)
    lo, hi = calibrate_values(v, "kld")["y"]
    assert hi >= 0.97 * 3 and lo <= -0.97 * 3
    assert hi <= v.max() + 1e-6 and lo >= v.min() - 1e-6


def test_kld_one_sided_relu_output():
    rng = np.random.default_rng(3)
    v = np.maximum(rng.normal(size=200_000), 0)
    v[5] = 40.0  # one outlier
    r = calibrate_values(v, "kld")
    lo, hi = r["y"]
    assert lo == 0.0  # the lower end of a non-negative tensor stays at its minimum
    assert 2.5 < hi < 8.0, hi
    # levels can be forced; more levels never clip harder here
    lo2, hi2 = calibrate_values(v, "kld", levels=128)["y"]
    assert lo2 == 0.0 and 2.5 < hi2 < 8.0


def test_kld_all_zero_tensor():
    r = calibrate_values(np.zeros(2000), "kld")
    assert r["y"][0] == 0.0 and 0 < r["y"][1] <= 1e-6


def test_kld_threshold_on_stats_directly():
    v = np.random.default_rng(4).uniform(0, 1, 100_000)
    s = TensorStats("t")
    s.update(v)
    m = calibration.get_method("kld", bins=512)
    s.histogram = m.histogram(s)
    s.histogram.add(v)
    assert s.histogram.bins == 512 and s.histogram.hi == pytest.approx(v.max())
    assert m.threshold(s) >= 0.97


# ---- percentile ---------------------------------------------------------------------------------------
def test_histogram_percentile_hand_computed():
    h = Histogram(0.0, 4.0, np.array([1, 1, 1, 1]))
    assert percentile.histogram_percentile(h, 50) == 2.0
    assert percentile.histogram_percentile(h, 25) == 1.0
    assert percentile.histogram_percentile(h, 12.5) == 0.5
    assert percentile.histogram_percentile(h, 100) == 4.0
    h = Histogram(-1.0, 1.0, np.array([0, 3, 1, 0]))  # values in [-0.5, 0) x3 and [0, 0.5) x1
    assert percentile.histogram_percentile(h, 50) == pytest.approx(-0.5 + 0.5 * 2 / 3)
    assert percentile.histogram_percentile(h, 87.5) == pytest.approx(0.25)
    assert percentile.histogram_percentile(h, 50, "down") == -0.5
    assert percentile.histogram_percentile(h, 50, "up") == 0.0
    assert percentile.histogram_percentile(h, 0.01, "down") == -0.5
    assert percentile.histogram_percentile(h, 99.99, "up") == 0.5


@pytest.mark.parametrize("options,qs", [({}, (0.01, 99.99)), ({"percentile": 99.0}, (1.0, 99.0)),
                                        ({"percentile": 99.9, "lower": 0.5}, (0.5, 99.9))])
def test_percentile_matches_numpy_within_a_bin(options, qs):
    rng = np.random.default_rng(5)
    v = np.concatenate([rng.normal(1.0, 2.0, 150_000), rng.exponential(3.0, 50_000)]).astype(np.float32)
    rng.shuffle(v)
    r = calibrate_values(v, "percentile", **options)
    width = (float(v.max()) - float(v.min())) / r.options["bins"]
    lo, hi = r["y"]
    want_lo, want_hi = np.percentile(v.astype(np.float64), qs)
    assert abs(lo - want_lo) <= width * 1.01, (lo, want_lo, width)
    assert abs(hi - want_hi) <= width * 1.01, (hi, want_hi, width)
    assert r["x"] == pytest.approx((v.min(), v.max()))


def test_percentile_100_is_minmax():
    v = np.random.default_rng(6).normal(size=5000)
    r = calibrate_values(v, "percentile", percentile=100)
    assert r["y"] == pytest.approx((v.min(), v.max()), rel=1e-6)


def test_percentile_keeps_zero_of_relu_outputs():
    v = np.maximum(np.random.default_rng(7).normal(size=100_000), 0)
    lo, hi = calibrate_values(v, "percentile")["y"]
    assert lo == 0.0
    assert hi == pytest.approx(np.percentile(v, 99.99), abs=v.max() / 8192 * 1.01)


def test_kld_zero_spike_does_not_drag_the_threshold_down():
    # Half of a ReLU'd Gaussian is exactly 0. Without neutralizing that spike the search settles near 1.6
    # sigma (clipping ~5% of the positive values); with it, near 4 sigma.
    v = np.maximum(np.random.default_rng(8).normal(size=200_000), 0)
    r = calibrate_values(v, "kld")
    assert r["y"][0] == 0.0 and 3.0 < r["y"][1] <= v.max() + 1e-6, r["y"]
    # default levels: 256 for a one-sided tensor, 128 for a signed one
    assert r["y"] == calibrate_values(v, "kld", levels=256)["y"] != calibrate_values(v, "kld", levels=128)["y"]
    s = np.random.default_rng(9).laplace(size=200_000)
    assert calibrate_values(s, "kld")["y"] == calibrate_values(s, "kld", levels=128)["y"]
    assert calibrate_values(s, "kld")["y"] != calibrate_values(s, "kld", levels=256)["y"]
