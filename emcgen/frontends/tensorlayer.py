"""TensorLayer 2.x static models -> IR, from an in-memory `tl.models.Model` or from a `Model.save` .h5 file.

Both paths produce the same records (layer class, constructor args as in TensorLayer's `layer.config`,
weights by short name, input layers), and one converter table below turns them into ops. The .h5 reader
(tensorlayer_h5.py) needs neither TensorFlow nor TensorLayer: TensorLayer's own loader is broken with
h5py 3, and the architecture is a Python literal that ast can read. Only the in-memory path touches
TensorFlow, and only to identify an activation that is not a named TensorFlow/TensorLayer function.
"""
from __future__ import annotations

import base64
import binascii
import functools
import pickletools

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..ir import Graph
from ._common import LINEAR, Act, Builder, Record, build_graph, finish, fixed_pads_2d, short_weight_name

FRAMEWORK = "tensorlayer"

# Activation functions by name, as TensorFlow/TensorLayer call them (tf.nn.*, tl.act.*).
_NAMED_ACTS = {
    "identity": LINEAR, "linear": LINEAR, "relu": Act("relu"), "relu6": Act("relu6"),
    "leaky_relu": Act("leaky_relu", 0.2), "lrelu": Act("leaky_relu", 0.2), "sigmoid": Act("sigmoid"),
    "tanh": Act("tanh"), "softmax": Act("softmax"), "softmax_v2": Act("softmax"),
    "hard_tanh": Act("relu_n1_to_1"), "htanh": Act("relu_n1_to_1"),
}
_ACT_SUPPORTED = "identity, relu, relu6, leaky_relu (with alpha), sigmoid, tanh, hard_tanh, softmax"
_ACT_MODULES = ("tensorflow", "tensorlayer", "keras", "tf_keras")


# ---- activations --------------------------------------------------------------------------------------
def _pickled_global(blob: str) -> tuple[str, str] | None:
    """(module, name) when a cloudpickle blob is a plain reference to a module-level function.

    TensorLayer writes non-TensorFlow activations as ('is_Func', base64 cloudpickle). Unpickling would run
    code from the file, so the opcodes are only read: a module function pickles as two strings and a
    STACK_GLOBAL (or one GLOBAL); lambdas and closures pickle their code and are refused.
    """
    try:
        data = base64.b64decode(blob, validate=True)
        ops = [(op.name, arg) for op, arg, _ in pickletools.genops(data)]
    except (binascii.Error, ValueError, TypeError):
        return None
    ops = [(n, a) for n, a in ops if n not in ("PROTO", "FRAME", "MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT",
                                               "STOP")]
    if len(ops) == 1 and ops[0][0] == "GLOBAL":
        module, _, name = str(ops[0][1]).partition(" ")
        return module, name
    if len(ops) == 3 and ops[2][0] == "STACK_GLOBAL" and all("UNICODE" in n for n, _ in ops[:2]):
        return str(ops[0][1]), str(ops[1][1])
    return None


def _named_act(rec: Record, name: str) -> Act:
    act = _NAMED_ACTS.get(name)
    if act is None:
        raise rec.fail(f"activation {name!r} is not supported", _ACT_SUPPORTED)
    return act


def _probe_act(rec: Record, fn) -> Act:
    """Identify an arbitrary in-memory activation callable by evaluating it on probe values."""
    import tensorflow as tf  # in-memory path only: the caller already has TensorFlow loaded

    from ..ops._common import apply_activation
    x = np.array([[-6.5, -3.0, -1.0, -0.25, 0.0, 0.25, 1.0, 3.0, 6.5]], np.float32)
    try:
        y = np.asarray(fn(tf.constant(x)), dtype=np.float32)
    except Exception as exc:  # user code: any failure means "cannot identify"
        raise rec.fail(f"activation {fn!r} could not be evaluated ({exc})", _ACT_SUPPORTED) from None
    e = np.exp(x - x.max())
    candidates = [LINEAR, Act("relu"), Act("relu6"), Act("sigmoid"), Act("tanh"), Act("relu_n1_to_1")]
    slope = float(y[0, 2] / x[0, 2])
    if 0.0 < slope < 1.0:
        candidates.append(Act("leaky_relu", slope))
    if y.shape == x.shape:
        if np.allclose(y, e / e.sum(), atol=1e-6):
            return Act("softmax")
        for c in candidates:
            if np.allclose(y, apply_activation(x, c.name, c.alpha), atol=1e-6, rtol=1e-5):
                return c
    raise rec.fail(f"activation {getattr(fn, '__name__', fn)!r} is not one emcgen knows", _ACT_SUPPORTED)


