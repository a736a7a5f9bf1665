"""The shipped examples: the committed MNIST model reproduces its recorded float accuracy in TensorLayer/TF,
its calibration digits come from the training split only, and the cifar example's data files are the
unchanged Maix-EMC originals (whose float output matches the TF reference of ../shared)."""
from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import support
from PIL import Image

EXAMPLES = support.ROOT / "examples"
MNIST = EXAMPLES / "mnist"
CIFAR = EXAMPLES / "cifar"
N_TRAIN, N_HELDOUT = 8000, 2000

# Float TensorFlow 2.21 logits of the seed's cifar10.h5 for plane.bmp (RGB / 255), from
# ../shared/models/maix-emc/README.md (measured there independently of this repository).
PLANE_TF_LOGITS = [1.00093, -5.36398, 1.54882, 0.06387, 0.46718, -0.59183, -3.54216, 0.47537, -0.64025,
                   -3.75309]

# The architecture the README documents; the test network below is built from it independently of train.py.
MNIST_LAYERS = [
    ("_InputLayer", "input", {"shape": [1, 28, 28, 1]}),
    ("Conv2d", "conv1", {"n_filter": 8, "filter_size": (3, 3), "strides": (1, 1), "padding": "SAME",
                         "act": "relu"}),
    ("MaxPool2d", "pool1", {"filter_size": (2, 2), "strides": (2, 2)}),
    ("Conv2d", "conv2", {"n_filter": 16, "filter_size": (3, 3), "strides": (1, 1), "padding": "SAME"}),
    ("BatchNorm", "bn2", {"act": "relu"}),
    ("MaxPool2d", "pool2", {"filter_size": (2, 2), "strides": (2, 2)}),
    ("Flatten", "flatten", {}),
    ("Dense", "dense1", {"n_units": 16, "act": "relu"}),
    ("Dense", "dense2", {"n_units": 10}),
]


def mnist_data():
    with np.load(support.shared("datasets", "mnist10k.npz")) as npz:
        return npz["images"], npz["labels"]


def recorded():
    return json.loads((MNIST / "float_accuracy.json").read_text())


def tf_tl():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return support.module("tensorflow"), support.module("tensorlayer")


def build_mnist_net():
    tf, tl = tf_tl()
    from tensorlayer.layers import BatchNorm, Conv2d, Dense, Flatten, Input, MaxPool2d

    ni = Input([1, 28, 28, 1], name="input")
    nn = Conv2d(8, (3, 3), (1, 1), act=tf.nn.relu, padding="SAME", name="conv1")(ni)
    nn = MaxPool2d((2, 2), (2, 2), name="pool1")(nn)
    nn = Conv2d(16, (3, 3), (1, 1), padding="SAME", b_init=None, name="conv2")(nn)
    nn = BatchNorm(act=tf.nn.relu, name="bn2")(nn)
    nn = MaxPool2d((2, 2), (2, 2), name="pool2")(nn)
    nn = Flatten(name="flatten")(nn)
    nn = Dense(16, act=tf.nn.relu, name="dense1")(nn)
    nn = Dense(10, name="dense2")(nn)
    return tl.models.Model(inputs=ni, outputs=nn)


def load_by_name(net, h5_path: Path) -> None:
    """h5py loop (TensorLayer's loader fails with h5py 3): every variable <layer>/<v>:0 from <layer>/<layer>/<v>:0,
    and no dataset in the file left unused."""
    with h5py.File(h5_path, "r") as f:
        in_file = set()
        f.visititems(lambda name, obj: in_file.add(name) if isinstance(obj, h5py.Dataset) else None)
        wanted = {f"{w.name.split('/')[0]}/{w.name}": w for w in net.all_weights}
        assert set(wanted) == in_file
        for key, var in wanted.items():
            assert tuple(f[key].shape) == tuple(var.shape), key
            var.assign(np.asarray(f[key]))
    for layer in net.all_layers:      # undo BatchNorm's build-time replacement of its moving statistics
        if type(layer).__name__ == "BatchNorm":
            named = {w.name.split("/")[-1]: w for w in layer.all_weights}
            layer.moving_mean, layer.moving_var = named["moving_mean:0"], named["moving_var:0"]


# ---------------------------------------------------------------------------------------------- mnist

def test_mnist_files_are_small_and_complete():
    h5 = MNIST / "mnist_cnn.h5"
    assert h5.stat().st_size < 100_000
    pngs = sorted((MNIST / "calibration").glob("*.png"))
    assert 16 <= len(pngs) <= 64
    for png in pngs:
        with Image.open(png) as im:
            assert (im.mode, im.size) == ("L", (28, 28)), png.name
    rec = recorded()
    assert rec["heldout"] == N_HELDOUT
    assert rec["accuracy"] == rec["correct"] / N_HELDOUT
    assert rec["accuracy"] > 0.95
    with np.load(MNIST / "heldout_sample.npz") as npz:
        assert npz["images"].dtype == np.uint8 and npz["images"].shape[1:] == (28, 28)
        assert npz["labels"].dtype == np.uint8 and len(npz["labels"]) == len(npz["images"])
        assert (npz["index"] >= N_TRAIN).all()
        assert npz["logits"].shape == (len(npz["images"]), 10)


