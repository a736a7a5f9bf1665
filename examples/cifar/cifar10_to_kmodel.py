"""The seed's flow: convert the seed's CIFAR-10 network to a kmodel v3 file with `emcgen.save_kmodel`.

    .venv/bin/python examples/cifar/cifar10_to_kmodel.py          # net = the .h5 path
    .venv/bin/python examples/cifar/cifar10_to_kmodel.py --tl     # net = a TensorLayer network object

Runs in its own folder and writes ./cifar10.kmodel there, calibrated (minmax, 8 bit) on the ten images of
./cifar10_dataset with the 'img_0_1' dataset function (pixels / 255).

With --tl the network is rebuilt in TensorLayer from the seed's architecture and the weights of
cifar10.h5 are copied in with h5py (TensorLayer 2.2.5's own .h5 loader fails with h5py 3), which shows
the seed's object API: `save_kmodel(net, ...)` with `net` a TensorLayer model.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
H5 = "cifar10.h5"


def build_tl_net():
    """The seed's network, as in cifar10.h5's model_config (TensorLayer static model, inference mode).

    Input 32x32x3 -> Conv2d 32 3x3 SAME -> BatchNorm(relu) -> MaxPool 3x3/2 SAME -> Conv2d 64 3x3 SAME
    -> BatchNorm(relu) -> MaxPool 3x3/2 SAME -> Flatten (4096) -> Dense 16 relu -> Dense 10 (logits).
    """
    import tensorflow as tf
    import tensorlayer as tl
    from tensorlayer.layers import BatchNorm, Conv2d, Dense, Flatten, Input, MaxPool2d

    ni = Input([None, 32, 32, 3], name="_inputlayer_1")
    nn = Conv2d(32, (3, 3), (1, 1), padding="SAME", name="conv1")(ni)
    nn = BatchNorm(decay=0.99, epsilon=1e-5, act=tf.nn.relu, name="batch1")(nn)
    nn = MaxPool2d((3, 3), (2, 2), padding="SAME", name="pool1")(nn)
    nn = Conv2d(64, (3, 3), (1, 1), padding="SAME", name="conv2")(nn)
    nn = BatchNorm(decay=0.99, epsilon=1e-5, act=tf.nn.relu, name="batch2")(nn)
    nn = MaxPool2d((3, 3), (2, 2), padding="SAME", name="pool2")(nn)
    nn = Flatten(name="flatten")(nn)
    nn = Dense(16, act=tf.nn.relu, name="denserelu")(nn)
    nn = Dense(10, name="output")(nn)
    net = tl.models.Model(inputs=ni, outputs=nn, name="cnn")
    net.eval()
    return net


def load_h5_weights(net, h5_path) -> None:
    """Copy every variable of `net` from a TensorLayer .h5 file, matched by name.

    TensorLayer stores variable `<layer>/<var>:0` at `<layer>/<layer>/<var>:0`. The seed's file was saved
    by TensorLayer 2.1, which kept BatchNorm parameters as (1, 1, 1, C); 2.2.5 uses (C,), so values are
    reshaped when the element count matches.
    """
    import h5py
    import numpy as np

    with h5py.File(h5_path, "r") as f:
        for var in net.all_weights:
            layer = var.name.split("/")[0]
            key = f"{layer}/{var.name}"
            if key not in f:
                raise SystemExit(f"{h5_path}: no weights '{key}' for variable {var.name}")
            value = np.asarray(f[key])
            if value.size != int(np.prod(var.shape)):
                raise SystemExit(f"{h5_path}: '{key}' has shape {value.shape}, the network needs {var.shape}")
            var.assign(value.reshape(var.shape))
    # Building the static model ran BatchNorm.forward once, which replaced moving_mean/moving_var by
    # the result of an assign (an _UnreadVariable); point them back at the real variables.
    for layer in net.all_layers:
        if type(layer).__name__.startswith("BatchNorm"):
            named = {w.name.split("/")[-1]: w for w in layer.all_weights}
            layer.moving_mean, layer.moving_var = named["moving_mean:0"], named["moving_var:0"]


def tl_net(h5_path=HERE / H5):
    net = build_tl_net()
    load_h5_weights(net, h5_path)
    return net


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Convert the seed's CIFAR-10 network to ./cifar10.kmodel")
    ap.add_argument("--tl", action="store_true",
                    help="pass a TensorLayer network object (needs tensorflow + tensorlayer) instead of the path")
    args = ap.parse_args(argv)

    os.chdir(HERE)
    try:
        import emcgen as emc
    except ImportError:                       # a clone that was not pip-installed
        sys.path.insert(0, str(HERE.parents[1]))
        import emcgen as emc

    if args.tl:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        net = tl_net("./" + H5)
    else:
        net = "./" + H5

    emc.save_kmodel(net, './cifar10.kmodel', './cifar10_dataset', dataset_func='img_0_1',
                    quant_func='minmax', quant_bit=8, version=3)
    print(f"wrote {HERE / 'cifar10.kmodel'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
