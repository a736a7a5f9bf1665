"""Keras models (functional and Sequential; Keras 2 and 3) -> IR.

Every source is reduced to a Keras model config (the JSON of `model.get_config()` / `model_config` /
`config.json`) plus weights by layer and short name; `records_from_config` turns that into records and the
converter table below into ops. keras_files.py reads .h5 and .keras files with h5py and json only; the
in-memory path here (`from_object`) reads the live model's config and variables.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import FormatError, UnsupportedError
from ..ir import Graph
from ._common import LINEAR, Act, Builder, Record, build_graph, finish, fixed_pads_2d, short_weight_name

FRAMEWORK = "keras"
_MAJOR = "__keras_major__"        # injected into every record's config: Keras 2 and 3 differ in places
_NESTED = ("Functional", "Sequential", "Model")

_ACTS = {None: LINEAR, "linear": LINEAR, "relu": Act("relu"), "relu6": Act("relu6"), "sigmoid": Act("sigmoid"),
         "tanh": Act("tanh"), "softmax": Act("softmax"), "leaky_relu": Act("leaky_relu", 0.2)}
_ACT_SUPPORTED = "linear, relu, relu6, leaky_relu, sigmoid, tanh, softmax, hard_sigmoid (Keras 3)"


# ---- activations --------------------------------------------------------------------------------------
def _act_by_name(rec: Record, value) -> Act:
    if isinstance(value, dict):       # Keras 3 serializes some functions as {"class_name": "function", ...}
        if value.get("class_name") == "function" and isinstance(value.get("config"), str):
            value = value["config"]
        else:
            raise rec.fail(f"activation {value.get('class_name')!r} is not supported", _ACT_SUPPORTED)
    if value == "hard_sigmoid":
        # Keras 3: relu6(x + 3) / 6 (the IR's hard_sigmoid); Keras 2: clip(0.2 x + 0.5, 0, 1)
        if rec.config.get(_MAJOR, 3) >= 3:
            return Act("hard_sigmoid")
        raise rec.fail("Keras 2's hard_sigmoid (0.2 x + 0.5) is not supported", _ACT_SUPPORTED)
    act = _ACTS.get(value)
    if act is None:
        raise rec.fail(f"activation {value!r} is not supported", _ACT_SUPPORTED)
    return act


def _activation(rec: Record) -> Act:
    return _act_by_name(rec, rec.config.get("activation"))


# ---- converters ---------------------------------------------------------------------------------------
def _one(rec: Record, ins: list[str]) -> str:
    if len(ins) != 1:
        raise rec.fail(f"has {len(ins)} inputs; one is expected")
    return ins[0]


def _channels_last(rec: Record) -> None:
    fmt = rec.config.get("data_format") or "channels_last"
    if fmt != "channels_last":
        raise rec.fail(f"data_format {fmt!r} is not supported", "channels_last")


def _padding(rec: Record) -> str:
    p = str(rec.config.get("padding", "valid")).lower()
    if p not in ("same", "valid"):
        raise rec.fail(f"padding {p!r} is not supported", "same, valid")
    return p


def _bias(rec: Record):
    return rec.weight("bias") if rec.config.get("use_bias", True) else None


def _input(b: Builder, rec: Record, ins: list[str]) -> str:
    c = rec.config
    shape = c.get("batch_shape") or c.get("batch_input_shape")
    if shape is None and c.get("shape") is not None:
        shape = [None] + list(c["shape"])
    if shape is None:
        raise rec.fail("has no input shape")
    return b.input(rec, shape)


def _conv(b: Builder, rec: Record, ins: list[str]) -> str:
    _channels_last(rec)
    c = rec.config
    if int(c.get("groups", 1) or 1) != 1:
        raise rec.fail(f"groups={c['groups']} is not supported", "groups=1")
    return b.conv2d(_one(rec, ins), rec.weight("kernel"), _bias(rec), c.get("strides", 1), _padding(rec),
                    c.get("dilation_rate", 1), _activation(rec))


def _depthwise(b: Builder, rec: Record, ins: list[str]) -> str:
    _channels_last(rec)
    c = rec.config
    # Keras 2 names the kernel depthwise_kernel, Keras 3 kernel; both are (KH, KW, C, MULT)
    return b.depthwise_conv2d(_one(rec, ins), rec.weight("depthwise_kernel", "kernel"), _bias(rec),
                              c.get("strides", 1), _padding(rec), c.get("dilation_rate", 1), _activation(rec))


def _separable(b: Builder, rec: Record, ins: list[str]) -> str:
    _channels_last(rec)
    c = rec.config
    y = b.depthwise_conv2d(_one(rec, ins), rec.weight("depthwise_kernel"), None, c.get("strides", 1),
                           _padding(rec), c.get("dilation_rate", 1))
    return b.conv2d(y, rec.weight("pointwise_kernel"), _bias(rec), 1, "valid", 1, _activation(rec))


def _dense(b: Builder, rec: Record, ins: list[str]) -> str:
    x = _one(rec, ins)
    kernel = rec.weight("kernel")
    rank = len(b.shape(x))
    if rank == 4:   # Keras applies Dense to the last axis: a 1x1 convolution
        return b.conv2d(x, kernel.reshape((1, 1) + kernel.shape), _bias(rec), 1, "valid", 1, _activation(rec))
    if rank != 2:
        raise rec.fail(f"input has shape {b.shape(x)}; Dense is supported on rank-2 and NHWC inputs")
    return b.dense(x, kernel, _bias(rec), _activation(rec))


def _batch_norm(b: Builder, rec: Record, ins: list[str]) -> str:
    x = _one(rec, ins)
    c = rec.config
    rank = len(b.shape(x))
    axis = c.get("axis", -1)
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    if not isinstance(axis, int) or axis % rank != rank - 1:
        raise rec.fail(f"axis {c.get('axis')!r} is not supported", "the last (channel) axis")
    gamma = rec.weight("gamma") if c.get("scale", True) else None
    beta = rec.weight("beta") if c.get("center", True) else None
    return b.batch_norm(x, gamma, beta, rec.weight("moving_mean"), rec.weight("moving_variance"),
                        c.get("epsilon", 1e-3))


def _pool(kind):
    def convert(b: Builder, rec: Record, ins: list[str]) -> str:
        _channels_last(rec)
        c = rec.config
        k = c.get("pool_size", 2)
        return b.pool2d(_one(rec, ins), kind, k, c.get("strides") or k, _padding(rec))
    return convert


def _global_pool(kind):
    def convert(b: Builder, rec: Record, ins: list[str]) -> str:
        _channels_last(rec)
        return b.global_pool(_one(rec, ins), kind, rec.config.get("keepdims", False))
    return convert


def _zero_pad(b: Builder, rec: Record, ins: list[str]) -> str:
    _channels_last(rec)
    return b.pad(_one(rec, ins), fixed_pads_2d(rec.config.get("padding", 1), rec))


def _flatten(b: Builder, rec: Record, ins: list[str]) -> str:
    _channels_last(rec)
    return b.reshape(_one(rec, ins), (-1,))


def _reshape(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.reshape(_one(rec, ins), list(rec.config.get("target_shape") or []))


def _identity(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.op("identity", [_one(rec, ins)])


def _activation_layer(b: Builder, rec: Record, ins: list[str]) -> str:
    return b.activate(_one(rec, ins), _activation(rec))


def _relu(b: Builder, rec: Record, ins: list[str]) -> str:
    c = rec.config
    max_value, slope = c.get("max_value"), float(c.get("negative_slope") or 0.0)
    if float(c.get("threshold") or 0.0) != 0.0:
        raise rec.fail(f"threshold={c['threshold']} is not supported", "threshold 0")
    if max_value is None:
        act = Act("leaky_relu", slope) if slope else Act("relu")
    elif float(max_value) == 6.0 and slope == 0.0:
        act = Act("relu6")
    else:
        raise rec.fail(f"max_value={max_value} with negative_slope={slope} is not supported",
                       "max_value None or 6 (relu6 without slope)")
    return b.activate(_one(rec, ins), act)


def _leaky_relu(b: Builder, rec: Record, ins: list[str]) -> str:
    c = rec.config
    slope = c.get("negative_slope", c.get("alpha", 0.3))
    return b.activate(_one(rec, ins), Act("leaky_relu", float(slope)))


def _softmax(b: Builder, rec: Record, ins: list[str]) -> str:
    x = _one(rec, ins)
    axis = rec.config.get("axis", -1)
    axis = axis[0] if isinstance(axis, list | tuple) and len(axis) == 1 else axis
    if not isinstance(axis, int) or axis % len(b.shape(x)) != len(b.shape(x)) - 1:
        raise rec.fail(f"axis {rec.config.get('axis')!r} is not supported", "the last axis")
    return b.op("softmax", [x])


def _merge(kind):
    def convert(b: Builder, rec: Record, ins: list[str]) -> str:
        if len(ins) < 2 or (kind == "sub" and len(ins) != 2):
            raise rec.fail(f"has {len(ins)} inputs")
        return b.op(kind, ins)
    return convert


def _concat(b: Builder, rec: Record, ins: list[str]) -> str:
    if len({len(b.shape(x)) for x in ins}) != 1:
        raise rec.fail("inputs have different ranks")
    return b.op("concat", ins, axis=int(rec.config.get("axis", -1)))


def _upsample(b: Builder, rec: Record, ins: list[str]) -> str:
    _channels_last(rec)
    interp = str(rec.config.get("interpolation", "nearest")).lower()
    if interp != "nearest":
        raise rec.fail(f"interpolation {interp!r} is not supported", "nearest")
    size = rec.config.get("size", 2)
    size = (size, size) if isinstance(size, int) else tuple(size)
    return b.upsample_nearest(_one(rec, ins), size)


def _rescaling(b: Builder, rec: Record, ins: list[str]) -> str:
    x = _one(rec, ins)
    scale = np.asarray(rec.config.get("scale", 1.0), np.float32)
    offset = np.asarray(rec.config.get("offset", 0.0), np.float32)
    if not np.any(scale != 1) and not np.any(offset != 0):
        return b.op("identity", [x])
    if np.any(scale != 1):
        x = b.op("mul", [x, b.const("scale", scale)])
    if np.any(offset != 0):
        x = b.op("add", [x, b.const("offset", offset)])
    return x


TABLE: dict[str, Callable] = {
    "InputLayer": _input,
    "Conv2D": _conv, "Convolution2D": _conv, "DepthwiseConv2D": _depthwise,
    "SeparableConv2D": _separable, "SeparableConvolution2D": _separable,
    "Dense": _dense, "BatchNormalization": _batch_norm,
    "MaxPooling2D": _pool("max_pool2d"), "MaxPool2D": _pool("max_pool2d"),
    "AveragePooling2D": _pool("avg_pool2d"), "AvgPool2D": _pool("avg_pool2d"),
    "GlobalAveragePooling2D": _global_pool("global_avg_pool"), "GlobalAvgPool2D": _global_pool("global_avg_pool"),
    "GlobalMaxPooling2D": _global_pool("global_max_pool"), "GlobalMaxPool2D": _global_pool("global_max_pool"),
    "ZeroPadding2D": _zero_pad, "Flatten": _flatten, "Reshape": _reshape,
    "Dropout": _identity, "SpatialDropout2D": _identity, "GaussianNoise": _identity,
    "GaussianDropout": _identity, "AlphaDropout": _identity, "ActivityRegularization": _identity,
    "Activation": _activation_layer, "ReLU": _relu, "LeakyReLU": _leaky_relu, "Softmax": _softmax,
    "Add": _merge("add"), "Multiply": _merge("mul"), "Subtract": _merge("sub"), "Concatenate": _concat,
    "UpSampling2D": _upsample, "Rescaling": _rescaling,
}

# .keras files store variables by index: their order, as Keras 3 creates them in build()
_VAR_ORDER: dict[str, Callable[[dict], list[str]]] = {
    "Conv2D": lambda c: ["kernel"] + (["bias"] if c.get("use_bias", True) else []),
    "DepthwiseConv2D": lambda c: ["kernel"] + (["bias"] if c.get("use_bias", True) else []),
    "SeparableConv2D": lambda c: ["depthwise_kernel", "pointwise_kernel"] + (["bias"] if c.get("use_bias", True)
                                                                              else []),
    "Dense": lambda c: ["kernel"] + (["bias"] if c.get("use_bias", True) else []),
    "BatchNormalization": lambda c: (["gamma"] if c.get("scale", True) else [])
    + (["beta"] if c.get("center", True) else []) + ["moving_mean", "moving_variance"],
}
_VAR_ORDER["Convolution2D"] = _VAR_ORDER["Conv2D"]
_VAR_ORDER["SeparableConvolution2D"] = _VAR_ORDER["SeparableConv2D"]


def var_names(class_name: str, config: dict, count: int, where: str) -> list[str]:
    """Short names of a layer's `count` variables stored by index (Keras 3 .keras files)."""
    order = _VAR_ORDER.get(class_name)
    if order is None:
        return [f"var{i}" for i in range(count)]
    names = order(config)
    if len(names) != count:
        raise FormatError(f"{where}: layer {config.get('name')!r} ({class_name}) has {count} variables; "
                          f"expected {len(names)} ({', '.join(names)})")
    return names


