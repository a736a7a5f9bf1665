"""Read Keras model files with h5py and json only (no TensorFlow, no Keras).

- `.h5` (Keras 2 and Keras 3 legacy): JSON in the `model_config` attribute; weights under
  `model_weights/<layer>/`, listed by the group's `weight_names` attribute (Keras 2: 'conv2d/kernel:0',
  Keras 3: 'conv2d/kernel').
- `.keras` (Keras 3 zip): `config.json` and `model.weights.h5`, where a layer's variables are
  `layers/<path>/vars/<index>` in build order; the `vars` group's `name` attribute gives the layer name.
"""
from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import h5py
import numpy as np

from ..errors import FormatError, UnsupportedError
from ..ir import Graph
from ._common import short_weight_name
from .keras import graph_from_config, layer_name, model_layers, var_names


def _major(version) -> int:
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    m = re.match(r"\s*(\d+)", str(version or ""))
    return int(m.group(1)) if m else 2


def load_keras_h5(path: Path, f: h5py.File, model_config: dict, *, name: str | None = None) -> Graph:
    """A Keras model saved as .h5 (already opened), whose parsed `model_config` is given."""
    where = str(path)
    root = f["model_weights"] if "model_weights" in f else None
    if root is None:
        raise UnsupportedError(f"{path} has the architecture but no weights (model_weights group); "
                               "save the model with its weights")
    version = f.attrs.get("keras_version") or root.attrs.get("keras_version")

    def weights_of(layer: str) -> dict[str, np.ndarray]:
        if layer not in root:
            return {}
        group = root[layer]
        out = {}
        for n in group.attrs.get("weight_names", []):
            n = n.decode("utf-8") if isinstance(n, bytes) else str(n)
            try:
                out[short_weight_name(n)] = np.asarray(group[n])
            except KeyError:
                raise FormatError(f"{where}: weight {n!r} of layer {layer!r} is missing") from None
        return out

    meta = {"source": where, "source_format": "keras-h5",
            "framework_version": version.decode() if isinstance(version, bytes) else version}
    return graph_from_config(model_config, weights_of, where=where, keras_major=_major(version), name=name,
                             meta=meta)


def _snake(name: str) -> str:
    """Keras 3's naming of layer paths in .keras weight files: 'BatchNormalization' -> 'batch_normalization'."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


def load_keras_v3(path: Path, *, name: str | None = None) -> Graph:
    """A Keras 3 `.keras` zip archive."""
    where = str(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise FormatError(f"{path}: no config.json; not a .keras model archive")
            config = json.loads(z.read("config.json"))
            metadata = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
            if "model.weights.h5" not in names:
                raise UnsupportedError(f"{path}: no model.weights.h5 in the archive (weights stored as "
                                       f"{', '.join(sorted(names - {'config.json', 'metadata.json'})) or 'nothing'}"
                                       "); save with model.save('x.keras')")
            blob = z.read("model.weights.h5")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable .keras archive ({exc})") from None

    kind, layers = model_layers(config, where)
    with h5py.File(io.BytesIO(blob), "r") as f:
        group = f.get("layers")
        by_name: dict[str, h5py.Group] = {}
        if group is not None:
            for key in group:
                vars_group = group[key].get("vars")
                if vars_group is not None and "name" in vars_group.attrs:
                    by_name[str(vars_group.attrs["name"])] = group[key]
            if not by_name:          # older Keras 3: paths named by class in layer order
                counts: dict[str, int] = {}
                for entry in layers:
                    if kind == "Sequential" and entry.get("class_name") == "InputLayer":
                        continue
                    base = _snake(entry.get("class_name", ""))
                    k = counts.get(base, 0)
                    counts[base] = k + 1
                    key = base if k == 0 else f"{base}_{k}"
                    if key in group:
                        by_name[layer_name(entry)] = group[key]
        entries = {layer_name(e): e for e in layers}
        weights: dict[str, dict[str, np.ndarray]] = {}
        for lname, g in by_name.items():
            vars_group = g.get("vars")
            if vars_group is None or not len(vars_group):
                continue
            entry = entries.get(lname, {})
            values = [np.asarray(vars_group[str(i)]) for i in range(len(vars_group))]
            keys = var_names(entry.get("class_name", ""), {**(entry.get("config") or {}), "name": lname},
                             len(values), where)
            weights[lname] = dict(zip(keys, values, strict=True))

    version = metadata.get("keras_version")
    meta = {"source": where, "source_format": "keras-v3", "framework_version": version}
    return graph_from_config(config, lambda layer: weights.get(layer, {}), where=where,
                             keras_major=_major(version or "3"), name=name, meta=meta)