def _activation(rec: Record) -> Act:
    """The record's 'act': None, a TF function name, ('is_Func', pickle) from a file, or a callable."""
    act = rec.config.get("act")
    if act is None:
        return LINEAR
    if isinstance(act, str):
        return _named_act(rec, act)
    if isinstance(act, tuple | list) and len(act) == 2 and act[0] == "is_Func":
        ref = _pickled_global(act[1])
        if ref is None:
            raise rec.fail("the activation is a lambda or closure, which a saved file cannot describe "
                           "without running its code; use a named function (tl.act.leaky_relu, tf.nn.relu6, "
                           "...) or pass the model object", _ACT_SUPPORTED)
        module, name = ref
        if not module.startswith(_ACT_MODULES):
            raise rec.fail(f"activation {module}.{name} is not supported", _ACT_SUPPORTED)
        return _named_act(rec, name)
    if callable(act):
        if isinstance(act, functools.partial) and not act.args:
            base = _callable_act(rec, act.func)
            kw = dict(act.keywords)
            if base.name == "leaky_relu" and set(kw) <= {"alpha", "name"}:
                return Act("leaky_relu", float(kw.get("alpha", base.alpha)))
            if not set(kw) - {"name"}:
                return base
            return _probe_act(rec, act)
        return _callable_act(rec, act)
    raise rec.fail(f"activation {act!r} is not understood", _ACT_SUPPORTED)


def _callable_act(rec: Record, fn) -> Act:
    module = getattr(fn, "__module__", "") or ""
    name = getattr(fn, "__name__", "")
    if module.startswith(_ACT_MODULES) and name in _NAMED_ACTS:
        return _NAMED_ACTS[name]
    return _probe_act(rec, fn)


# ---- converters ---------------------------------------------------------------------------------------
def _check_channels_last(rec: Record) -> None:
    fmt = str(rec.config.get("data_format", "channels_last")).lower()
    if fmt not in ("channels_last", "channel_last", "nhwc", "nwc", "none"):
        raise rec.fail(f"data_format {rec.config.get('data_format')!r} is not supported", "channels_last (NHWC)")


def _one(rec: Record, ins: list[str]) -> str:
    if len(ins) != 1:
        raise rec.fail(f"has {len(ins)} inputs; one is expected")
    return ins[0]


def _conv(b: Builder, rec: Record, ins: list[str]) -> str:
    _check_channels_last(rec)
    c = rec.config
    return b.conv2d(_one(rec, ins), rec.weight("filters", "kernel"), rec.weight("biases", "bias", required=False),
                    c.get("strides", (1, 1)), c.get("padding", "SAME"), c.get("dilation_rate", (1, 1)),
                    _activation(rec))


def _depthwise(b: Builder, rec: Record, ins: list[str]) -> str:
    _check_channels_last(rec)
    c = rec.config
    return b.depthwise_conv2d(_one(rec, ins), rec.weight("filters", "depthwise_kernel", "kernel"),
                              rec.weight("biases", "bias", required=False), c.get("strides", (1, 1)),
                              c.get("padding", "SAME"), c.get("dilation_rate", (1, 1)), _activation(rec))


def _separable(b: Builder, rec: Record, ins: list[str]) -> str:
    _check_channels_last(rec)
    c = rec.config
    y = b.depthwise_conv2d(_one(rec, ins), rec.weight("depthwise_kernel"), None, c.get("strides", (1, 1)),
                           c.get("padding", "valid"), c.get("dilation_rate", (1, 1)))
    return b.conv2d(y, rec.weight("pointwise_kernel"), rec.weight("bias", "biases", required=False),
                    (1, 1), "valid", (1, 1), _activation(rec))


def _batch_norm(b: Builder, rec: Record, ins: list[str]) -> str:
    _check_channels_last(rec)
    # looked up by variable name: TensorLayer keeps beta before gamma, Keras the other way round
    return b.batch_norm(_one(rec, ins), rec.weight("gamma", required=False), rec.weight("beta", required=False),
                        rec.weight("moving_mean"), rec.weight("moving_var", "moving_variance"),
                        rec.config.get("epsilon", 1e-5), _activation(rec))