# ---- records from a model config ---------------------------------------------------------------------
def _tensor_refs(value) -> list[tuple[str, int, int]]:
    """Keras-3 inbound args: every {'class_name': '__keras_tensor__', ...} -> (layer, node, tensor)."""
    out = []
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            layer, node, tensor = value["config"]["keras_history"]
            return [(layer, int(node), int(tensor))]
        for v in value.values():
            out.extend(_tensor_refs(v))
    elif isinstance(value, list | tuple):
        for v in value:
            out.extend(_tensor_refs(v))
    return out


def _node_inputs(node) -> list[tuple[str, int, int]]:
    if isinstance(node, dict):                                   # Keras 3
        return _tensor_refs(node.get("args", []))
    return [(str(e[0]), int(e[1]), int(e[2])) for e in node]     # Keras 2: [[name, node, tensor, kwargs]]


def _endpoints(value) -> list[tuple[str, int, int]]:
    if not value:
        return []
    if isinstance(value[0], str):
        value = [value]
    return [(str(v[0]), int(v[1]), int(v[2])) for v in value]


def model_layers(model_config: dict, where: str) -> tuple[str, list[dict]]:
    """(class name, layer entries) of a Keras model config {'class_name': ..., 'config': ...}."""
    kind = model_config.get("class_name")
    config = model_config.get("config")
    if kind not in _NESTED:
        raise UnsupportedError(f"{where}: a Keras {kind!r} model cannot be read; build a functional or "
                               "Sequential model")
    layers = config if isinstance(config, list) else (config or {}).get("layers")
    if not isinstance(layers, list):
        raise FormatError(f"{where}: the Keras model config has no layer list")
    return ("Sequential" if kind == "Sequential" else "Functional"), layers


