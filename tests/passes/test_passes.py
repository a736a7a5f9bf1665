"""Each pass on a two- or three-op graph: the rewrite happens, and the float result does not change.

The unrewritten graph's op references are themselves checked against TensorFlow (tests/ops), so equality
before/after is an independent check of the rewrite.
"""
import numpy as np
import pytest

from emcgen import interpreter, ops
from emcgen.ir import Graph
from emcgen.passes import (
    canonicalize_reshape,
    drop_identity,
    fold_batchnorm,
    fold_pad,
    fuse_activation,
    optimize,
)

rng = np.random.default_rng(0)


def build(chain, in_shape=(1, 8, 8, 3)):
    """chain: list of (type, attrs, consts) applied one after the other; returns a Graph."""
    g = Graph("t")
    g.add_tensor("x", in_shape)
    g.inputs = ["x"]
    cur = "x"
    for i, (typ, attrs, consts) in enumerate(chain):
        names = [g.add_const(f"c{i}_{k}", v) if v is not None else "" for k, v in enumerate(consts)]
        out = f"t{i}"
        g.add_tensor(out, (1,))
        g.add_op(typ, f"op{i}", [cur] + names, [out], **attrs)
        cur = out
    g.outputs = [cur]
    ops.infer_shapes(g)
    g.validate()
    return g


def same_result(a, b, shape=(4, 8, 8, 3)):
    x = rng.standard_normal(shape).astype(np.float32)
    ya = interpreter.run(a, x)[a.outputs[0]]
    yb = interpreter.run(b, x)[b.outputs[0]]
    np.testing.assert_allclose(ya, yb, rtol=1e-5, atol=1e-5)


def bn_consts(c):
    return [rng.uniform(0.5, 1.5, c).astype("f4"), rng.standard_normal(c).astype("f4"),
            rng.standard_normal(c).astype("f4"), rng.uniform(0.1, 2.0, c).astype("f4")]


def conv(cout=4, cin=3, bias=True, **attrs):
    w = rng.standard_normal((3, 3, cin, cout)).astype("f4")
    b = rng.standard_normal(cout).astype("f4") if bias else None
    return ("conv2d", {"stride": (1, 1), "pads": (1, 1, 1, 1), **attrs}, [w, b])


@pytest.mark.parametrize("bias", [True, False])
def test_fold_batchnorm_into_conv(bias):
    g = build([conv(bias=bias), ("batch_norm", {"epsilon": 1e-3, "activation": "relu6"}, bn_consts(4))])
    f = fold_batchnorm(g)
    assert [op.type for op in f.ops] == ["conv2d"]
    assert f.ops[0].attrs["activation"] == "relu6"
    same_result(g, f)


def test_fold_batchnorm_into_depthwise_with_multiplier():
    w = rng.standard_normal((3, 3, 3, 2)).astype("f4")
    g = build([("depthwise_conv2d", {"pads": (1, 1, 1, 1)}, [w, None]),
               ("batch_norm", {"epsilon": 1e-5}, bn_consts(6))])
    f = fold_batchnorm(g)
    assert [op.type for op in f.ops] == ["depthwise_conv2d"]
    same_result(g, f)


def test_fold_batchnorm_into_dense():
    w = rng.standard_normal((192, 5)).astype("f4")
    g = build([("reshape", {"shape": (-1,)}, []), ("dense", {}, [w, None]),
               ("batch_norm", {"epsilon": 1e-3}, bn_consts(5))])
    f = fold_batchnorm(g)
    assert [op.type for op in f.ops] == ["reshape", "dense"]
    same_result(g, f)


def test_batchnorm_not_folded_after_activation_or_shared_output():
    g = build([conv(activation="relu"), ("batch_norm", {"epsilon": 1e-3}, bn_consts(4))])
    assert [op.type for op in fold_batchnorm(g).ops] == ["conv2d", "batch_norm"]
    g2 = build([conv(), ("batch_norm", {"epsilon": 1e-3}, bn_consts(4))])
    g2.outputs.append("t0")            # the conv output is also a graph output: must stay unscaled
    f2 = fold_batchnorm(g2)
    assert [op.type for op in f2.ops] == ["conv2d", "batch_norm"]


def test_fuse_activation():
    g = build([conv(), ("activation", {"function": "leaky_relu", "alpha": 0.1}, [])])
    f = fuse_activation(g)
    assert [op.type for op in f.ops] == ["conv2d"]
    assert f.ops[0].attrs["activation"] == "leaky_relu" and f.ops[0].attrs["alpha"] == 0.1
    same_result(g, f)


def test_fuse_activation_keeps_existing_one():
    g = build([conv(activation="relu"), ("activation", {"function": "sigmoid"}, [])])
    assert [op.type for op in fuse_activation(g).ops] == ["conv2d", "activation"]


def test_drop_identity_and_linear_activation():
    g = build([("identity", {}, []), conv(), ("activation", {"function": "linear"}, []), ("identity", {}, [])])
    f = drop_identity(g)
    assert [op.type for op in f.ops] == ["conv2d"]
    assert f.outputs == [f.ops[0].outputs[0]]
    same_result(g, f)


def test_fold_zero_pad_into_stride2_valid_conv():
    g = build([("pad", {"pads": (1, 1, 1, 1)}, []), conv(stride=(2, 2), pads=(0, 0, 0, 0))])
    f = fold_pad(g)
    assert [op.type for op in f.ops] == ["conv2d"]
    assert f.ops[0].attrs["pads"] == (1, 1, 1, 1)
    same_result(g, f)


def test_pad_not_folded_into_pool_or_nonzero():
    g = build([("pad", {"pads": (1, 1, 1, 1)}, []), ("max_pool2d", {"kernel": (2, 2), "stride": (2, 2)}, [])])
    assert [op.type for op in fold_pad(g).ops] == ["pad", "max_pool2d"]
    g2 = build([("pad", {"pads": (1, 1, 1, 1), "value": 1.0}, []), conv(pads=(0, 0, 0, 0))])
    assert [op.type for op in fold_pad(g2).ops] == ["pad", "conv2d"]


def test_canonicalize_reshape_chain_and_noop():
    w = rng.standard_normal((192, 4)).astype("f4")
    g = build([("reshape", {"shape": (-1,)}, []), ("reshape", {"shape": (192,)}, []),
               ("dense", {}, [w, None]), ("reshape", {"shape": (4,)}, [])])
    f = canonicalize_reshape(g)
    assert [op.type for op in f.ops] == ["reshape", "dense"]
    same_result(g, f)


def test_default_pipeline_end_to_end():
    g = build([("identity", {}, []), ("pad", {"pads": (1, 1, 1, 1)}, []),
               conv(pads=(0, 0, 0, 0), stride=(2, 2), bias=False),
               ("batch_norm", {"epsilon": 1e-3}, bn_consts(4)), ("activation", {"function": "relu"}, []),
               ("reshape", {"shape": (-1,)}, []), ("dense", {}, [rng.standard_normal((64, 3)).astype("f4"), None])])
    f = optimize(g)
    assert [op.type for op in f.ops] == ["conv2d", "reshape", "dense"]
    assert f.ops[0].attrs["activation"] == "relu"
    same_result(g, f)
    # the input graph is untouched (passes return copies)
    assert [op.type for op in g.ops][:3] == ["identity", "pad", "conv2d"]