def _pool(kind):
    def convert(b: Builder, rec: Record, ins: list[str]) -> str:
        _check_channels_last(rec)
        c = rec.config
        k = c.get("filter_size", (3, 3))
        return b.pool2d(_one(rec, ins), kind, k, c.get("strides") or k, c.get("padding", "SAME"))
    return convert


def _global_pool(kind):
    def convert(b: Builder, rec: Record, ins: list[str]) -> str:
        _check_channels_last(rec)
        return b.global_pool(_one(rec, ins), kind)
    return convert


def _dense(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.dense(_one(rec, ins), rec.weight("weights", "kernel"), rec.weight("biases", "bias", required=False),
                   _activation(rec))


def _flatten(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.reshape(_one(rec, ins), (-1,))


def _reshape(b: Builder, rec: Record, ins: list[str]) -> str:
    shape = list(rec.config.get("shape") or [])
    if not shape:
        raise rec.fail("has no target shape")
    # TensorLayer's shape includes the batch dimension (-1 or None, or a fixed batch)
    return b.reshape(_one(rec, ins), shape[1:])


def _identity(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.op("identity", [_one(rec, ins)])


def _zero_pad(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.pad(_one(rec, ins), fixed_pads_2d(rec.config.get("padding"), rec))


def _concat(b: Builder, rec: Record, ins: list[str]) -> str:
    axis = int(rec.config.get("concat_dim", -1))
    ranks = {len(b.shape(x)) for x in ins}
    if len(ranks) != 1:
        raise rec.fail("inputs have different ranks")
    return b.op("concat", ins, axis=axis)


_COMBINE = {"add": "add", "multiply": "mul", "mul": "mul", "subtract": "sub", "sub": "sub"}


def _elementwise(b: Builder, rec: Record, ins: list[str]) -> str:
    fn = rec.config.get("combine_fn", "minimum")
    if callable(fn):
        fn = getattr(fn, "__name__", repr(fn))
    if not isinstance(fn, str) or fn not in _COMBINE:
        shown = fn if isinstance(fn, str) else "a custom function"
        raise rec.fail(f"combine_fn {shown!r} is not supported", "tf.add, tf.multiply, tf.subtract")
    shapes = {b.shape(x) for x in ins}
    if len(shapes) != 1:
        raise rec.fail(f"inputs have different shapes {sorted(shapes)}")
    return b.activate(b.op(_COMBINE[fn], ins), _activation(rec))


def _upsample(b: Builder, rec: Record, ins: list[str]) -> str:
    c = rec.config
    _check_channels_last(rec)
    method = str(c.get("method", "bilinear")).lower()
    if method != "nearest":
        raise rec.fail(f"method {method!r} is not supported", "nearest")
    scale = c.get("scale", 2)
    scale = (scale, scale) if isinstance(scale, int | float) else tuple(scale)
    return b.upsample_nearest(_one(rec, ins), scale)


def _input(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.input(rec, rec.config.get("shape") or ())


TABLE = {
    "_InputLayer": _input, "Input": _input,
    "Conv2d": _conv, "DepthwiseConv2d": _depthwise, "SeparableConv2d": _separable,
    "BatchNorm": _batch_norm, "BatchNorm1d": _batch_norm, "BatchNorm2d": _batch_norm,
    "MaxPool2d": _pool("max_pool2d"), "MeanPool2d": _pool("avg_pool2d"),
    "GlobalMaxPool2d": _global_pool("global_max_pool"), "GlobalMeanPool2d": _global_pool("global_avg_pool"),
    "Dense": _dense, "Flatten": _flatten, "Reshape": _reshape, "Dropout": _identity,
    "ZeroPad2d": _zero_pad, "Concat": _concat, "Elementwise": _elementwise, "UpSampling2d": _upsample,
}


# ---- records from TensorLayer's config (file) ---------------------------------------------------------
def _node_names(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    for v in value:
        out.extend(_node_names(v))
    return out


def records_from_config(config: dict, weights: dict[str, dict[str, np.ndarray]],
                        source: str) -> tuple[list[Record], list[str], list[str]]:
    """Records, input and output record names from a TensorLayer model config (`Model.config`).

    weights: {layer name: {short weight name: array}}. A layer called k times gives k records; the node
    named '<layer>_node_<k>' becomes record '<layer>' (k = 0) or '<layer>:<k>'.
    """
    try:
        arch = config["model_architecture"]
    except (KeyError, TypeError):
        raise FormatError(f"{source}: no 'model_architecture' in the TensorLayer model config") from None
    node_to_record: dict[str, str] = {}
    records: list[Record] = []
    for entry in arch:
        try:
            kind, args = entry["class"], dict(entry.get("args") or {})
            name = args["name"]
        except (KeyError, TypeError):
            raise FormatError(f"{source}: a layer entry of the TensorLayer config is malformed") from None
        prev = entry.get("prev_layer")
        calls = [None] if prev is None else list(prev)
        for k, call in enumerate(calls):
            rec_name = name if k == 0 else f"{name}:{k}"
            node_to_record[f"{name}_node_{k}"] = rec_name
            inputs = []
            for node in _node_names(call):
                if node not in node_to_record:
                    raise FormatError(f"{source}: layer {name!r} reads {node!r}, which comes later or not at all")
                inputs.append(node_to_record[node])
            records.append(Record(rec_name, kind, args, weights.get(name, {}), inputs))

    def resolve(nodes):
        names = []
        for n in _node_names(nodes):
            if n not in node_to_record:
                raise FormatError(f"{source}: model input/output {n!r} is not a layer node of the config")
            names.append(node_to_record[n])
        return names

    return records, resolve(config.get("inputs")), resolve(config.get("outputs"))


def graph_from_records(records, inputs, outputs, *, name: str, meta: dict) -> Graph:
    kinds = {r.name: r.kind for r in records}
    for n in inputs:
        if kinds.get(n) not in ("_InputLayer", "Input"):
            raise UnsupportedError(f"model input {n!r} is a {kinds.get(n)} layer, not an Input layer")
    g = build_graph(records, TABLE, name=name, inputs=inputs, outputs=outputs, framework="TensorLayer")
    return finish(g, {"framework": FRAMEWORK, **meta})


# ---- in-memory models -----------------------------------------------------------------------------------
def from_object(model, *, name: str | None = None) -> Graph:
    """Walk a static `tl.models.Model(inputs=..., outputs=...)` (its layer nodes) into the IR."""
    if getattr(model, "_outputs", None) is None or getattr(model, "_inputs", None) is None:
        raise UnsupportedError(
            f"TensorLayer model {getattr(model, 'name', '?')!r} is dynamic (a Model subclass with forward()); "
            "only static models built as tl.models.Model(inputs=..., outputs=...) can be read")
    nodes = [n for depth in (getattr(model, "_node_by_depth", None) or []) for n in depth]
    if not nodes:
        nodes = [n for layer in model.all_layers for n in layer._nodes]
    counts: dict[str, int] = {}
    for n in nodes:
        counts[n.layer.name] = counts.get(n.layer.name, 0) + 1
    node_to_record = {}
    for n in nodes:
        k = int(getattr(n, "node_index", 0))
        node_to_record[n.name] = n.layer.name if k == 0 else f"{n.layer.name}:{k}"

    records = []
    weight_cache: dict[int, dict[str, np.ndarray]] = {}
    for n in nodes:
        layer = n.layer
        kind = type(layer).__name__
        if kind == "ModelLayer":
            raise UnsupportedError(f"layer {layer.name!r} (ModelLayer): nested models are not supported; "
                                   "build one flat static model")
        if id(layer) not in weight_cache:
            weight_cache[id(layer)] = {short_weight_name(w.name): np.asarray(w.numpy())
                                       for w in (layer.all_weights or [])}
        args = dict(getattr(layer, "layer_args", {}) or {})
        for attr in ("act", "combine_fn"):          # the live callables, not their serialized form
            if hasattr(layer, attr):
                args[attr] = getattr(layer, attr)
        args.setdefault("name", layer.name)
        inputs = [node_to_record[i.name] for i in (n.in_nodes or [])]
        records.append(Record(node_to_record[n.name], kind, args, weight_cache[id(layer)], inputs))

    def names(tensors):
        ts = tensors if isinstance(tensors, list) else [tensors]
        return [node_to_record[t._info[0].name] for t in ts]

    import tensorlayer as tl  # the object exists, so TensorLayer is already imported
    meta = {"source": None, "source_format": "object", "framework_version": getattr(tl, "__version__", None)}
    return graph_from_records(records, names(model._inputs), names(model._outputs),
                              name=name or getattr(model, "name", None) or "model", meta=meta)