def layer_name(entry: dict) -> str:
    return entry.get("name") or (entry.get("config") or {}).get("name")


def records_from_config(model_config: dict, weights_of: Callable[[str], dict[str, np.ndarray]], *,
                        where: str, keras_major: int) -> tuple[list[Record], list[str], list[str]]:
    """Records (topologically ordered), input and output record names of a Keras model config."""
    kind, layers = model_layers(model_config, where)
    config = model_config.get("config")
    records: list[Record] = []

    def make(entry, rec_name, inputs):
        cls = entry.get("class_name")
        cfg = dict(entry.get("config") or {})
        if cls in _NESTED:
            raise UnsupportedError(f"layer {layer_name(entry)!r} ({cls}): nested models are not supported; "
                                   "build one flat model")
        cfg[_MAJOR] = keras_major
        return Record(rec_name, cls, cfg, weights_of(layer_name(entry)), inputs)

    if kind == "Sequential":
        if not layers:
            raise FormatError(f"{where}: the Sequential model has no layers")
        first = layers[0]
        if first.get("class_name") != "InputLayer":
            fc = first.get("config") or {}
            shape = (fc.get("batch_input_shape") or fc.get("batch_shape")
                     or (config.get("build_input_shape") if isinstance(config, dict) else None))
            if shape is None:
                raise UnsupportedError(f"{where}: the Sequential model has no input shape; build it first")
            name = f"{layer_name(first)}_input"
            records.append(Record(name, "InputLayer", {"batch_shape": list(shape), _MAJOR: keras_major}))
        for entry in layers:
            records.append(make(entry, layer_name(entry), [records[-1].name] if records else []))
        return records, [records[0].name], [records[-1].name]

    def rec_name(layer, node):
        return layer if node == 0 else f"{layer}:{node}"

    for entry in layers:
        name = layer_name(entry)
        nodes = entry.get("inbound_nodes") or []
        if entry.get("class_name") == "InputLayer" or not nodes:
            records.append(make(entry, name, []))
            continue
        for k, node in enumerate(nodes):
            refs = _node_inputs(node)
            for layer, _, tensor in refs:
                if tensor != 0:
                    raise UnsupportedError(f"layer {name!r} reads output {tensor} of the multi-output layer "
                                           f"{layer!r}; multi-output layers are not supported")
            records.append(make(entry, rec_name(name, k), [rec_name(r[0], r[1]) for r in refs]))
    records = _toposort(records, where)
    ins = [rec_name(n, k) for n, k, _ in _endpoints(config.get("input_layers"))]
    outs = [rec_name(n, k) for n, k, _ in _endpoints(config.get("output_layers"))]
    return records, ins, outs


