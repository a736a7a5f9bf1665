"""Float reference interpreter vs TensorFlow, in one run on one machine.

MNIST example (examples/mnist/mnist_cnn.h5): 1,000 held-out digits (TensorFlow: one batch of 1,000;
emcgen: interpreter.predict, which runs them in chunks of 128).
MobileNetV1-0.25 (the Maix-EMC TensorLayer model, ../shared weights): one 224x224 image.
Each timing is the median of 5 runs after one warm-up run; TensorFlow runs the same TensorLayer model
(eager forward), emcgen runs its numpy interpreter on the graph loaded from the same weights.

    .venv/bin/python benchmarks/float_interpreter.py [--shared ../shared]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _machine import describe  # noqa: E402

from emcgen import datasets, interpreter  # noqa: E402
from emcgen.convert import prepare  # noqa: E402


def median_time(fn, runs=5):
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    import tensorflow as tf
    import tensorlayer as tl

    rows = []
    # MNIST: TensorLayer network rebuilt by the example's test, weights from the .h5
    from examples.test_mnist_example import build_mnist_net, load_by_name  # noqa: E402
    net = build_mnist_net()
    load_by_name(net, ROOT / "examples/mnist/mnist_cnn.h5")
    net.eval()
    graph = prepare(str(ROOT / "examples/mnist/mnist_cnn.h5"))
    d = np.load(shared / "datasets/mnist10k.npz")
    x = (d["images"][8000:9000, :, :, None] / 255.0).astype(np.float32)
    t_emc = median_time(lambda: interpreter.predict(graph, x))
    t_tf = median_time(lambda: net(x).numpy())
    diff = float(np.abs(interpreter.predict(graph, x)[0] - net(x).numpy()).max())
    rows.append(("MNIST CNN, 1,000 digits", t_emc, t_tf, diff))

    from frontends.test_tensorlayer_frontend import _mobilenet  # noqa: E402
    params = list(np.load(shared / "models/maix-emc/mbnetv1_0.25.npz", allow_pickle=True)["params"])
    mnet = _mobilenet(tl, tf, params)
    mnet.eval()
    from emcgen.frontends import load_model  # noqa: E402
    mgraph = prepare(load_model(mnet))
    img = datasets.load_image(shared / "models/maix-emc/tiger224.bmp", (224, 224, 3), "img_0_1")
    t_emc = median_time(lambda: interpreter.run(mgraph, img))
    t_tf = median_time(lambda: mnet(img).numpy())
    diff = float(np.abs(interpreter.run(mgraph, img)[mgraph.outputs[0]] - mnet(img).numpy()).max())
    rows.append(("MobileNetV1-0.25, one 224x224 image", t_emc, t_tf, diff))

    print(f"machine: {describe()}; TensorFlow {tf.__version__}, TensorLayer {tl.__version__}, "
          f"numpy {np.__version__}")
    print("| model | emcgen float interpreter | TensorFlow (TensorLayer eager) | max abs difference |")
    print("| --- | ---: | ---: | ---: |")
    for name, a, b, diff in rows:
        print(f"| {name} | {a * 1000:.1f} ms | {b * 1000:.1f} ms | {diff:.1e} |")


if __name__ == "__main__":
    main()
