"""`emcgen convert` on full-integer .tflite files keeps the file's numbers: the generated project's outputs
equal TFLM running the *original* file (not only emcgen's own reference). Models with the ops the float
passes must not touch: standalone LOGISTIC/TANH, an int8 -> int8 QUANTIZE that requantizes."""
import numpy as np
import pytest
from project_helpers import int8_batch, load_tflite, model_a, model_b, tflm_oracle

from emcgen.convert import convert
from emcgen.targets import get


@pytest.mark.parametrize("make", [model_a, model_b], ids=["model_a", "model_b"])
def test_converted_project_equals_tflm_on_the_original_file(make, tmp_path):
    blob = make()
    (tmp_path / "m.tflite").write_bytes(blob)
    convert(str(tmp_path / "m.tflite"), "stm32", tmp_path / "proj", log=lambda *a: None)
    graph = load_tflite(blob)
    x = int8_batch(graph, 8, seed=5)
    inputs = [x[n] for n in graph.inputs]
    if len(inputs) == 1:
        np.save(tmp_path / "x.npy", inputs[0])
        xin, yout = tmp_path / "x.npy", tmp_path / "y.npy"
    else:
        np.savez(tmp_path / "x.npz", **{n: v for n, v in zip(graph.inputs, inputs, strict=True)})
        xin, yout = tmp_path / "x.npz", tmp_path / "y.npz"
    assert get("stm32").verify(tmp_path / "proj", xin, yout, on="host") == 0
    want = tflm_oracle.run(blob, *inputs)
    got = np.load(yout)
    got = [got] if isinstance(got, np.ndarray) else [got[k] for k in got.files]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.reshape(w.shape), w)
