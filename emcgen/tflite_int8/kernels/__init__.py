"""numpy int8 reference kernels, bit-exact with TFLite's reference integer kernels (and so with TFLM and
CMSIS-NN, checked against real CMSIS-NN outputs in tests/tflite).

Kernels take int8 arrays (batch first, NHWC), weights in the IR layouts (conv HWIO, depthwise
(KH, KW, C, MULT), dense (IN, OUT)), int32 biases, and the parameter objects of emcgen.tflite_int8.quant.
They never look at IR objects, so C code generators can be checked against them directly.
"""
from .activations import logistic, relu, relu6, softmax, tanh
from .conv import conv2d, depthwise_conv2d, fully_connected
from .data import concatenation, dequantize, pad, quantize_float, requantize_int8
from .elementwise import add, mul
from .pool import avg_pool2d, max_pool2d, mean

__all__ = [
    "add", "avg_pool2d", "concatenation", "conv2d", "depthwise_conv2d", "dequantize", "fully_connected",
    "logistic", "max_pool2d", "mean", "mul", "pad", "quantize_float", "relu", "relu6", "requantize_int8",
    "softmax", "tanh",
]
