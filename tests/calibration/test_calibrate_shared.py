"""Calibration on the seed's real calibration images (Maix-EMC cifar10_dataset: 10 RGB 32x32 pictures).

The graph is a small hand-made conv/ReLU/pool/dense network (the real cifar10.h5 loader lives elsewhere);
the minmax ranges are checked against numpy computed here, the other methods for their invariants.
"""
import numpy as np
import pytest
import support

from emcgen import calibration, datasets, ops
from emcgen.ir import Graph

rng = np.random.default_rng(11)
W1 = rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32)
B1 = rng.normal(0, 0.1, 8).astype(np.float32)
W2 = rng.normal(0, 0.05, (16 * 16 * 8, 10)).astype(np.float32)
B2 = rng.normal(0, 0.1, 10).astype(np.float32)


def small_cifar_graph():
    g = Graph("small_cifar")
    g.add_tensor("image", (1, 32, 32, 3))
    g.inputs = ["image"]
    for name, shape in (("c1", (1, 32, 32, 8)), ("p1", (1, 16, 16, 8)), ("flat", (1, 2048)), ("logits", (1, 10))):
        g.add_tensor(name, shape)
    g.add_op("conv2d", "conv1", ["image", g.add_const("w1", W1), g.add_const("b1", B1)], ["c1"],
             stride=(1, 1), pads=(1, 1, 1, 1), activation="relu")
    g.add_op("max_pool2d", "pool1", ["c1"], ["p1"], kernel=(2, 2), stride=(2, 2))
    g.add_op("reshape", "flatten", ["p1"], ["flat"], shape=(-1,))
    g.add_op("dense", "fc", ["flat", g.add_const("w2", W2), g.add_const("b2", B2)], ["logits"])
    g.outputs = ["logits"]
    ops.infer_shapes(g)
    g.validate()
    return g


def numpy_forward(x):
    x = x.astype(np.float64)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    c1 = sum(np.einsum("nhwc,co->nhwo", xp[:, i:i + 32, j:j + 32], W1[i, j]) for i in range(3) for j in range(3))
    c1 = np.maximum(c1 + B1, 0)
    p1 = c1.reshape(-1, 16, 2, 16, 2, 8).max(axis=(2, 4))
    flat = p1.reshape(len(x), -1)
    return {"image": x, "c1": c1, "p1": p1, "flat": flat, "logits": flat @ W2 + B2}


@pytest.fixture(scope="module")
def cifar_images():
    folder = support.shared("models", "maix-emc", "cifar10_dataset")
    return datasets.load_dataset(folder, (32, 32, 3), "img_0_1")


def test_minmax_on_cifar_images(cifar_images):
    want = numpy_forward(cifar_images)
    r = calibration.calibrate(small_cifar_graph(), cifar_images, "minmax", batch_size=4)
    assert r.samples == 10 and set(r) == set(want)
    for name, v in want.items():
        assert r[name] == pytest.approx((v.min(), v.max()), abs=1e-5), name


@pytest.mark.parametrize("method", ["kld", "percentile"])
def test_clipping_methods_on_cifar_images(cifar_images, method):
    mm = calibration.calibrate(small_cifar_graph(), cifar_images, "minmax")
    r = calibration.calibrate(small_cifar_graph(), cifar_images, method)
    assert r["image"] == mm["image"]
    for name, (lo, hi) in r.items():
        mlo, mhi = mm[name]
        assert mlo - 1e-6 <= lo < hi <= mhi + 1e-6, (name, (lo, hi), (mlo, mhi))
        assert r.stats[name].histogram is not None or name == "image"
    assert r["c1"][0] == 0.0 and r["p1"][0] == 0.0  # ReLU outputs keep 0 as their lower end
