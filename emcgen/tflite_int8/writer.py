"""IR graph (int8 or float) -> a .tflite flatbuffer that TFLite and TFLM run, without TensorFlow.

Why: an emcgen-quantized model can then be checked by an independent interpreter (TFLM) and shipped as a
file. The mapping is the inverse of emcgen.frontends.tflite, so load_tflite(to_tflite(g)) gives g back for
every graph that frontend produces: ops, names, layouts, attrs, quantization and meta, except the file's
meta["source"] / ["tflite_tensors"], ["dequantized_weights"] (weights are written as float32) and op names
when a float interface shifts the operator indices (tests/tflite/test_writer_roundtrip.py):
- conv2d -> CONV_2D, weights HWIO -> OHWI (per-channel axis 3 -> 0); depthwise_conv2d -> DEPTHWISE_CONV_2D,
  (KH, KW, C, MULT) -> (1, KH, KW, C * MULT) (axis 2 -> 3); dense -> FULLY_CONNECTED, (IN, OUT) -> (OUT, IN)
  (axis 1 -> 0). Biases int32 with their scales, quantized_dimension 0.
- explicit pads become SAME or VALID; conv pads that are neither get a PAD op in front (pad value: the input's
  zero point, i.e. real 0); pools must be SAME or VALID.
- fused activations NONE / RELU / RELU_N1_TO_1 / RELU6 (TANH for float); a float op with another fused
  activation is written as the op plus the standalone activation.
- max/avg pool, add, mul, softmax, pad (PADV2 for a non-zero value), mean, reshape, concat, relu, relu6,
  sigmoid (LOGISTIC), tanh, leaky_relu: the TFLite op of the same meaning.
- ops the frontend never produces, written with the meaning emcgen.tflite_int8.interpreter gives them:
  global_avg_pool -> AVERAGE_POOL_2D over the whole map (then RESHAPE without keepdims) when input and
  output parameters are equal (and for float), MEAN over H, W otherwise; global_max_pool -> MAX_POOL_2D over
  the map; identity -> QUANTIZE (int8 requantization; RESHAPE for float).
- an int8 concat input whose parameters differ from the output's is requantized by a QUANTIZE op first,
  because TFLite's int8 CONCATENATION copies bytes.
- float interface (float_interface=True, default: when graph.meta has "float_interface"): a float32 input
  with a QUANTIZE and a float32 output after a DEQUANTIZE around the int8 graph, as a converter-made model
  with float inference types; named as meta["float_interface"] says (else "<name>_float").

Built with flatbuffers and the builder functions of the `tflite` package, both core dependencies (the object
API shipped in tflite_micro is a test-only extra and loads the TFLM runtime on import). Constant data is
16-byte aligned; buffer 0 is the empty buffer of every activation.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite

from ..errors import UnsupportedError
from ..ir import Graph, Op, QuantParams
from ..ops._common import resolve_pads
from . import quant as Q

_TYPES = {"float32": tflite.TensorType.FLOAT32, "int8": tflite.TensorType.INT8, "int32": tflite.TensorType.INT32,
          "int64": tflite.TensorType.INT64, "float16": tflite.TensorType.FLOAT16,
          "uint8": tflite.TensorType.UINT8, "int16": tflite.TensorType.INT16, "bool": tflite.TensorType.BOOL}
_FUSED = {None: 0, "": 0, "none": 0, "linear": 0, "identity": 0, "relu": 1, "relu_n1_to_1": 2, "relu6": 3,
          "tanh": 4}
_STANDALONE = {"relu": "RELU", "relu6": "RELU6", "relu_n1_to_1": "RELU_N1_TO_1", "sigmoid": "LOGISTIC",
               "tanh": "TANH", "leaky_relu": "LEAKY_RELU"}
SUPPORTED_OPS = ("conv2d", "depthwise_conv2d", "dense", "max_pool2d", "avg_pool2d", "global_avg_pool",
                 "global_max_pool", "mean", "add", "mul", "concat", "reshape", "pad", "softmax", "identity",
                 "activation")
SAME, VALID = tflite.Padding.SAME, tflite.Padding.VALID


def to_tflite(graph: Graph, *, float_interface: bool | None = None, description: str = "emcgen") -> bytes:
    """Serialize `graph` as a TFLite flatbuffer (schema version 3, file identifier "TFL3").

    float_interface: wrap an int8 graph's inputs/outputs in QUANTIZE/DEQUANTIZE (None: as graph.meta says).
    Raises UnsupportedError naming the layer for what TFLite cannot express.
    """
    graph.validate()
    quantized = any(t.dtype == "int8" for t in graph.tensors.values() if not t.is_const)
    if float_interface is None:
        float_interface = bool(graph.meta.get("float_interface"))
    w = _Writer(graph, quantized)
    w.collect(float_interface and quantized)
    return w.build(description)


# ---- collection: IR -> tensor / operator tables ------------------------------------------------------------
@dataclass
class _Tensor:
    name: str
    shape: tuple
    dtype: str
    data: bytes | None = None
    quant: QuantParams | None = None


@dataclass
class _Operator:
    opcode: str
    inputs: list[int]
    outputs: list[int]
    options: str | None = None             # tflite options table name, e.g. "Conv2DOptions"
    fields: dict = field(default_factory=dict)


class _Writer:
    def __init__(self, graph: Graph, quantized: bool):
        self.g, self.quantized = graph, quantized
        self.tensors: list[_Tensor] = []
        self.ops: list[_Operator] = []
        self.index: dict[tuple, int] = {}
        self.inputs: list[int] = []
        self.outputs: list[int] = []

    # tensors
    def add(self, name, shape, dtype, data=None, quant=None) -> int:
        if dtype not in _TYPES:
            raise UnsupportedError(f"tensor {name!r} has dtype {dtype}; TFLite output supports "
                                   f"{', '.join(_TYPES)}")
        raw = None
        if data is not None:
            raw = np.ascontiguousarray(np.asarray(data, dtype=dtype)).astype(np.dtype(dtype).newbyteorder("<"))
            raw = raw.tobytes()
        self.tensors.append(_Tensor(name, tuple(int(d) for d in shape), dtype, raw, quant))
        return len(self.tensors) - 1

    def act(self, name: str) -> int:
        key = (name, "")
        if key not in self.index:
            t = self.g.tensors[name]
            if t.is_const:
                return self.const(name)
            self.index[key] = self.add(name, t.shape, t.dtype, quant=t.quant)
        return self.index[key]

    def const(self, name: str, layout: str = "", transform=None) -> int:
        key = (name, layout)
        if key not in self.index:
            t = self.g.tensors[name]
            data, quant = np.asarray(t.data), t.quant
            if transform is not None:
                data, quant = transform(data, quant)
            self.index[key] = self.add(name, data.shape, str(data.dtype), data, quant)
        return self.index[key]

    def scratch(self, name: str, like: str, shape=None, quant=None) -> int:
        """A new activation tensor with the dtype (and, unless given, the parameters) of `like`."""
        t = self.g.tensors[like]
        return self.add(name, t.shape if shape is None else shape, t.dtype, quant=t.quant if quant is None else quant)

    def int32_const(self, name: str, values) -> int:
        data = np.asarray(values, dtype=np.int32)
        return self.add(name, data.shape, "int32", data)

    def emit(self, opcode, inputs, outputs, options=None, **fields) -> None:
        self.ops.append(_Operator(opcode, list(inputs), list(outputs), options, fields))

    # whole graph
    def collect(self, float_interface: bool) -> None:
        g = self.g
        names = g.meta.get("float_interface") or {}
        fin = names.get("inputs") if len(names.get("inputs") or []) == len(g.inputs) else None
        fout = names.get("outputs") if len(names.get("outputs") or []) == len(g.outputs) else None
        for k, name in enumerate(g.inputs):
            if float_interface:
                f = self.add(fin[k] if fin else f"{name}_float", g.tensors[name].shape, "float32")
                self.emit("QUANTIZE", [f], [self.act(name)])
                self.inputs.append(f)
            else:
                self.inputs.append(self.act(name))
        for op in g.ops:
            handler = getattr(self, "_op_" + op.type, None)
            if handler is None:
                raise UnsupportedError(f"layer {op.name!r} ({op.type}) cannot be written as TFLite; "
                                       f"supported: {', '.join(SUPPORTED_OPS)}")
            handler(op)
        for k, name in enumerate(g.outputs):
            if float_interface:
                f = self.add(fout[k] if fout else f"{name}_float", g.tensors[name].shape, "float32")
                self.emit("DEQUANTIZE", [self.act(name)], [f])
                self.outputs.append(f)
            else:
                self.outputs.append(self.act(name))

    # ---- helpers for op handlers -------------------------------------------------------------------------
    def fail(self, op: Op, what: str):
        raise UnsupportedError(f"layer {op.name!r} ({op.type}): {what}")

    def fused(self, op: Op, allow_split: bool = True) -> tuple[int, str | None]:
        """(TFLite fused activation code, activation to write as its own op or None)."""
        act = op.attrs.get("activation")
        if act in _FUSED and not (act == "tanh" and self.quantized):
            return _FUSED[act], None
        if not self.quantized and allow_split and act in _STANDALONE:
            return 0, act
        self.fail(op, f"fused activation {act!r} has no TFLite {'int8 ' if self.quantized else ''}form; "
                  "supported: relu, relu6, relu_n1_to_1" + ("" if self.quantized else ", tanh"))

    def output(self, op: Op, split: str | None) -> int:
        """Output index of the main TFLite op; with a split activation, an intermediate tensor."""
        out = op.outputs[0]
        if split is None:
            return self.act(out)
        return self.scratch(f"{out}/pre_activation", out)

    def finish_split(self, op: Op, split: str | None, pre: int) -> None:
        if split is not None:
            fields = {"alpha": float(op.attrs.get("alpha", 0.2))} if split == "leaky_relu" else {}
            self.emit(_STANDALONE[split], [pre], [self.act(op.outputs[0])],
                      "LeakyReluOptions" if fields else None, **fields)

    def padding(self, op: Op, kernel, stride, dilation=(1, 1)) -> int | None:
        pads = tuple(int(p) for p in op.attrs.get("pads", (0, 0, 0, 0)))
        if pads == (0, 0, 0, 0):
            return VALID
        in_hw = self.g.tensors[op.inputs[0]].shape[1:3]
        if pads == resolve_pads("same", in_hw, kernel, stride, dilation):
            return SAME
        return None

    def bias(self, op: Op) -> int:
        return self.const(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else -1

    # ---- op handlers -------------------------------------------------------------------------------------
    def _windowed(self, op: Op, opcode: str, options: str, weights: int, kernel, **extra) -> None:
        stride = tuple(op.attrs.get("stride", (1, 1)))
        dilation = tuple(op.attrs.get("dilation", (1, 1)))
        padding = self.padding(op, kernel, stride, dilation)
        x = self.act(op.inputs[0])
        if padding is None:    # explicit pads: PAD (real 0 = the zero point) + VALID
            t, b, lft, r = op.attrs["pads"]
            n, h, w, c = self.g.tensors[op.inputs[0]].shape
            padded = self.scratch(f"{op.inputs[0]}/padded_for_{op.name}", op.inputs[0], (n, h + t + b, w + lft + r, c))
            self.emit("PAD", [x, self.int32_const(f"{op.name}/paddings", [[0, 0], [t, b], [lft, r], [0, 0]])],
                      [padded])
            x, padding = padded, VALID
        code, split = self.fused(op)
        y = self.output(op, split)
        self.emit(opcode, [x, weights, self.bias(op)], [y], options, padding=padding, strideH=stride[0],
                  strideW=stride[1], dilationHFactor=dilation[0], dilationWFactor=dilation[1],
                  fusedActivationFunction=code, **extra)
        self.finish_split(op, split, y)

    def _op_conv2d(self, op: Op) -> None:
        def to_ohwi(w, q):
            if q is not None and q.axis is not None:
                q = QuantParams(q.scale, q.zero_point, 0)
            return w.transpose(3, 0, 1, 2), q
        kh, kw = self.g.tensors[op.inputs[1]].shape[:2]
        self._windowed(op, "CONV_2D", "Conv2DOptions", self.const(op.inputs[1], "ohwi", to_ohwi), (kh, kw))

    def _op_depthwise_conv2d(self, op: Op) -> None:
        kh, kw, c, mult = self.g.tensors[op.inputs[1]].shape

        def to_1hwc(w, q):
            if q is not None and q.axis is not None:
                q = QuantParams(q.scale, q.zero_point, 3)
            return w.reshape(1, kh, kw, c * mult), q
        self._windowed(op, "DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions", self.const(op.inputs[1], "1hwc", to_1hwc),
                       (kh, kw), depthMultiplier=mult)

    def _op_dense(self, op: Op) -> None:
        def to_oi(w, q):
            if q is not None and q.axis is not None:
                q = QuantParams(q.scale, q.zero_point, 0)
            return w.T, q
        w = self.const(op.inputs[1], "oi", to_oi)
        code, split = self.fused(op)
        y = self.output(op, split)
        self.emit("FULLY_CONNECTED", [self.act(op.inputs[0]), w, self.bias(op)], [y], "FullyConnectedOptions",
                  fusedActivationFunction=code)
        self.finish_split(op, split, y)

    def _pool(self, op: Op, opcode: str) -> None:
        kernel = tuple(op.attrs["kernel"])
        stride = tuple(op.attrs.get("stride", kernel))
        padding = self.padding(op, kernel, stride)
        if padding is None:
            self.fail(op, f"pads {op.attrs['pads']} are neither SAME nor VALID; TFLite pools support only those")
        code, split = self.fused(op)
        y = self.output(op, split)
        self.emit(opcode, [self.act(op.inputs[0])], [y], "Pool2DOptions", padding=padding, strideH=stride[0],
                  strideW=stride[1], filterHeight=kernel[0], filterWidth=kernel[1], fusedActivationFunction=code)
        self.finish_split(op, split, y)

    def _op_max_pool2d(self, op: Op) -> None:
        self._pool(op, "MAX_POOL_2D")

    def _op_avg_pool2d(self, op: Op) -> None:
        self._pool(op, "AVERAGE_POOL_2D")

    def _global_pool(self, op: Op, opcode: str) -> None:
        x, out = op.inputs[0], op.outputs[0]
        n, h, w, c = self.g.tensors[x].shape
        if opcode == "MEAN":
            if _FUSED.get(op.attrs.get("activation"), -1) != 0:
                self.fail(op, "a fused activation on an int8 MEAN has no TFLite form")
            self.emit("MEAN", [self.act(x), self.int32_const(f"{op.name}/axes", [1, 2])], [self.act(out)],
                      "ReducerOptions", keepDims=bool(op.attrs.get("keepdims")))
            return
        if self.quantized and opcode == "MAX_POOL_2D" and not _same_params(self.g, x, out):
            self.fail(op, "an int8 global max pool needs equal input and output quantization parameters")
        code, split = self.fused(op, allow_split=False)
        keep = bool(op.attrs.get("keepdims"))
        y = self.act(out) if keep else self.scratch(f"{out}/pooled", out, (n, 1, 1, c))
        self.emit(opcode, [self.act(x)], [y], "Pool2DOptions", padding=VALID, strideH=1, strideW=1,
                  filterHeight=h, filterWidth=w, fusedActivationFunction=code)
        if not keep:
            self._reshape(op, y, self.act(out), self.g.tensors[out].shape)

    def _op_global_avg_pool(self, op: Op) -> None:
        equal = not self.quantized or _same_params(self.g, op.inputs[0], op.outputs[0])
        self._global_pool(op, "AVERAGE_POOL_2D" if equal else "MEAN")

    def _op_global_max_pool(self, op: Op) -> None:
        self._global_pool(op, "MAX_POOL_2D")

    def _op_mean(self, op: Op) -> None:
        rank = len(self.g.tensors[op.inputs[0]].shape)
        axes = sorted({int(a) % rank for a in op.attrs["axes"]})
        self.emit("MEAN", [self.act(op.inputs[0]), self.int32_const(f"{op.name}/axes", axes)],
                  [self.act(op.outputs[0])], "ReducerOptions", keepDims=bool(op.attrs.get("keepdims")))

    def _binary(self, op: Op, opcode: str, options: str) -> None:
        code, split = self.fused(op)
        y = self.output(op, split)
        self.emit(opcode, [self.act(n) for n in op.inputs], [y], options, fusedActivationFunction=code)
        self.finish_split(op, split, y)

    def _op_add(self, op: Op) -> None:
        self._binary(op, "ADD", "AddOptions")

    def _op_mul(self, op: Op) -> None:
        self._binary(op, "MUL", "MulOptions")

    def _op_concat(self, op: Op) -> None:
        out = op.outputs[0]
        rank = len(self.g.tensors[out].shape)
        code, split = self.fused(op, allow_split=not self.quantized)
        if self.quantized and code:
            self.fail(op, "a fused activation on an int8 concatenation has no TFLite form")
        ins = []
        for name in op.inputs:
            x = self.act(name)
            if self.quantized and not _same_params(self.g, name, out):
                req = self.scratch(f"{name}/requantized_for_{op.name}", name, quant=self.g.tensors[out].quant)
                self.emit("QUANTIZE", [x], [req])
                x = req
            ins.append(x)
        y = self.output(op, split)
        self.emit("CONCATENATION", ins, [y], "ConcatenationOptions", axis=int(op.attrs.get("axis", -1)) % rank,
                  fusedActivationFunction=code)
        self.finish_split(op, split, y)

    def _reshape(self, op: Op, x: int, y: int, shape) -> None:
        shape = [int(d) for d in shape]
        self.emit("RESHAPE", [x, self.int32_const(f"{op.name}/shape", shape)], [y], "ReshapeOptions",
                  newShape=shape)

    def _op_reshape(self, op: Op) -> None:
        self._reshape(op, self.act(op.inputs[0]), self.act(op.outputs[0]), self.g.tensors[op.outputs[0]].shape)

    def _op_identity(self, op: Op) -> None:
        if self.quantized:
            self.emit("QUANTIZE", [self.act(op.inputs[0])], [self.act(op.outputs[0])])
        else:
            self._op_reshape(op)

    def _op_pad(self, op: Op) -> None:
        x, out = op.inputs[0], op.outputs[0]
        t, b, lft, r = (int(p) for p in op.attrs["pads"])
        paddings = self.int32_const(f"{op.name}/paddings", [[0, 0], [t, b], [lft, r], [0, 0]])
        value = float(op.attrs.get("value", 0.0))
        if value == 0.0:
            self.emit("PAD", [self.act(x), paddings], [self.act(out)])
            return
        q = self.g.tensors[out].quant
        if self.quantized:
            s, zp = float(q.scale[0]), int(q.zero_point[0])
            data = np.array([np.clip(Q.quantize_scalar(value, s, zp), Q.QMIN, Q.QMAX)], np.int8)
            cv = self.add(f"{op.name}/constant_values", (1,), "int8", data, QuantParams(q.scale, q.zero_point))
        else:
            cv = self.add(f"{op.name}/constant_values", (1,), "float32", np.array([value], np.float32))
        self.emit("PADV2", [self.act(x), paddings, cv], [self.act(out)])

    def _op_softmax(self, op: Op) -> None:
        self.emit("SOFTMAX", [self.act(op.inputs[0])], [self.act(op.outputs[0])], "SoftmaxOptions",
                  beta=float(op.attrs.get("beta", 1.0)))

    def _op_activation(self, op: Op) -> None:
        fn = op.attrs["function"]
        if fn not in _STANDALONE:
            self.fail(op, f"activation {fn!r} has no TFLite op; supported: {', '.join(_STANDALONE)}")
        fields = {"alpha": float(op.attrs.get("alpha", 0.2))} if fn == "leaky_relu" else {}
        self.emit(_STANDALONE[fn], [self.act(op.inputs[0])], [self.act(op.outputs[0])],
                  "LeakyReluOptions" if fields else None, **fields)

    # ---- flatbuffer ------------------------------------------------------------------------------------------
    def build(self, description: str) -> bytes:
        b = flatbuffers.Builder(1024 + sum(len(t.data or b"") for t in self.tensors))
        buffers = [_table(b, "Buffer")]
        tensor_offsets = []
        for t in self.tensors:
            buffer_index = 0
            if t.data is not None:
                buffers.append(_table(b, "Buffer", Data=_aligned_bytes(b, t.data)))
                buffer_index = len(buffers) - 1
            fields = {"Shape": b.CreateNumpyVector(np.asarray(t.shape, dtype=np.int32)),
                      "Type": _TYPES[t.dtype], "Buffer": buffer_index, "Name": b.CreateString(t.name)}
            if t.quant is not None:
                fields["Quantization"] = _quantization(b, t.quant)
            tensor_offsets.append(_table(b, "Tensor", **fields))
        codes: list[int] = []
        op_offsets = []
        for op in self.ops:
            builtin = getattr(tflite.BuiltinOperator, op.opcode)
            if builtin not in codes:
                codes.append(builtin)
            fields = {"OpcodeIndex": codes.index(builtin),
                      "Inputs": b.CreateNumpyVector(np.asarray(op.inputs, dtype=np.int32)),
                      "Outputs": b.CreateNumpyVector(np.asarray(op.outputs, dtype=np.int32))}
            if op.options:
                opt_fields = {k[0].upper() + k[1:]: v for k, v in op.fields.items()}
                if "NewShape" in opt_fields:
                    opt_fields["NewShape"] = b.CreateNumpyVector(np.asarray(opt_fields["NewShape"], np.int32))
                fields["BuiltinOptionsType"] = getattr(tflite.BuiltinOptions, op.options)
                fields["BuiltinOptions"] = _table(b, op.options, **opt_fields)
            op_offsets.append(_table(b, "Operator", **fields))
        code_offsets = [_table(b, "OperatorCode", DeprecatedBuiltinCode=min(c, 127), BuiltinCode=c, Version=1)
                        for c in codes]
        subgraph = _table(b, "SubGraph", Tensors=_offsets(b, tensor_offsets),
                          Inputs=b.CreateNumpyVector(np.asarray(self.inputs, dtype=np.int32)),
                          Outputs=b.CreateNumpyVector(np.asarray(self.outputs, dtype=np.int32)),
                          Operators=_offsets(b, op_offsets), Name=b.CreateString("main"))
        model = _table(b, "Model", Version=3, OperatorCodes=_offsets(b, code_offsets),
                       Subgraphs=_offsets(b, [subgraph]), Description=b.CreateString(description),
                       Buffers=_offsets(b, buffers))
        b.Finish(model, file_identifier=b"TFL3")
        return bytes(b.Output())


def _same_params(g: Graph, a: str, b: str) -> bool:
    qa, qb = g.tensors[a].quant, g.tensors[b].quant
    if qa is None or qb is None:
        return qa is qb
    return np.array_equal(qa.scale, qb.scale) and np.array_equal(qa.zero_point, qb.zero_point)


def _table(b: flatbuffers.Builder, name: str, **fields) -> int:
    """One table through the tflite package's generated Start / Add<Field> / End functions."""
    mod = importlib.import_module(f"tflite.{name}")
    mod.Start(b)
    for key, value in fields.items():
        getattr(mod, "Add" + key)(b, value)
    return mod.End(b)


def _offsets(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _aligned_bytes(b: flatbuffers.Builder, data: bytes) -> int:
    """A ubyte vector whose first byte is 16-byte aligned (int32/float data read in place by TFLM)."""
    b.StartVector(1, len(data), 16)
    b.head = b.head - len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    return b.EndVector()


def _quantization(b: flatbuffers.Builder, q: QuantParams) -> int:
    scale = b.CreateNumpyVector(np.asarray(q.scale, dtype=np.float32))
    zero_point = b.CreateNumpyVector(np.broadcast_to(np.asarray(q.zero_point, np.int64), q.scale.shape).copy())
    fields = {"Scale": scale, "ZeroPoint": zero_point}
    if q.axis is not None:
        fields["QuantizedDimension"] = int(q.axis)
    return _table(b, "QuantizationParameters", **fields)


__all__ = ["SUPPORTED_OPS", "to_tflite"]
