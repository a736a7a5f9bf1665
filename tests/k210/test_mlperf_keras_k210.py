"""Real Keras models through the K210 target: MLPerf Tiny's VWW (MobileNetV1 with TF 'SAME' stride-2 convs
and 3x3 maps at the end) and IC (ResNet-8 with residual adds and stride-2 1x1 convs). The emulator's
softmax outputs must stay close to the float interpreter (which equals Keras to 1e-4, tests/frontends).
Calibration and test pictures are smooth random images (the models' own datasets are not in the repository);
the point is the lowering, not the accuracy on their tasks."""
import numpy as np
import pytest
import support
from test_lowering import images

from emcgen import interpreter, kmodel
from emcgen.convert import convert, prepare


@pytest.mark.slow
@pytest.mark.parametrize("name, shape", [("vww_96.h5", (96, 96, 3)), ("pretrainedResnet.h5", (32, 32, 3))])
def test_mlperf_keras_model_on_the_k210(name, shape, tmp_path):
    model = support.shared("models", "mlperf_tiny", name)
    data = images(24, shape)
    np.save(tmp_path / "cal.npy", data[:16])
    report = convert(str(model), "kmodel", tmp_path / "m.kmodel", dataset=str(tmp_path / "cal.npy"), log=lambda *a: 0)
    km = kmodel.load(tmp_path / "m.kmodel")
    assert kmodel.check(km, runtime="sdk") == []
    graph = prepare(str(model))
    for x in data[16:]:
        got = kmodel.run(km, x, runtime="sdk")[0].reshape(-1)
        want = interpreter.run(graph, (x[None] / 255.0).astype("f4"))[graph.outputs[0]].reshape(-1)
        assert np.abs(got - want).max() < 0.05
    assert report.memory["kpu_ram_bytes"] <= 2 * 1024 * 1024