def _toposort(records: list[Record], where: str) -> list[Record]:
    names = {r.name for r in records}
    for r in records:
        for n in r.inputs:
            if n not in names:
                raise FormatError(f"{where}: layer {r.name!r} reads {n!r}, which is not in the model")
    done: set[str] = set()
    out: list[Record] = []
    remaining = list(records)
    while remaining:
        for i, r in enumerate(remaining):
            if all(n in done for n in r.inputs):
                out.append(r)
                done.add(r.name)
                del remaining[i]
                break
        else:
            raise FormatError(f"{where}: the layer graph has a cycle at {remaining[0].name!r}")
    return out


def graph_from_config(model_config: dict, weights_of, *, where: str, keras_major: int, name: str | None,
                      meta: dict) -> Graph:
    records, ins, outs = records_from_config(model_config, weights_of, where=where, keras_major=keras_major)
    kinds = {r.name: r for r in records}
    for n in ins:
        if kinds[n].kind != "InputLayer":
            raise UnsupportedError(f"model input {n!r} is a {kinds[n].kind} layer, not an InputLayer")
    cfg = model_config.get("config")
    model_name = name or (cfg.get("name") if isinstance(cfg, dict) else None) or "model"
    g = build_graph(records, TABLE, name=model_name, inputs=ins, outputs=outs, framework="Keras")
    hints = {}
    for r in records:
        if r.kind == "Rescaling" and r.inputs and kinds[r.inputs[0]].kind == "InputLayer":
            hints["rescaling"] = {"layer": r.name, "scale": np.asarray(r.config.get("scale", 1.0)).tolist(),
                                  "offset": np.asarray(r.config.get("offset", 0.0)).tolist()}
    return finish(g, {"framework": FRAMEWORK, "preprocessing": hints, **meta})


