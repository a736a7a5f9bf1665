"""Train the small TensorLayer MNIST CNN of this example and write everything the example ships.

The network is built so that both targets can run it without tricks:
- K210 KPU: the first layer is a convolution, every conv is 3x3 stride 1 SAME, each conv (with its
  BatchNorm/ReLU) is followed directly by a 2x2 stride-2 max pool that the KPU fuses into the conv,
  feature maps stay >= 7x7 and channel counts far below 1024;
- STM32 / CMSIS-NN int8: only conv, max pool, fully connected and ReLU.

Outputs, all beside this file (or in --out):
  mnist_cnn.h5            TensorLayer Model.save(..., save_weights=True)
  calibration/            32 training digits as grey 28x28 PNGs (digit_<dataset index>.png)
  heldout_sample.npz      64 held-out digits (images, labels, dataset index, TF float logits)
  float_accuracy.json     float accuracy on the 2,000 held-out digits

Data: mnist10k.npz; the first 8,000 digits train (and calibrate), the last 2,000 are held out and only
evaluated. Run:  .venv/bin/python examples/mnist/train.py  [--data path/to/mnist10k.npz]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
N_TRAIN = 8000          # first 8,000 digits: training and calibration
N_HELDOUT = 2000        # last 2,000 digits: accuracy only
SEED = 20240
EPOCHS = 10
BATCH = 64
LEARNING_RATE = 1e-3
EVAL_BATCH = 500        # the test evaluates with the same batch size
N_CALIBRATION = 32
N_SAMPLE = 64


def default_data() -> Path:
    """mnist10k.npz in the shared folder beside the checkout (or $EMCGEN_SHARED)."""
    shared = Path(os.environ.get("EMCGEN_SHARED", HERE.parents[1] / ".." / "shared"))
    return shared / "datasets" / "mnist10k.npz"


def img_0_1(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]: the 'img_0_1' dataset function."""
    return (images.astype(np.float32) / 255.0)[..., None]


def build_model():
    """The static TensorLayer network (batch 1 at the input, as the converters expect)."""
    import tensorflow as tf
    import tensorlayer as tl
    from tensorlayer.layers import BatchNorm, Conv2d, Dense, Flatten, Input, MaxPool2d

    ni = Input([1, 28, 28, 1], name="input")
    nn = Conv2d(8, (3, 3), (1, 1), act=tf.nn.relu, padding="SAME", name="conv1")(ni)
    nn = MaxPool2d((2, 2), (2, 2), padding="SAME", name="pool1")(nn)               # 14x14x8
    nn = Conv2d(16, (3, 3), (1, 1), padding="SAME", b_init=None, name="conv2")(nn)
    nn = BatchNorm(act=tf.nn.relu, name="bn2")(nn)
    nn = MaxPool2d((2, 2), (2, 2), padding="SAME", name="pool2")(nn)               # 7x7x16
    nn = Flatten(name="flatten")(nn)                                                # 784
    nn = Dense(16, act=tf.nn.relu, name="dense1")(nn)
    nn = Dense(10, name="dense2")(nn)                                               # logits
    return tl.models.Model(inputs=ni, outputs=nn, name="mnist_cnn")


def logits_of(model, x: np.ndarray) -> np.ndarray:
    """Float logits in inference mode, in fixed batches of EVAL_BATCH."""
    model.eval()
    return np.concatenate([model(x[i:i + EVAL_BATCH]).numpy() for i in range(0, len(x), EVAL_BATCH)])


def train(model, x: np.ndarray, y: np.ndarray, log=print) -> None:
    import tensorflow as tf
    import tensorlayer as tl

    rng = np.random.default_rng(SEED)
    optimizer = tf.optimizers.Adam(learning_rate=LEARNING_RATE)
    weights = model.trainable_weights
    for epoch in range(EPOCHS):
        model.train()
        order = rng.permutation(len(x))
        losses = []
        for i in range(0, len(x), BATCH):
            idx = order[i:i + BATCH]
            with tf.GradientTape() as tape:
                loss = tl.cost.cross_entropy(model(x[idx]), y[idx], name="loss")
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
            losses.append(float(loss))
        log(f"epoch {epoch + 1}/{EPOCHS}: mean loss {np.mean(losses):.4f}")


def write_png(path: Path, image: np.ndarray) -> None:
    from PIL import Image
    Image.fromarray(image, mode="L").save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="mnist10k.npz (default: ../shared/datasets/)")
    ap.add_argument("--out", type=Path, default=HERE, help="output folder (default: beside this script)")
    args = ap.parse_args(argv)

    data_path = args.data or default_data()
    if not data_path.exists():
        ap.error(f"{data_path} not found; pass --data path/to/mnist10k.npz")
    with np.load(data_path) as npz:
        images, labels = npz["images"], npz["labels"]
    if images.shape != (N_TRAIN + N_HELDOUT, 28, 28) or images.dtype != np.uint8:
        ap.error(f"{data_path}: expected images (10000, 28, 28) uint8, got {images.shape} {images.dtype}")

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    import tensorlayer as tl

    random.seed(SEED)
    np.random.seed(SEED)
    tf.random.set_seed(SEED)
    tf.config.experimental.enable_op_determinism()

    train_x, train_y = img_0_1(images[:N_TRAIN]), labels[:N_TRAIN].astype(np.int64)
    held_x, held_y = img_0_1(images[N_TRAIN:]), labels[N_TRAIN:].astype(np.int64)

    model = build_model()
    t0 = time.perf_counter()
    train(model, train_x, train_y)
    seconds = time.perf_counter() - t0

    held_logits = logits_of(model, held_x)
    correct = int((held_logits.argmax(axis=1) == held_y).sum())
    accuracy = correct / N_HELDOUT
    print(f"training took {seconds:.1f} s; held-out float accuracy {correct}/{N_HELDOUT} = {accuracy:.4f}")

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.save(str(out / "mnist_cnn.h5"), save_weights=True)

    cal = out / "calibration"
    cal.mkdir(exist_ok=True)
    for old in cal.glob("digit_*.png"):
        old.unlink()
    for i in range(N_CALIBRATION):          # the first training digits; all ten classes appear
        write_png(cal / f"digit_{i:05d}.png", images[i])

    np.savez_compressed(
        out / "heldout_sample.npz",
        images=images[N_TRAIN:N_TRAIN + N_SAMPLE],
        labels=labels[N_TRAIN:N_TRAIN + N_SAMPLE].astype(np.uint8),
        index=np.arange(N_TRAIN, N_TRAIN + N_SAMPLE, dtype=np.int32),
        logits=held_logits[:N_SAMPLE].astype(np.float32),
    )

    record = {
        "heldout": N_HELDOUT,
        "correct": correct,
        "accuracy": accuracy,
        "tensorflow": tf.__version__,
        "tensorlayer": tl.__version__,
        "seed": SEED,
        "epochs": EPOCHS,
        "batch": BATCH,
        "eval_batch": EVAL_BATCH,
        "train_seconds": round(seconds, 1),
    }
    (out / "float_accuracy.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
