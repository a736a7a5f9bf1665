"""Independent oracle for emc_nn: one-operator .tflite models run by the TFLM Python interpreter.

The models are built in pure Python with tflite-micro's model_editor (no TensorFlow); the interpreter runs
TFLM's reference kernels. The quantization parameters emc_nn takes are derived here the way TFLite/TFLM
prepare them (QuantizeMultiplier, PreprocessSoftmaxScaling), from the same float32 scales the model holds.
"""
from __future__ import annotations

import math

import numpy as np


def _tflm():
    """(model_editor, schema, runtime) of the tflite-micro wheel."""
    from tflite_micro.python.tflite_micro import runtime
    from tflite_micro.tensorflow.lite.micro.compression import model_editor
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema
    return model_editor, schema, runtime


def f32(x: float) -> float:
    """The float32 value a .tflite stores for a scale."""
    return float(np.float32(x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier (double rounding build): real = q * 2^shift / 2^31, q in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    frac, shift = math.frexp(real)
    q = math.floor(abs(frac) * (1 << 31) + 0.5) * (1 if frac > 0 else -1)  # round half away from zero
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q, shift


def softmax_params(input_scale: float, beta: float) -> tuple[int, int, int]:
    """(mult, shift, diff_min) for arm_softmax_s8 as TFLM's softmax Prepare computes them (5 integer bits)."""
    real = min(float(np.float32(beta)) * f32(input_scale) * (1 << 26), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    assert shift >= 0
    radius = math.floor(31 * (1 << 26) / (1 << shift))
    return mult, shift, -radius


class OneOp:
    """A model with one operator; run(inputs) returns the outputs of the TFLM interpreter."""

    def __init__(self):
        self.me, self.schema, self.runtime = _tflm()
        self.model = self.me.Model()
        self.graph = self.model.add_subgraph()

    def tensor(self, shape, dtype: str, scale: float | None = None, zero_point: int = 0, data=None):
        t = {"int8": self.schema.TensorType.INT8, "int32": self.schema.TensorType.INT32,
             "float32": self.schema.TensorType.FLOAT32}[dtype]
        quant = self.me.Quantization(f32(scale), int(zero_point)) if scale is not None else None
        return self.graph.add_tensor(shape=tuple(shape), dtype=t, quantization=quant, data=data)

    def op(self, name: str, inputs, outputs, options=None, options_type: str | None = None):
        operator = self.graph.add_operator(opcode=getattr(self.schema.BuiltinOperator, name), inputs=inputs,
                                           outputs=outputs)
        if options is not None:
            operator._fb.builtinOptionsType = getattr(self.schema.BuiltinOptions, options_type)
            operator._fb.builtinOptions = options
        return operator

    def options(self, name: str, **fields):
        opts = getattr(self.schema, name + "T")()
        for key, value in fields.items():
            setattr(opts, key, value)
        return opts

    def run(self, graph_inputs, graph_outputs, values):
        self.graph.inputs = list(graph_inputs)
        self.graph.outputs = list(graph_outputs)
        interp = self.runtime.Interpreter.from_bytes(bytes(self.model.build()), arena_size=1 << 20)
        for i, value in enumerate(values):
            interp.set_input(value, i)
        interp.invoke()
        return [interp.get_output(i) for i in range(len(graph_outputs))]


def softmax(x: np.ndarray, input_scale: float, input_zp: int, beta: float) -> np.ndarray:
    m = OneOp()
    a = m.tensor(x.shape, "int8", input_scale, input_zp)
    y = m.tensor(x.shape, "int8", 1.0 / 256, -128)
    m.op("SOFTMAX", [a], [y], m.options("SoftmaxOptions", beta=float(beta)), "SoftmaxOptions")
    return m.run([a], [y], [x])[0]


def pad(x: np.ndarray, pads: tuple[int, int, int, int], scale: float, zp: int) -> np.ndarray:
    """PAD on H and W (TFLM pads an int8 tensor with its zero point)."""
    top, bottom, left, right = pads
    n, h, w, c = x.shape
    m = OneOp()
    a = m.tensor(x.shape, "int8", scale, zp)
    paddings = m.tensor((4, 2), "int32", data=np.array([[0, 0], [top, bottom], [left, right], [0, 0]],
                                                        dtype=np.int32))
    y = m.tensor((n, h + top + bottom, w + left + right, c), "int8", scale, zp)
    m.op("PAD", [a, paddings], [y])
    return m.run([a], [y], [x])[0]


def concat(xs: list[np.ndarray], scale: float, zp: int) -> np.ndarray:
    """CONCATENATION on the last axis with equal quantization everywhere."""
    m = OneOp()
    ins = [m.tensor(x.shape, "int8", scale, zp) for x in xs]
    shape = list(xs[0].shape)
    shape[-1] = sum(x.shape[-1] for x in xs)
    y = m.tensor(shape, "int8", scale, zp)
    m.op("CONCATENATION", ins, [y], m.options("ConcatenationOptions", axis=len(shape) - 1),
         "ConcatenationOptions")
    return m.run(ins, [y], xs)[0]


def requantize(x: np.ndarray, s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """QUANTIZE int8 -> int8."""
    m = OneOp()
    a = m.tensor(x.shape, "int8", s_in, zp_in)
    y = m.tensor(x.shape, "int8", s_out, zp_out)
    m.op("QUANTIZE", [a], [y])
    return m.run([a], [y], [x])[0]


def mean_hw(x: np.ndarray, s_in: float, zp_in: int, s_out: float, zp_out: int, keep_dims: bool) -> np.ndarray:
    """MEAN over axes 1 and 2."""
    n, _, _, c = x.shape
    m = OneOp()
    a = m.tensor(x.shape, "int8", s_in, zp_in)
    axes = m.tensor((2,), "int32", data=np.array([1, 2], dtype=np.int32))
    y = m.tensor((n, 1, 1, c) if keep_dims else (n, c), "int8", s_out, zp_out)
    m.op("MEAN", [a, axes], [y], m.options("ReducerOptions", keepDims=keep_dims), "ReducerOptions")
    return m.run([a], [y], [x])[0]


def resize_nearest(x: np.ndarray, out_hw: tuple[int, int], align_corners: bool, half_pixel_centers: bool,
                   scale: float = 0.05, zp: int = 0) -> np.ndarray:
    n, _, _, c = x.shape
    m = OneOp()
    a = m.tensor(x.shape, "int8", scale, zp)
    size = m.tensor((2,), "int32", data=np.array(out_hw, dtype=np.int32))
    y = m.tensor((n, out_hw[0], out_hw[1], c), "int8", scale, zp)
    opts = m.options("ResizeNearestNeighborOptions", alignCorners=align_corners,
                     halfPixelCenters=half_pixel_centers)
    m.op("RESIZE_NEAREST_NEIGHBOR", [a, size], [y], opts, "ResizeNearestNeighborOptions")
    return m.run([a], [y], [x])[0]


def quantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """QUANTIZE float32 -> int8."""
    m = OneOp()
    a = m.tensor(x.shape, "float32")
    y = m.tensor(x.shape, "int8", scale, zp)
    m.op("QUANTIZE", [a], [y])
    return m.run([a], [y], [x])[0]


def dequantize(x: np.ndarray, scale: float, zp: int) -> np.ndarray:
    """DEQUANTIZE int8 -> float32."""
    m = OneOp()
    a = m.tensor(x.shape, "int8", scale, zp)
    y = m.tensor(x.shape, "float32")
    m.op("DEQUANTIZE", [a], [y])
    return m.run([a], [y], [x])[0]