# ---- in-memory models -----------------------------------------------------------------------------------
def from_object(model, *, name: str | None = None) -> Graph:
    """A live Keras model (Keras 3, tf.keras or tf_keras): its config and its variables."""
    class_names = [c.__name__ for c in type(model).__mro__]
    kind = "Sequential" if "Sequential" in class_names else "Functional"
    try:
        config = model.get_config()
    except (NotImplementedError, TypeError, ValueError):
        config = None
    if not isinstance(config, dict) or "layers" not in config:
        raise UnsupportedError(f"Keras model {getattr(model, 'name', '?')!r} ({type(model).__name__}) is "
                               "subclassed and has no layer graph; build a functional or Sequential model")
    by_name = {layer.name: layer for layer in model.layers}

    def weights_of(layer_name: str) -> dict[str, np.ndarray]:
        layer = by_name.get(layer_name)
        if layer is None:
            return {}
        return {short_weight_name(getattr(w, "path", None) or w.name): np.asarray(w.numpy())
                for w in layer.weights}

    module = type(model).__module__.split(".")[0]
    version = None
    try:
        version = __import__(module).__version__
    except (ImportError, AttributeError):
        pass
    major = int(str(version).split(".")[0]) if version and module == "keras" else 2
    meta = {"source": None, "source_format": "object", "framework_version": version}
    return graph_from_config({"class_name": kind, "config": config}, weights_of, where=f"Keras model "
                             f"{getattr(model, 'name', '?')!r}", keras_major=major, name=name, meta=meta)
