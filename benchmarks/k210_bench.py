"""K210 target: conversion time, emulator time, kmodel size, KPU RAM and main memory, in one run.

Models: the bundled MNIST example, the seed's cifar10.h5 (minmax, kld, percentile; error on plane.bmp
against TensorFlow's float logits), MobileNetV1-0.25 (Maix-EMC TensorLayer weights; top-5 on the tiger),
and, for the emulator alone, nncase's 20-class YOLOv2 kmodel (fixture). Maix-EMC's own kmodels are listed
for comparison (sizes and main memory read from their headers).

    .venv/bin/python benchmarks/k210_bench.py [--shared ../shared]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import describe  # noqa: E402

import emcgen  # noqa: E402
from emcgen import datasets, interpreter, kmodel  # noqa: E402
from emcgen.convert import convert, prepare  # noqa: E402

TF_PLANE = np.array([1.00093, -5.36398, 1.54882, 0.06387, 0.46718, -0.59183, -3.54216, 0.47537, -0.64025,
                     -3.75309])
# Maix-EMC's kmodel on K210 hardware, plane.bmp (../shared/fixtures/kmodel_v3/README.md)
K210_MAIX_EMC = np.array([1.181304, -5.381746, 1.580029, 0.045343, 0.511492, -0.656629, -3.597826, 0.561016,
                          -0.733270, -3.771462])


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def emu_time(km, x, runs=5):
    kmodel.run(km, x)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        kmodel.run(km, x)
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def row(name, report, conv_s, km, x, extra=""):
    m = report.memory
    return (f"| {name} | {conv_s:.2f} s | {emu_time(km, x) * 1000:.1f} ms | {m['kmodel_bytes']:,} | "
            f"{m['kpu_ram_bytes']:,} | {m['main_mem_bytes']:,} | {extra} |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    tmp = Path(tempfile.mkdtemp())
    rows = []
    quiet = lambda *a: None  # noqa: E731

    # MNIST
    rep, t = timed(lambda: convert(str(ROOT / "examples/mnist/mnist_cnn.h5"), "kmodel", tmp / "mnist.kmodel",
                                   dataset=str(ROOT / "examples/mnist/calibration"), log=quiet))
    km = kmodel.load(tmp / "mnist.kmodel")
    d = np.load(shared / "datasets/mnist10k.npz")
    x, y = d["images"][8000:], d["labels"][8000:]
    acc = np.mean([kmodel.run(km, xi[:, :, None])[0].reshape(-1).argmax() == yi for xi, yi in zip(x, y, strict=True)])
    g = prepare(str(ROOT / "examples/mnist/mnist_cnn.h5"))
    facc = np.mean(interpreter.predict(g, (x[..., None] / 255.0).astype("f4"))[0].argmax(1) == y)
    rows.append(row("MNIST example (minmax)", rep, t, km, x[0][:, :, None],
                    f"held-out accuracy {acc:.2%} (float {facc:.2%}, 2,000 digits)"))

    # cifar, three calibration methods
    plane = datasets.load_image_uint8(ROOT / "examples/cifar/plane.bmp", (32, 32, 3))
    for q in ("minmax", "kld", "percentile"):
        path = tmp / f"cifar_{q}.kmodel"
        rep, t = timed(lambda q=q, path=path: emcgen.save_kmodel(
            str(ROOT / "examples/cifar/cifar10.h5"), str(path), str(ROOT / "examples/cifar/cifar10_dataset"),
            quant_func=q))
        km = kmodel.load(path)
        err = np.abs(kmodel.run(km, plane)[0].reshape(-1) - TF_PLANE)
        rows.append(row(f"seed cifar10.h5 ({q})", rep, t, km, plane,
                        f"plane.bmp vs TF float: max {err.max():.4f}, mean {err.mean():.4f}"))
    maix = kmodel.load(shared / "models/maix-emc/cifar10.kmodel")
    rows.append(f"| Maix-EMC cifar10.kmodel (reference) | - | {emu_time(maix, plane) * 1000:.1f} ms | "
                f"{len(maix.to_bytes()):,} | - | {maix.main_mem_usage:,} | its K210 hardware output vs TF float: max "
                f"{np.abs(K210_MAIX_EMC - TF_PLANE).max():.4f}, mean {np.abs(K210_MAIX_EMC - TF_PLANE).mean():.4f} |")

    # MobileNetV1-0.25 via TensorLayer
    import tensorflow as tf
    import tensorlayer as tl
    from frontends.test_tensorlayer_frontend import _mobilenet  # noqa: E402
    params = list(np.load(shared / "models/maix-emc/mbnetv1_0.25.npz", allow_pickle=True)["params"])
    net = _mobilenet(tl, tf, params)
    net.eval()
    tiger = shared / "models/maix-emc/tiger224.bmp"
    cal = tmp / "cal"
    cal.mkdir()
    (cal / "tiger.bmp").write_bytes(tiger.read_bytes())
    for f in (ROOT / "examples/cifar/cifar10_dataset").iterdir():
        (cal / f.name).write_bytes(f.read_bytes())
    px = datasets.load_image_uint8(tiger, (224, 224, 3))
    rep, t = timed(lambda: emcgen.save_kmodel(net, str(tmp / "mbnet.kmodel"), str(cal)))
    km = kmodel.load(tmp / "mbnet.kmodel")
    top_f = list(np.argsort(-net((px[None] / 255.0).astype("f4")).numpy().reshape(-1))[:5])
    top_k = list(np.argsort(-kmodel.run(km, px)[0].reshape(-1))[:5])
    rows.append(row("MobileNetV1-0.25 (TensorLayer)", rep, t, km, px,
                    f"top-5 {'unchanged' if top_f == top_k else 'CHANGED'} ({[int(i) for i in top_k]})"))
    mb = kmodel.load(shared / "models/maix-emc/mbnetv1_0.75.kmodel")
    rows.append(f"| Maix-EMC mbnetv1_0.75.kmodel (reference, alpha 0.75) | - | {emu_time(mb, px) * 1000:.1f} ms | "
                f"{len(mb.to_bytes()):,} | - | {mb.main_mem_usage:,} | |")

    # YOLOv2 (nncase) in the emulator
    yolo = kmodel.load(shared / "fixtures/kmodel_v3/nncase-v0.1.0-rc5_yolo.kmodel")
    from PIL import Image
    dog = np.asarray(Image.open(shared / "fixtures/kmodel_v3/nncase_dog.bmp").convert("RGB"))
    rows.append(f"| nncase YOLOv2 320x240 (fixture, emulator only) | - | {emu_time(yolo, dog) * 1000:.1f} ms | "
                f"{len(yolo.to_bytes()):,} | - | {yolo.main_mem_usage:,} | 16 KPU convs |")

    print(f"machine: {describe()}")
    print("| model | conversion | emulator (one inference, median of 5) | kmodel bytes | KPU RAM bytes | "
          "main memory bytes | accuracy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
