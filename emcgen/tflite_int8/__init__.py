"""TFLite int8 numerics: quantization rules, numpy reference kernels and the int8 interpreter.

Why it exists: the STM32 target calls CMSIS-NN, whose int8 kernels reproduce TFLite's reference integer
kernels bit for bit. This package is that arithmetic in numpy, so a quantized graph can be executed,
checked and turned into C parameters without TensorFlow, and so every generated C program has an exact
expected output. Checked against real CMSIS-NN outputs (274 calls) and the TFLM interpreter (MLPerf Tiny
models layer by layer, one-op models of every supported op) in tests/tflite.

Modules
- fixedpoint: gemmlowp's 32-bit fixed-point primitives (rounding doubling high multiply, rounding shifts,
  exp, reciprocal, logistic, tanh), vectorized over int64 arrays holding int32 values.
- quant: the rules — QuantizeMultiplier, MultiplyByQuantizedMultiplier, activation ranges, per-op
  parameter preparation (conv/fc, add, mul, softmax, logistic/tanh, requantize) from float32 scales, and
  the calibration helpers of the float -> int8 quantizer (choose_qparams, symmetric per-channel weights,
  int32 biases).
- params: IR op -> kernel parameters (shared by the interpreter and the C code generators).
- kernels: conv2d, depthwise_conv2d, fully_connected, max/avg pool, mean, add, mul, softmax, logistic,
  tanh, relu, relu6, pad, concatenation, quantize, requantize, dequantize.
- interpreter: run_int8(graph, inputs, keep_all=False) executes a quantized IR graph.
- quantizer: quantize_graph(graph, ranges) turns a canonical float graph plus calibrated ranges into such
  an int8 graph exactly as TensorFlow's full-integer post-training quantization does (prepare_for_int8
  first splits fused activations int8 cannot fuse, so their inputs get calibrated too).
- writer: to_tflite(graph) writes a graph as a .tflite flatbuffer (so TFLM can check it).

How a quantized graph is stored in the IR (what emcgen.frontends.tflite produces and what the float->int8
quantizer must produce):
- activations: dtype "int8", QuantParams per tensor (scale float32, zero point in [-128, 127]);
  real = scale * (q - zero_point). Softmax and logistic outputs have scale 1/256 and zero point -128,
  tanh outputs 1/128 and 0 (fixed by the kernels).
- weights are int8 constants in the IR layouts, never in TFLite's: conv2d HWIO (KH, KW, C_IN, C_OUT) with
  per-channel QuantParams axis 3; depthwise_conv2d (KH, KW, C, MULT) with axis 2 and C * MULT scales
  ordered like the output channels c * MULT + m (for MULT = 1, plain per-axis quantization along C);
  dense (IN, OUT) with axis 1, or per tensor. Zero points are 0 (symmetric, values in [-127, 127]).
  C code generators transpose back: conv HWIO -> OHWI (transpose(3, 0, 1, 2)), depthwise ->
  (1, KH, KW, C * MULT) (reshape), dense -> (OUT, IN) (transpose).
- biases: int32 constants (C_OUT,), scale s_in * s_w[c], zero point 0.
- fused activations: op.attrs["activation"] in (None, "relu", "relu6", "relu_n1_to_1"); the clamp is
  computed from the output's QuantParams (quant.activation_range).

Rounding mode: TFLite's default double rounding (not TFLITE_SINGLE_ROUNDING); generated CMSIS-NN code must
not define CMSIS_NN_USE_SINGLE_ROUNDING.
"""
from .interpreter import prepare, run_int8
from .quant import (
    activation_range,
    choose_qparams,
    dequantize,
    multiply_by_quantized_multiplier,
    quantize_bias,
    quantize_float,
    quantize_multiplier,
    quantize_weights_symmetric,
)
from .quantizer import prepare_for_int8, quantize_graph
from .writer import to_tflite

__all__ = [
    "activation_range", "choose_qparams", "dequantize", "multiply_by_quantized_multiplier", "prepare",
    "prepare_for_int8", "quantize_bias", "quantize_float", "quantize_graph", "quantize_multiplier",
    "quantize_weights_symmetric", "run_int8", "to_tflite",
]
