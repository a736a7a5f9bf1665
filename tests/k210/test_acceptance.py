"""Accuracy of emcgen's kmodels, measured in the K210 emulator against float truth from TensorFlow.

- The seed's cifar10.h5 with its own 10 calibration images, converted with the seed's call: on plane.bmp
  every logit within 0.06 of TensorFlow's float output (Maix-EMC's own kmodel on the chip: up to 0.18).
- The bundled MNIST example: int8 kmodel accuracy on the 2,000 held-out digits within 0.5 points of the
  float accuracy TensorFlow measured (examples/mnist/float_accuracy.json).
- MobileNetV1-0.25 (TensorLayer, Maix-EMC weights): top-5 on tiger224.bmp unchanged.
The references are numbers computed by TensorFlow/TensorLayer, not by emcgen.
"""
import json

import numpy as np
import pytest
import support

import emcgen
from emcgen import datasets, kmodel
from emcgen.convert import convert

ROOT = support.ROOT
# TensorFlow 2.21 float forward pass of cifar10.h5 on plane.bmp (../shared/models/maix-emc/README.md)
TF_PLANE = np.array([1.00093, -5.36398, 1.54882, 0.06387, 0.46718, -0.59183, -3.54216, 0.47537, -0.64025,
                     -3.75309])
K210_MAIX_EMC = np.array([1.181304, -5.381746, 1.580029, 0.045343, 0.511492, -0.656629, -3.597826, 0.561016,
                          -0.733270, -3.771462])


@pytest.fixture(scope="module")
def cifar_kmodels(tmp_path_factory):
    out = tmp_path_factory.mktemp("cifar")
    found = {}
    for q in ("minmax", "kld", "percentile"):
        path = out / f"cifar10_{q}.kmodel"
        emcgen.save_kmodel(str(ROOT / "examples/cifar/cifar10.h5"), str(path),
                           str(ROOT / "examples/cifar/cifar10_dataset"), dataset_func="img_0_1", quant_func=q,
                           quant_bit=8, version=3)
        found[q] = path
    return found


def plane_logits(path):
    km = kmodel.load(path)
    pixels = datasets.load_image_uint8(ROOT / "examples/cifar/plane.bmp", (32, 32, 3))
    return kmodel.run(km, pixels, runtime="sdk")[0].reshape(-1)


def test_seed_call_on_seed_model_is_within_006_of_tensorflow(cifar_kmodels):
    got = plane_logits(cifar_kmodels["minmax"])
    err = np.abs(got - TF_PLANE)
    print("minmax errors", np.round(err, 4), "max", err.max(), "mean", err.mean())
    assert err.max() <= 0.06
    assert err.max() < np.abs(K210_MAIX_EMC - TF_PLANE).max()
    assert kmodel.check(kmodel.load(cifar_kmodels["minmax"]), runtime="sdk") == []


def test_other_calibration_methods_are_recorded(cifar_kmodels):
    """kld and percentile clip ranges; with only 10 calibration pictures they do worse than minmax here.
    The numbers go into the report (see BENCHMARKS.md); the bound only catches a broken method."""
    for q in ("kld", "percentile"):
        err = np.abs(plane_logits(cifar_kmodels[q]) - TF_PLANE)
        print(q, "max", round(float(err.max()), 4), "mean", round(float(err.mean()), 4))
        assert err.max() < 0.5
        report = json.loads((cifar_kmodels[q].parent / f"{cifar_kmodels[q].name}.report.json").read_text())
        assert report["quantization"]["method"] == q


@pytest.mark.slow
def test_mnist_kmodel_accuracy_within_half_a_point_of_float(tmp_path):
    out = tmp_path / "mnist.kmodel"
    convert(str(ROOT / "examples/mnist/mnist_cnn.h5"), "kmodel", out,
                   dataset=str(ROOT / "examples/mnist/calibration"), log=lambda *a: None)
    km = kmodel.load(out)
    data = np.load(support.shared("datasets", "mnist10k.npz"))
    x, y = data["images"][8000:], data["labels"][8000:]
    pred = np.array([kmodel.run(km, xi[:, :, None], runtime="sdk")[0].reshape(-1).argmax() for xi in x])
    acc = float((pred == y).mean())
    float_acc = json.loads((ROOT / "examples/mnist/float_accuracy.json").read_text())["accuracy"]
    print(f"kmodel accuracy {acc:.4f} vs float {float_acc:.4f} on {len(y)} held-out digits")
    assert abs(acc - float_acc) <= 0.005


@pytest.mark.slow
def test_mobilenet_v1_025_top5_unchanged(tmp_path):
    tl = support.module("tensorlayer")
    support.module("tensorflow")
    import tensorflow as tf
    import tensorlayer.models.core as tl_core
    from frontends.test_tensorlayer_frontend import _mobilenet
    params = list(np.load(support.shared("models", "maix-emc", "mbnetv1_0.25.npz"), allow_pickle=True)["params"])
    tl_core._global_model_name_set.discard("mobilenetv1_025")   # TensorLayer keeps model names process-wide
    net = _mobilenet(tl, tf, params)
    net.eval()
    tiger = support.shared("models", "maix-emc", "tiger224.bmp")
    pixels = datasets.load_image_uint8(tiger, (224, 224, 3))
    float_logits = net((pixels[None] / 255.0).astype("f4")).numpy().reshape(-1)   # TensorLayer's own output
    # calibration: the tiger plus the seed's ten CIFAR pictures (resized), the pictures the repository has
    cal = tmp_path / "cal"
    cal.mkdir()
    (cal / "tiger.bmp").write_bytes(tiger.read_bytes())
    for f in (ROOT / "examples/cifar/cifar10_dataset").iterdir():
        (cal / f.name).write_bytes(f.read_bytes())
    out = tmp_path / "mbnet.kmodel"
    report = emcgen.save_kmodel(net, str(out), str(cal), dataset_func="img_0_1", quant_func="minmax")
    km = kmodel.load(out)
    got = kmodel.run(km, pixels, runtime="sdk")[0].reshape(-1)
    top5_float = list(np.argsort(-float_logits)[:5])
    top5_k210 = list(np.argsort(-got)[:5])
    ref = kmodel.load(support.shared("models", "maix-emc", "mbnetv1_0.75.kmodel").read_bytes())
    print("top-5 float", top5_float, "kmodel", top5_k210)
    print("emcgen 0.25: kmodel", report.memory, "| Maix-EMC 0.75 kmodel bytes",
          len(ref.to_bytes()), "main_mem", ref.main_mem_usage)
    assert top5_float[0] == 292 and top5_k210 == top5_float
