"""The STM32 report states each layer's quantization error against the float interpreter (= TensorFlow)."""
import json

import support

from emcgen.convert import convert


def test_every_layer_of_a_float_model_reports_its_int8_error(tmp_path):
    report = convert(str(support.ROOT / "examples/mnist/mnist_cnn.h5"), "stm32", tmp_path / "p",
                     dataset=str(support.ROOT / "examples/mnist/calibration"), log=lambda *a: None)
    errors = [row["max_error_lsb"] for row in report.layers]
    assert len(errors) == len(report.layers)
    assert all(0 < e < 4 for e in errors), errors        # a few LSB after 8-bit rounding through the layers
    saved = json.loads((tmp_path / "p" / "report.json").read_text())
    assert [r["max_error_lsb"] for r in saved["layers"]] == errors


def test_an_int8_tflite_has_no_float_reference_so_no_error_column(tmp_path):
    report = convert(str(support.shared("models", "mlperf_tiny", "ad01_int8.tflite")), "stm32", tmp_path / "p",
                     log=lambda *a: None)
    assert all("max_error_lsb" not in row for row in report.layers)