def test_mnist_h5_architecture_is_the_documented_one():
    """The model_config TensorLayer wrote (a Python literal) describes exactly the network the tests build."""
    with h5py.File(MNIST / "mnist_cnn.h5", "r") as f:
        config = ast.literal_eval(f.attrs["model_config"])
    layers = config["model_architecture"]
    assert [(L["class"], L["args"]["name"]) for L in layers] == [(c, n) for c, n, _ in MNIST_LAYERS]
    for L, (_, name, args) in zip(layers, MNIST_LAYERS, strict=True):
        for key, value in args.items():
            assert L["args"][key] == value, (name, key)
    # conv2 has no bias (its BatchNorm's beta plays that role)
    with h5py.File(MNIST / "mnist_cnn.h5", "r") as f:
        assert "conv2/conv2/biases:0" not in f


@pytest.mark.slow
def test_mnist_h5_reproduces_recorded_float_accuracy():
    images, labels = mnist_data()
    rec = recorded()
    net = build_mnist_net()
    load_by_name(net, MNIST / "mnist_cnn.h5")
    net.eval()
    x = (images[N_TRAIN:].astype(np.float32) / 255.0)[..., None]
    step = rec["eval_batch"]
    logits = np.concatenate([net(x[i:i + step]).numpy() for i in range(0, len(x), step)])
    correct = int((logits.argmax(axis=1) == labels[N_TRAIN:]).sum())
    assert correct == rec["correct"]
    assert correct / N_HELDOUT == rec["accuracy"]

    with np.load(MNIST / "heldout_sample.npz") as npz:
        index, sample_logits = npz["index"], npz["logits"]
        assert (npz["images"] == images[index]).all()
        assert (npz["labels"] == labels[index]).all()
    np.testing.assert_allclose(logits[index - N_TRAIN], sample_logits, rtol=0, atol=1e-4)


def test_mnist_calibration_pngs_come_from_training_split():
    images, _ = mnist_data()
    where: dict[bytes, set[int]] = {}
    for i, img in enumerate(images):
        where.setdefault(hashlib.sha256(img.tobytes()).digest(), set()).add(i)
    pngs = sorted((MNIST / "calibration").glob("*.png"))
    assert pngs
    for png in pngs:
        with Image.open(png) as im:
            pixels = np.asarray(im.convert("L"), dtype=np.uint8)
        found = where.get(hashlib.sha256(pixels.tobytes()).digest(), set())
        assert any(i < N_TRAIN for i in found), f"{png.name} is not one of the first {N_TRAIN} digits"
        assert not any(i >= N_TRAIN for i in found), f"{png.name} equals a held-out digit"


# ---------------------------------------------------------------------------------------------- cifar

def same_bytes(ours: Path, theirs: Path) -> None:
    assert ours.read_bytes() == theirs.read_bytes(), f"{ours} differs from {theirs}"


def test_cifar_files_are_the_unchanged_originals():
    maix = support.shared("models", "maix-emc")
    same_bytes(CIFAR / "cifar10.h5", maix / "cifar10.h5")
    same_bytes(CIFAR / "LICENSE", maix / "LICENSE")
    same_bytes(CIFAR / "plane.bmp", support.shared("fixtures", "kmodel_v3", "maix-emc_plane.bmp"))
    ours = sorted(p.name for p in (CIFAR / "cifar10_dataset").iterdir())
    theirs = sorted(p.name for p in (maix / "cifar10_dataset").iterdir())
    assert ours == theirs and len(ours) == 10
    for name in ours:
        same_bytes(CIFAR / "cifar10_dataset" / name, maix / "cifar10_dataset" / name)
    notice = (CIFAR / "NOTICE").read_text()
    assert "e8d3f095495428fd5922fb5a478690f6958cd044" in notice and "Apache" in notice
    assert "*.kmodel" in (CIFAR / ".gitignore").read_text().split()


@pytest.mark.slow
def test_cifar_tl_network_of_the_script_matches_tf_reference():
    """`cifar10_to_kmodel.py --tl` hands save_kmodel a TensorLayer network rebuilt with its own h5py loader;
    its float output on plane.bmp must be the TF 2.21 reference of ../shared."""
    support.shared("models", "maix-emc", "README.md")
    tf_tl()
    spec = importlib.util.spec_from_file_location("cifar10_to_kmodel", CIFAR / "cifar10_to_kmodel.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    net = script.tl_net(CIFAR / "cifar10.h5")
    with Image.open(CIFAR / "plane.bmp") as im:
        x = np.asarray(im.convert("RGB"), dtype=np.float32)[None] / 255.0
    np.testing.assert_allclose(net(x).numpy()[0], PLANE_TF_LOGITS, rtol=0, atol=5e-5)
