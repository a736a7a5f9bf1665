"""Frontends: turn a trained model (file or in-memory object) into an emcgen IR graph.

`load_model(source)` is the one entry point. Files are recognized by extension and, for .h5, by content
(TensorLayer's `Model.save` writes its config as a Python literal, Keras as JSON). Reading any file never
imports TensorFlow; in-memory TensorLayer/Keras objects are recognized by their class's module name, so
TensorFlow is only touched when the caller already has it loaded.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from ..errors import EmcError, FormatError, UnsupportedError
from ..ir import Graph

SUPPORTED = ("a TensorLayer Model.save .h5 file, a Keras .h5 or .keras file, a .tflite file, "
             "an in-memory static tensorlayer.models.Model or keras Model (functional or Sequential), "
             "or an emcgen Graph")

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def load_model(source, *, name: str | None = None) -> Graph:
    """Read `source` (path or in-memory model) into a validated NHWC graph with batch-1 shapes.

    graph.meta records 'framework', 'source', 'source_format', 'framework_version', 'input_names',
    'output_names' and 'preprocessing' (hints such as a leading Keras Rescaling; {} when none).
    """
    if isinstance(source, Graph):
        source.validate()
        return source
    if isinstance(source, str | os.PathLike):
        return _load_path(Path(source), name)
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if data[4:8] == b"TFL3":
            return _tflite(data, name)
        raise UnsupportedError(f"these {len(data)} bytes are not a TFLite flatbuffer; supported: {SUPPORTED}")
    family = _object_family(source)
    if family == "tensorlayer":
        from .tensorlayer import from_object
        return from_object(source, name=name)
    if family == "keras":
        from .keras import from_object
        return from_object(source, name=name)
    raise UnsupportedError(f"cannot read a {type(source).__module__}.{type(source).__name__}; "
                           f"supported: {SUPPORTED}")


def _object_family(obj) -> str | None:
    """'tensorlayer' / 'keras' from the class hierarchy's module names (TensorFlow is not imported)."""
    modules = [getattr(c, "__module__", "") or "" for c in type(obj).__mro__]
    if any(m.startswith("tensorlayer.models") for m in modules):
        return "tensorlayer"
    keras_like = ("keras.", "tf_keras.", "tensorflow.python.keras.", "tensorflow.keras.")
    if any(m.startswith(keras_like) for m in modules) and hasattr(obj, "get_config") and hasattr(obj, "layers"):
        return "keras"
    return None


def _load_path(path: Path, name: str | None) -> Graph:
    if not path.exists():
        raise EmcError(f"model file {path} does not exist")
    if path.is_dir():
        raise UnsupportedError(f"{path} is a directory (a SavedModel?); supported: {SUPPORTED}")
    suffix = path.suffix.lower()
    if suffix not in (".h5", ".hdf5", ".keras", ".tflite"):
        suffix = _sniff(path)
    if suffix in (".h5", ".hdf5"):
        return _load_h5(path, name)
    if suffix == ".keras":
        from .keras_files import load_keras_v3
        return load_keras_v3(path, name=name)
    if suffix == ".tflite":
        return _tflite(path, name)
    raise UnsupportedError(f"{path}: unknown model file type; supported: {SUPPORTED}")


def _sniff(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(8)
    if head == _HDF5_MAGIC:
        return ".h5"
    if head[4:8] == b"TFL3":
        return ".tflite"
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        return ".keras"
    return path.suffix.lower()


def _load_h5(path: Path, name: str | None) -> Graph:
    import h5py

    from . import keras_files, tensorlayer_h5
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise FormatError(f"{path}: not a readable HDF5 file ({exc})") from None
    with f:
        config = f.attrs.get("model_config")
        if isinstance(config, bytes):
            config = config.decode("utf-8", "replace")
        if config is None:
            if "layer_names" in f.attrs or "layers" in f or "model_weights" in f:
                raise UnsupportedError(
                    f"{path} holds only weights (save_weights) and no architecture; save the model with "
                    "Model.save(...) (TensorLayer) or model.save(...) (Keras), or pass the model object")
            raise FormatError(f"{path}: no 'model_config' attribute; not a saved TensorLayer or Keras model")
        if tensorlayer_h5.is_tensorlayer_config(config) and not config.lstrip().startswith("{\""):
            return tensorlayer_h5.load(path, f, name=name)
        try:
            parsed = json.loads(config)
        except ValueError:
            raise FormatError(f"{path}: model_config is neither TensorLayer's nor Keras' format") from None
        if not isinstance(parsed, dict) or "class_name" not in parsed:
            raise FormatError(f"{path}: model_config has no 'class_name'; not a Keras model file")
        return keras_files.load_keras_h5(path, f, parsed, name=name)


def _tflite(source, name: str | None) -> Graph:
    try:
        from .tflite import load_tflite
    except ImportError as exc:
        raise EmcError(f"the TFLite frontend is not available ({exc})") from None
    graph = load_tflite(source)
    if name:
        graph.name = name
    graph.validate()
    graph.meta.setdefault("framework", "tflite")
    graph.meta.setdefault("source", str(source) if isinstance(source, Path) else None)
    graph.meta.setdefault("input_names", list(graph.inputs))
    graph.meta.setdefault("output_names", list(graph.outputs))
    graph.meta.setdefault("preprocessing", {})
    return graph


__all__ = ["load_model", "SUPPORTED"]
