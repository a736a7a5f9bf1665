"""Read a TensorLayer `Model.save` .h5 file with h5py only (no TensorFlow, no TensorLayer).

Layout (TensorLayer 2.x): the file attribute `model_config` is `str(model.config)`, a Python literal
(with bare names such as `tf.float32` in files of TensorLayer 2.1); each layer has a group with a
`weight_names` attribute, and the weights are datasets reached through those names
(`conv1/conv1/filters:0`; layers that wrap a Keras layer may use unprefixed names such as `sep/bias`).
"""
from __future__ import annotations

import ast
from pathlib import Path

import h5py
import numpy as np

from ..errors import FormatError
from ..ir import Graph
from ._common import short_weight_name
from .tensorlayer import graph_from_records, records_from_config


def _literal(node: ast.AST):
    """ast.literal_eval, plus dotted names (`tf.float32`) read as their text; nothing is executed."""
    if isinstance(node, ast.Expression):
        return _literal(node.body)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    if isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Set):
        return {_literal(e) for e in node.elts}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        v = _literal(node.operand)
        if isinstance(v, int | float):
            return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_literal(node.value)}.{node.attr}"
    raise ValueError(f"unexpected {type(node).__name__} at line {getattr(node, 'lineno', '?')}")


def parse_config(text: str | bytes, source: str) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        config = _literal(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError) as exc:
        raise FormatError(f"{source}: the TensorLayer model_config attribute is not a Python literal ({exc})") \
            from None
    if not isinstance(config, dict) or "model_architecture" not in config:
        raise FormatError(f"{source}: the model_config attribute has no 'model_architecture'")
    return config


def is_tensorlayer_config(text) -> bool:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return isinstance(text, str) and "'model_architecture'" in text


def _layer_weights(group, source: str) -> dict[str, np.ndarray]:
    names = group.attrs.get("weight_names")
    out: dict[str, np.ndarray] = {}
    if names is not None and len(names):
        for n in names:
            n = n.decode("utf-8") if isinstance(n, bytes) else str(n)
            try:
                out[short_weight_name(n)] = np.asarray(group[n])
            except KeyError:
                raise FormatError(f"{source}: weight {n!r} listed for layer {group.name[1:]!r} is missing") \
                    from None
        return out

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            out[short_weight_name(name)] = np.asarray(obj)
    group.visititems(visit)
    return out


def load(path: Path, h5file, *, name: str | None = None) -> Graph:
    """A TensorLayer `Model.save` file already opened with h5py."""
    source = str(path)
    config = parse_config(h5file.attrs["model_config"], source)
    weights = {}
    for key in h5file.keys():
        weights[key] = _layer_weights(h5file[key], source)
    needs_weights = [e.get("args", {}).get("name") for e in config["model_architecture"]
                     if e.get("class") in ("Conv2d", "DepthwiseConv2d", "SeparableConv2d", "Dense",
                                           "BatchNorm", "BatchNorm1d", "BatchNorm2d")]
    if needs_weights and not any(weights.get(n) for n in needs_weights):
        raise FormatError(f"{source}: the file has the architecture but no weights "
                          "(saved with Model.save(..., save_weights=False)); save it with the weights")
    records, inputs, outputs = records_from_config(config, weights, source)
    version = (config.get("version_info") or {}).get("tensorlayer_version")
    meta = {"source": source, "source_format": "tensorlayer-h5", "framework_version": version}
    return graph_from_records(records, inputs, outputs, name=name or config.get("name") or path.stem, meta=meta)
