"""load_model(): dispatch, errors, and reading model files without TensorFlow.

Expected values come from the README of ../shared/models/maix-emc (a TensorFlow forward pass of the
seed's weights); the framework-backed comparisons are in test_tensorlayer_frontend / test_keras_frontend.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import types

import h5py
import numpy as np
import pytest
import support
from PIL import Image

import emcgen
from emcgen import interpreter
from emcgen.errors import EmcError, FormatError, UnsupportedError
from emcgen.frontends import load_model
from emcgen.ir import Graph

README_LOGITS = [1.00093, -5.36398, 1.54882, 0.06387, 0.46718, -0.59183, -3.54216, 0.47537, -0.64025, -3.75309]


def test_model_files_load_without_importing_tensorflow():
    files = [support.shared("models", "maix-emc", "cifar10.h5")]
    files += [support.shared("models", "mlperf_tiny", f) for f in ("vww_96.h5", "pretrainedResnet.h5", "ad01.h5")]
    script = textwrap.dedent("""
        import sys
        from emcgen.frontends import load_model
        for path in sys.argv[1:]:
            g = load_model(path)
            print(g.name, len(g.ops))
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tensorlayer"))
        print("HEAVY", heavy)
    """)
    res = subprocess.run([sys.executable, "-c", script, *map(str, files)], capture_output=True, text=True,
                         cwd=support.ROOT, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip().splitlines()[-1] == "HEAVY []"
    assert len(res.stdout.strip().splitlines()) == len(files) + 1


def test_cifar10_file_matches_tensorflow_readme_values():
    graph = emcgen.load_model(support.shared("models", "maix-emc", "cifar10.h5"))
    assert graph.meta["framework"] == "tensorlayer"
    assert graph.meta["source_format"] == "tensorlayer-h5"
    assert graph.meta["framework_version"] == "2.1.0"
    assert graph.inputs == ["_inputlayer_1"] and graph.meta["input_names"] == graph.inputs
    assert graph.tensors[graph.inputs[0]].shape == (1, 32, 32, 3)
    assert [op.type for op in graph.ops] == ["conv2d", "batch_norm", "max_pool2d", "conv2d", "batch_norm",
                                             "max_pool2d", "reshape", "dense", "dense"]
    assert graph.op("batch1").attrs == {"epsilon": 1e-5, "activation": "relu"}
    assert graph.op("pool1").attrs["pads"] == (0, 1, 0, 1)           # SAME, 3x3 / 2 on 32: extra cell after
    img = Image.open(support.shared("fixtures", "kmodel_v3", "maix-emc_plane.bmp")).convert("RGB")
    x = (np.asarray(img, np.float32) / 255.0)[None]
    out = interpreter.run(graph, x)[graph.outputs[0]]
    np.testing.assert_allclose(out[0], README_LOGITS, atol=1e-5)


def test_mlperf_graph_shapes():
    want = {"vww_96.h5": ((1, 96, 96, 3), (1, 2)), "pretrainedResnet.h5": ((1, 32, 32, 3), (1, 10)),
            "ad01.h5": ((1, 640), (1, 640))}
    for file, (ishape, oshape) in want.items():
        g = load_model(support.shared("models", "mlperf_tiny", file))
        assert g.tensors[g.inputs[0]].shape == ishape
        assert g.tensors[g.outputs[0]].shape == oshape
        assert g.meta["source_format"] == "keras-h5"


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(EmcError, match="nope.h5"):
        load_model(path)


def test_not_hdf5(tmp_path):
    path = tmp_path / "junk.h5"
    path.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(FormatError, match="junk.h5"):
        load_model(str(path))


def test_weights_only_file_is_refused(tmp_path):
    path = tmp_path / "w.h5"           # the layout of TensorLayer's save_weights
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"conv1"]
        g = f.create_group("conv1")
        g.attrs["weight_names"] = [b"conv1/filters:0"]
        g.create_dataset("conv1/filters:0", data=np.zeros((3, 3, 3, 4), np.float32))
    with pytest.raises(UnsupportedError, match="only weights"):
        load_model(path)


def _edited_cifar(tmp_path, old, new):
    path = tmp_path / "edited.h5"
    shutil.copy(support.shared("models", "maix-emc", "cifar10.h5"), path)
    with h5py.File(path, "r+") as f:
        config = f.attrs["model_config"]
        config = config.decode() if isinstance(config, bytes) else config
        assert old in config
        f.attrs["model_config"] = config.replace(old, new, 1)
    return path


def test_unsupported_tensorlayer_layer_in_file(tmp_path):
    path = _edited_cifar(tmp_path, "'class': 'MaxPool2d'", "'class': 'MaxPool3d'")
    with pytest.raises(UnsupportedError, match=r"'pool1' \(MaxPool3d\).*supported layers: .*MaxPool2d"):
        load_model(path)


def test_unsupported_activation_in_file(tmp_path):
    path = _edited_cifar(tmp_path, "'act': 'relu'", "'act': 'elu'")
    with pytest.raises(UnsupportedError, match=r"'batch1' \(BatchNorm\): activation 'elu'.*supported"):
        load_model(path)


def test_channels_first_is_refused(tmp_path):
    path = _edited_cifar(tmp_path, "'data_format': 'channels_last'", "'data_format': 'channels_first'")
    with pytest.raises(UnsupportedError, match=r"'conv1' \(Conv2d\): data_format"):
        load_model(path)


def test_architecture_without_weights(tmp_path):
    src = support.shared("models", "maix-emc", "cifar10.h5")
    path = tmp_path / "arch_only.h5"
    with h5py.File(src, "r") as s, h5py.File(path, "w") as d:
        d.attrs["model_config"] = s.attrs["model_config"]
    with pytest.raises(FormatError, match="no weights"):
        load_model(path)


def test_unknown_objects_and_files(tmp_path):
    with pytest.raises(UnsupportedError, match="supported: .*TensorLayer"):
        load_model(object())
    with pytest.raises(UnsupportedError, match="not a TFLite"):
        load_model(b"\x00" * 32)
    other = tmp_path / "model.onnx"
    other.write_bytes(b"\x08\x07" * 10)
    with pytest.raises(UnsupportedError, match="model.onnx.*supported"):
        load_model(other)


def test_graph_passes_through():
    g = Graph(name="g")
    g.add_tensor("x", (1, 4))
    g.inputs, g.outputs = ["x"], ["y"]
    g.add_tensor("y", (1, 4))
    g.add_op("identity", "id", ["x"], ["y"])
    assert load_model(g) is g


def test_tflite_paths_and_bytes_go_to_the_tflite_frontend(tmp_path, monkeypatch):
    seen = []

    def fake_load_tflite(source):
        seen.append(source)
        g = Graph(name="fake")
        g.add_tensor("x", (1, 4))
        g.add_tensor("y", (1, 4))
        g.add_op("identity", "id", ["x"], ["y"])
        g.inputs, g.outputs = ["x"], ["y"]
        return g

    monkeypatch.setitem(sys.modules, "emcgen.frontends.tflite",
                        types.SimpleNamespace(load_tflite=fake_load_tflite))
    path = tmp_path / "m.tflite"
    data = b"\x1c\x00\x00\x00TFL3" + b"\x00" * 24
    path.write_bytes(data)
    g = load_model(path, name="renamed")
    assert g.name == "renamed" and g.meta["framework"] == "tflite"
    load_model(data)
    renamed = tmp_path / "no_extension"
    renamed.write_bytes(data)
    load_model(renamed)                                    # recognized by its file identifier
    assert seen == [path, data, renamed]
