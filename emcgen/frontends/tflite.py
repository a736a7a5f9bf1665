"""TFLite flatbuffer (.tflite) -> emcgen IR, without TensorFlow (the `tflite` package parses the file).

What comes out:
- one IR op per TFLite operator (subgraph 0), named "<ir type>_<operator index>", in file order;
- SAME/VALID padding resolved to explicit pads; fused activations as attrs["activation"];
- weights converted to the IR layouts whatever their type: CONV_2D OHWI -> HWIO, DEPTHWISE_CONV_2D
  1HWC -> (KH, KW, C, MULT), FULLY_CONNECTED (OUT, IN) -> (IN, OUT); per-channel QuantParams follow the
  channel axis (see emcgen.tflite_int8 for the int8 storage conventions);
- int8 models: tensors keep their dtype (int8 activations, int8 weights, int32 biases) and the scales and
  zero points of the file; graph.meta["quantized"] is True. A float interface (QUANTIZE right after a
  float input, DEQUANTIZE right before an output) is stripped, so the graph's inputs and outputs are the
  int8 tensors; meta["float_interface"] names what was stripped and emcgen.tflite_int8.run_int8 accepts
  float inputs for such graphs.
- float models run on the float interpreter. Constant int8/float16 weights that feed float ops (TFLite
  "hybrid" / weight-only quantized models, and DEQUANTIZE of constants) are dequantized to float32 here,
  i.e. emcgen computes them in float, whereas TFLite's hybrid kernels quantize the activations on the fly;
  meta["dequantized_weights"] lists them.
- batch dimensions that are dynamic (-1) or 0 become 1; meta["tflite_tensors"] maps IR tensor names to
  the TFLite tensor indices (used to compare layer by layer with TFLM). IR tensor names are the TFLite
  names up to the first ";" (TFLite joins the names of fused TF ops), made unique.
- meta also carries the keys every frontend sets (framework, source, source_format, framework_version,
  input_names, output_names, preprocessing), see emcgen.frontends.
"""
from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import tflite
from tflite.utils import opcode2name

from ..errors import EmcError, FormatError, UnsupportedError
from ..ir import Graph, QuantParams
from ..ops import infer_shapes as _infer_shapes
from ..ops._common import resolve_pads

_DTYPES = {
    tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
    tflite.TensorType.INT32: np.int32, tflite.TensorType.INT8: np.int8, tflite.TensorType.UINT8: np.uint8,
    tflite.TensorType.INT64: np.int64, tflite.TensorType.INT16: np.int16, tflite.TensorType.BOOL: np.bool_,
}
_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
_ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6", 4: "tanh"}
_STANDALONE = {"RELU": "relu", "RELU6": "relu6", "RELU_N1_TO_1": "relu_n1_to_1", "LOGISTIC": "sigmoid",
               "TANH": "tanh", "LEAKY_RELU": "leaky_relu"}
# Ops that only compute a shape for RESHAPE (Keras' dynamic-batch Flatten); dropped when that is all they do.
_SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")


def _builtin_code(code) -> int:
    """TFLite's GetBuiltinCode: max(builtin_code, deprecated_builtin_code).

    Read from the raw field: the `tflite` package's BuiltinCode() returns the deprecated byte for codes
    below 127, which is 0 in files that only set builtin_code (e.g. written by tflite_micro's editor).
    """
    offset = code._tab.Offset(10)
    builtin = code._tab.Get(flatbuffers.number_types.Int32Flags, offset + code._tab.Pos) if offset else 0
    return max(int(builtin), int(code.DeprecatedBuiltinCode()))


def _options(op, cls):
    table = op.BuiltinOptions()
    if table is None:
        return None
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


def _read(source) -> tuple[bytes, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), "model"
    path = Path(source)
    try:
        return path.read_bytes(), path.stem
    except OSError as exc:
        raise EmcError(f"cannot read TFLite model {str(path)!r}: {exc.strerror or exc}") from None


def load_tflite(path_or_bytes, name: str | None = None) -> Graph:
    """Read a .tflite file (path or bytes) into an IR Graph; see the module docstring for the mapping."""
    data, default_name = _read(path_or_bytes)
    label = str(path_or_bytes) if not isinstance(path_or_bytes, bytes | bytearray | memoryview) else "<bytes>"
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise FormatError(f"{label} is not a TFLite flatbuffer (no 'TFL3' file identifier at byte 4)")
    try:
        return _Converter(data, name or default_name, label).convert()
    except EmcError:
        raise
    except Exception as exc:  # a corrupt flatbuffer surfaces as struct/index errors deep in the parser
        raise FormatError(f"{label}: corrupt or truncated TFLite flatbuffer "
                          f"({type(exc).__name__}: {exc})") from None


class _Converter:
    """One conversion: flatbuffer accessors, tensor bookkeeping and one handler per TFLite op."""

    def __init__(self, data: bytes, name: str, label: str):
        self.data, self.label = data, label
        self.model = tflite.Model.GetRootAs(data, 0)
        if self.model.SubgraphsLength() < 1:
            raise FormatError(f"{label}: the model has no subgraph")
        self.sg = self.model.Subgraphs(0)
        self.graph = Graph(name=name)
        self.names: dict[int, str] = {}           # TFLite tensor index -> IR activation name
        self.consts: dict[tuple, str] = {}        # (index, layout) -> IR constant name
        self.folded: dict[int, np.ndarray] = {}   # DEQUANTIZE of a constant -> float32 data
        self.shape_only: set[int] = set()
        self.dequantized: list[str] = []
        self.edge_in: dict[int, int] = {}         # QUANTIZE output index -> float graph input index
        self.edge_out: dict[int, int] = {}        # DEQUANTIZE input index -> float graph output index

    # ---- flatbuffer accessors -----------------------------------------------------------------------
    def opname(self, op) -> str:
        code = self.model.OperatorCodes(op.OpcodeIndex())
        builtin = _builtin_code(code)
        if builtin == tflite.BuiltinOperator.CUSTOM:
            return f"CUSTOM({(code.CustomCode() or b'').decode(errors='replace')})"
        try:
            return opcode2name(builtin)
        except Exception:
            return f"opcode {builtin}"

    def tensor(self, i: int):
        return self.sg.Tensors(int(i))

    def tname(self, i: int) -> str:
        raw = self.tensor(i).Name()
        # TFLite joins the names of fused TF ops with ";"; the first one names the tensor well enough
        return raw.decode(errors="replace").split(";")[0] if raw else f"tensor_{i}"

    def dtype(self, i: int):
        t = self.tensor(i).Type()
        if t not in _DTYPES:
            raise UnsupportedError(f"{self.label}: tensor {self.tname(i)!r} has type "
                                   f"{_TYPE_NAMES.get(t, t)}; "
                                   "supported: FLOAT32, INT8, INT32 (FLOAT16/INT8 constants)")
        return np.dtype(_DTYPES[t])

    def shape(self, i: int) -> tuple[int, ...]:
        t = self.tensor(i)
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        return tuple(d if d > 0 else 1 for d in shape)

    def quant(self, i: int) -> QuantParams | None:
        q = self.tensor(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        scale = q.ScaleAsNumpy().astype(np.float32)
        zp = q.ZeroPointAsNumpy() if q.ZeroPointLength() else np.zeros(scale.size, np.int64)
        return QuantParams(scale, zp, int(q.QuantizedDimension()) if scale.size > 1 else None)

    def raw_data(self, i: int) -> np.ndarray | None:
        if int(i) in self.folded:
            return self.folded[int(i)]
        t = self.tensor(i)
        buf = self.model.Buffers(t.Buffer())
        if buf is None:
            return None
        if buf.DataLength() > 0:
            raw = buf.DataAsNumpy().tobytes()
        elif buf.Offset() > 1:
            raw = self.data[buf.Offset(): buf.Offset() + buf.Size()]
        else:
            return None
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        return np.frombuffer(raw, dtype=self.dtype(i)).reshape(shape).copy()

    # ---- IR tensors ---------------------------------------------------------------------------------
    def act(self, i: int) -> str:
        """IR name of an activation tensor (created on first use)."""
        i = int(i)
        if i in self.names:
            return self.names[i]
        if i in self.shape_only:
            raise UnsupportedError(f"{self.label}: tensor {self.tname(i)!r} is computed from a shape "
                                   "(SHAPE/STRIDED_SLICE/PACK) and used as data; only RESHAPE may use it")
        if self.raw_data(i) is not None:
            return self.const(i)
        if self.dtype(i) not in (np.float32, np.int8):
            raise UnsupportedError(f"{self.label}: tensor {self.tname(i)!r} is {self.dtype(i)}; supported "
                                   "activations: float32 and int8 (not uint8 or int16 quantization)")
        name = self.graph.unique_name(self.tname(i))
        self.graph.add_tensor(name, self.shape(i), str(self.dtype(i)), quant=self.quant(i))
        self.names[i] = name
        return name

    def const(self, i: int, layout: str = "", transform=None, float_op: bool = False) -> str:
        """IR name of a constant, converted with transform(data, quant) -> (data, quant) once per layout.

        float_op: the consumer computes in float, so quantized constants are dequantized to float32.
        """
        key = (int(i), layout, float_op)
        if key in self.consts:
            return self.consts[key]
        data, quant = self.raw_data(i), self.quant(i)
        if data is None:
            raise UnsupportedError(f"{self.label}: tensor {self.tname(i)!r} must be a constant")
        dequantized = int(i) in self.folded or (float_op and data.dtype != np.float32)
        if float_op and data.dtype != np.float32:
            data, quant = self._dequantize_const(i, data, quant), None
        if transform is not None:
            data, quant = transform(data, quant)
        name = self.graph.add_const(self.tname(i), np.ascontiguousarray(data), quant=quant)
        if dequantized:
            self.dequantized.append(name)
        self.consts[key] = name
        return name

    def _dequantize_const(self, i, data, quant):
        if data.dtype == np.float16:
            return data.astype(np.float32)
        if quant is None or data.dtype not in (np.int8, np.uint8, np.int16, np.int32):
            raise UnsupportedError(f"{self.label}: constant {self.tname(i)!r} of type {data.dtype} feeds a "
                                   "float op and has no quantization to dequantize it with")
        shape = [1] * data.ndim
        if quant.axis is not None:
            shape[quant.axis] = -1
        scale = quant.scale.astype(np.float64).reshape(shape)
        zp = quant.zero_point.reshape(shape)
        return (scale * (data.astype(np.int64) - zp)).astype(np.float32)

    def out(self, i: int) -> str:
        name = self.act(i)
        self.graph.tensors[name].shape = self.shape(int(i))
        return name

    # ---- conversion ---------------------------------------------------------------------------------
    def convert(self) -> Graph:
        g, sg = self.graph, self.sg
        graph_inputs = [int(i) for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
        graph_outputs = [int(i) for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
        ops = [sg.Operators(k) for k in range(sg.OperatorsLength())]
        self._find_edges(ops, graph_inputs, graph_outputs)
        for k, op in enumerate(ops):
            self._convert_op(k, op)
        g.inputs = [self.act(self.edge_in_target(i)) for i in graph_inputs]
        g.outputs = [self.act(self.edge_out_source(i)) for i in graph_outputs]
        g.prune()
        for name in g.inputs:
            if len(g.tensors[name].shape) and g.tensors[name].shape[0] != 1:
                raise UnsupportedError(f"{self.label}: input {name!r} has shape {g.tensors[name].shape}; "
                                       "emcgen needs the batch dimension first with size 1 or dynamic")
        self._check_shapes()
        self._fill_meta(graph_inputs, graph_outputs)
        return g

    def edge_in_target(self, i: int) -> int:
        for q_out, q_in in self.edge_in.items():
            if q_in == i:
                return q_out
        return i

    def edge_out_source(self, i: int) -> int:
        for dq_in, dq_out in self.edge_out.items():
            if dq_out == i:
                return dq_in
        return i

    def _find_edges(self, ops, graph_inputs, graph_outputs):
        """QUANTIZE right after a float input / DEQUANTIZE right before an output: the float interface."""
        consumers: dict[int, int] = {}
        for op in ops:
            for i in op.InputsAsNumpy() if op.InputsLength() else []:
                consumers[int(i)] = consumers.get(int(i), 0) + 1
        for op in ops:
            name = self.opname(op)
            if name not in ("QUANTIZE", "DEQUANTIZE") or op.InputsLength() != 1:
                continue
            src, dst = int(op.Inputs(0)), int(op.Outputs(0))
            if (name == "QUANTIZE" and src in graph_inputs and consumers.get(src) == 1
                    and self.dtype(src) == np.float32 and self.dtype(dst) == np.int8):
                self.edge_in[dst] = src
            elif (name == "DEQUANTIZE" and dst in graph_outputs and self.dtype(src) == np.int8
                  and self.raw_data(src) is None):
                self.edge_out[src] = dst

    def _convert_op(self, k: int, op):
        name = self.opname(op)
        ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
        outs = [int(i) for i in op.OutputsAsNumpy()] if op.OutputsLength() else []
        if name == "QUANTIZE" and outs and outs[0] in self.edge_in:
            return
        if name == "DEQUANTIZE" and ins and ins[0] in self.edge_out:
            return
        if name in _SHAPE_OPS and all(self.dtype(o) == np.int32 for o in outs):
            self.shape_only.update(outs)
            return
        handler = getattr(self, "_op_" + name.lower(), None)
        if handler is None and name in _STANDALONE:
            handler = self._op_activation
        if handler is None:
            supported = sorted({n[4:].upper() for n in dir(self) if n.startswith("_op_")} - {"ACTIVATION"}
                               | set(_STANDALONE))
            raise UnsupportedError(f"{self.label}: operator {k} ({name}) is not supported; supported: "
                                   f"{', '.join(supported)}")
        self.k, self.name_k = k, name
        handler(k, op, ins, outs)

    def fail(self, what: str):
        raise UnsupportedError(f"{self.label}: operator {self.k} ({self.name_k}): {what}")

    def activation(self, code: int, float_op: bool) -> str | None:
        if code not in _ACTIVATIONS or (code == 4 and not float_op):
            self.fail(f"fused activation {code} is not supported; supported: NONE, RELU, RELU6, RELU_N1_TO_1"
                      + (", TANH" if float_op else ""))
        return _ACTIVATIONS[code]

    def is_float(self, i: int) -> bool:
        return self.dtype(i) == np.float32

    # ---- op handlers (one per TFLite builtin) --------------------------------------------------------
    def _window_attrs(self, opts, x, kernel, dilation=(1, 1)):
        stride = (opts.StrideH(), opts.StrideW())
        padding = {tflite.Padding.SAME: "same", tflite.Padding.VALID: "valid"}.get(opts.Padding())
        if padding is None:
            self.fail(f"padding {opts.Padding()} is not supported; supported: SAME, VALID")
        pads = resolve_pads(padding, self.shape(x)[1:3], kernel, stride, dilation)
        return {"stride": stride, "pads": pads}

    def _bias(self, ins, float_op):
        if len(ins) > 2 and ins[2] >= 0:
            return self.const(ins[2], float_op=float_op)
        return ""

    def _op_conv_2d(self, k, op, ins, outs):
        opts = _options(op, tflite.Conv2DOptions)
        x, fw = ins[0], ins[1]
        co, kh, kw, cig = self.shape(fw)
        if cig != self.shape(x)[3]:
            self.fail(f"grouped convolution (filter depth {cig}, input depth {self.shape(x)[3]}) "
                      "is not supported")
        f = self.is_float(x)
        dilation = (opts.DilationHFactor(), opts.DilationWFactor())

        def to_hwio(w, q):
            if q is not None and q.axis is not None:
                if q.axis != 0:
                    self.fail(f"per-channel filter quantization on axis {q.axis}; supported: 0")
                q = QuantParams(q.scale, q.zero_point, 3)
            return w.transpose(1, 2, 3, 0), q

        w = self.const(fw, "hwio", to_hwio, float_op=f)
        attrs = self._window_attrs(opts, x, (kh, kw), dilation)
        self.graph.add_op("conv2d", f"conv2d_{k}", [self.act(x), w, self._bias(ins, f)], [self.out(outs[0])],
                          dilation=dilation, activation=self.activation(opts.FusedActivationFunction(), f),
                          **attrs)

    def _op_depthwise_conv_2d(self, k, op, ins, outs):
        opts = _options(op, tflite.DepthwiseConv2DOptions)
        x, fw = ins[0], ins[1]
        _, kh, kw, co = self.shape(fw)
        c = self.shape(x)[3]
        if co % c:
            self.fail(f"{co} output channels is not a multiple of the {c} input channels")
        f = self.is_float(x)
        dilation = (opts.DilationHFactor(), opts.DilationWFactor())

        def to_khwcm(w, q):
            if q is not None and q.axis is not None:
                if q.axis != 3:
                    self.fail(f"per-channel filter quantization on axis {q.axis}; supported: 3")
                q = QuantParams(q.scale, q.zero_point, 2)
            return w.reshape(kh, kw, c, co // c), q

        w = self.const(fw, "khwcm", to_khwcm, float_op=f)
        attrs = self._window_attrs(opts, x, (kh, kw), dilation)
        self.graph.add_op("depthwise_conv2d", f"depthwise_conv2d_{k}", [self.act(x), w, self._bias(ins, f)],
                          [self.out(outs[0])], dilation=dilation,
                          activation=self.activation(opts.FusedActivationFunction(), f), **attrs)

    def _op_fully_connected(self, k, op, ins, outs):
        opts = _options(op, tflite.FullyConnectedOptions)
        x, fw = ins[0], ins[1]
        if opts is not None and opts.WeightsFormat() != 0:
            self.fail("shuffled weights are not supported; supported: DEFAULT weights format")
        n_out, n_in = self.shape(fw)
        xs, ys = self.shape(x), self.shape(outs[0])
        if int(np.prod(xs[1:], dtype=np.int64)) != n_in or ys[0] != xs[0] or len(ys) != 2:
            self.fail(f"input {xs} -> output {ys} does not keep the batch dimension first; supported: "
                      f"(N, ...) with {n_in} features per item -> (N, {n_out})")
        f = self.is_float(x)

        def to_io(w, q):
            if q is not None and q.axis is not None:
                if q.axis != 0:
                    self.fail(f"per-channel weight quantization on axis {q.axis}; supported: 0")
                q = QuantParams(q.scale, q.zero_point, 1)
            return w.T, q

        w = self.const(fw, "io", to_io, float_op=f)
        act = self.activation(opts.FusedActivationFunction() if opts else 0, f)
        self.graph.add_op("dense", f"dense_{k}", [self.act(x), w, self._bias(ins, f)], [self.out(outs[0])],
                          activation=act)

    def _pool(self, k, op, ins, outs, ir_type):
        opts = _options(op, tflite.Pool2DOptions)
        kernel = (opts.FilterHeight(), opts.FilterWidth())
        attrs = self._window_attrs(opts, ins[0], kernel)
        self.graph.add_op(ir_type, f"{ir_type}_{k}", [self.act(ins[0])], [self.out(outs[0])], kernel=kernel,
                          activation=self.activation(opts.FusedActivationFunction(), self.is_float(ins[0])),
                          **attrs)

    def _op_max_pool_2d(self, k, op, ins, outs):
        self._pool(k, op, ins, outs, "max_pool2d")

    def _op_average_pool_2d(self, k, op, ins, outs):
        self._pool(k, op, ins, outs, "avg_pool2d")

    def _binary(self, k, op, ins, outs, ir_type, cls):
        opts = _options(op, cls)
        f = self.is_float(outs[0])
        act = self.activation(opts.FusedActivationFunction() if opts else 0, f)
        args = [self.const(i, float_op=f) if self.raw_data(i) is not None else self.act(i) for i in ins]
        self.graph.add_op(ir_type, f"{ir_type}_{k}", args, [self.out(outs[0])], activation=act)

    def _op_add(self, k, op, ins, outs):
        self._binary(k, op, ins, outs, "add", tflite.AddOptions)

    def _op_mul(self, k, op, ins, outs):
        self._binary(k, op, ins, outs, "mul", tflite.MulOptions)

    def _op_concatenation(self, k, op, ins, outs):
        opts = _options(op, tflite.ConcatenationOptions)
        rank = len(self.shape(outs[0]))
        axis = opts.Axis() % rank
        if axis == 0:
            self.fail("concatenation along the batch axis is not supported")
        f = self.is_float(outs[0])
        act = self.activation(opts.FusedActivationFunction(), f)
        if act is not None and not f:
            self.fail("a fused activation on an int8 concatenation is not supported")
        self.graph.add_op("concat", f"concat_{k}", [self.act(i) for i in ins], [self.out(outs[0])],
                          axis=axis, activation=act)

    def _reshape(self, k, ins, outs):
        xs, ys = self.shape(ins[0]), self.shape(outs[0])
        if not xs or not ys or xs[0] != 1 or ys[0] != 1:
            self.fail(f"reshape {xs} -> {ys} must keep a leading batch dimension of 1")
        self.graph.add_op("reshape", f"reshape_{k}", [self.act(ins[0])], [self.out(outs[0])],
                          shape=tuple(ys[1:]))

    def _op_reshape(self, k, op, ins, outs):
        self._reshape(k, ins, outs)

    def _op_squeeze(self, k, op, ins, outs):
        self._reshape(k, ins, outs)

    def _op_expand_dims(self, k, op, ins, outs):
        self._reshape(k, ins, outs)

    def _op_softmax(self, k, op, ins, outs):
        opts = _options(op, tflite.SoftmaxOptions)
        self.graph.add_op("softmax", f"softmax_{k}", [self.act(ins[0])], [self.out(outs[0])],
                          beta=float(opts.Beta()) if opts else 1.0)

    def _op_pad(self, k, op, ins, outs):
        paddings = self.raw_data(ins[1])
        if paddings is None:
            self.fail("the paddings must be a constant")
        paddings = paddings.reshape(-1, 2)
        if paddings.shape[0] != 4 or paddings[0].any() or paddings[3].any():
            self.fail(f"paddings {paddings.tolist()}; supported: rank-4 NHWC padding of H and W only")
        value = 0.0
        if len(ins) > 2 and ins[2] >= 0:
            cv, q = self.raw_data(ins[2]), self.quant(ins[2])
            if cv is None:
                self.fail("the pad value must be a constant")
            value = float(cv.reshape(-1)[0]) if q is None else float(q.scale[0]) * (
                int(cv.reshape(-1)[0]) - int(q.zero_point[0]))
        pads = (int(paddings[1, 0]), int(paddings[1, 1]), int(paddings[2, 0]), int(paddings[2, 1]))
        self.graph.add_op("pad", f"pad_{k}", [self.act(ins[0])], [self.out(outs[0])], pads=pads, value=value)

    _op_padv2 = _op_pad

    def _op_mean(self, k, op, ins, outs):
        opts = _options(op, tflite.ReducerOptions)
        axes = self.raw_data(ins[1])
        if axes is None:
            self.fail("the axes must be a constant")
        rank = len(self.shape(ins[0]))
        axes = tuple(sorted({int(a) % rank for a in axes.reshape(-1)}))
        if 0 in axes:
            self.fail("a mean over the batch axis is not supported")
        self.graph.add_op("mean", f"mean_{k}", [self.act(ins[0])], [self.out(outs[0])], axes=axes,
                          keepdims=bool(opts.KeepDims()) if opts else False)

    def _op_quantize(self, k, op, ins, outs):
        if self.dtype(ins[0]) != np.int8 or self.dtype(outs[0]) != np.int8:
            self.fail(f"QUANTIZE {self.dtype(ins[0])} -> {self.dtype(outs[0])}; supported: float32 -> int8 "
                      "right after a model input, int8 -> int8")
        self.graph.add_op("identity", f"identity_{k}", [self.act(ins[0])], [self.out(outs[0])])

    def _op_dequantize(self, k, op, ins, outs):
        data = self.raw_data(ins[0])
        if data is None:
            self.fail("DEQUANTIZE is supported on constants and right before a model output")
        self.folded[outs[0]] = self._dequantize_const(ins[0], data, self.quant(ins[0]))

    def _op_activation(self, k, op, ins, outs):
        function = _STANDALONE[self.name_k]
        attrs = {"function": function}
        if function == "leaky_relu":
            opts = _options(op, tflite.LeakyReluOptions)
            attrs["alpha"] = float(opts.Alpha()) if opts else 0.2
        self.graph.add_op("activation", f"activation_{k}", [self.act(ins[0])], [self.out(outs[0])], **attrs)

    # ---- checks and metadata ------------------------------------------------------------------------
    def _check_shapes(self):
        """The IR's own shape inference must agree with the file: catches layout/attr mistakes early."""
        g = self.graph
        expected = {n: g.tensors[n].shape for op in g.ops for n in op.outputs}
        probe = g.copy()
        try:
            _infer_shapes(probe)
        except EmcError:
            raise
        except Exception as exc:
            raise FormatError(f"{self.label}: inconsistent tensor shapes "
                              f"({type(exc).__name__}: {exc})") from None
        for op in probe.ops:
            for n in op.outputs:
                if tuple(probe.tensors[n].shape) != tuple(expected[n]):
                    raise FormatError(f"{self.label}: op {op.name} computes shape "
                                      f"{probe.tensors[n].shape} for "
                                      f"{n!r} but the file says {expected[n]}")

    def _fill_meta(self, graph_inputs, graph_outputs):
        g = self.graph
        activations = [t for t in g.tensors.values() if not t.is_const]
        quantized = any(t.dtype == "int8" for t in activations)
        if quantized and any(t.dtype == "float32" for t in activations):
            raise UnsupportedError(f"{self.label}: the model mixes float and int8 activations; supported: "
                                   "all-float models and int8 models (float only at the inputs/outputs)")
        g.meta["framework"] = "tflite"
        g.meta["source"] = None if self.label == "<bytes>" else self.label
        g.meta["source_format"] = "tflite"
        g.meta["framework_version"] = f"schema {self.model.Version()}"
        g.meta["input_names"] = list(g.inputs)
        g.meta["output_names"] = list(g.outputs)
        g.meta["preprocessing"] = {}
        g.meta["quantized"] = quantized
        if quantized:
            g.meta["input_quant"] = {n: g.tensors[n].quant.to_json() for n in g.inputs}
            g.meta["output_quant"] = {n: g.tensors[n].quant.to_json() for n in g.outputs}
        if self.edge_in or self.edge_out:
            g.meta["float_interface"] = {
                "inputs": [self.tname(i) for i in graph_inputs if i in self.edge_in.values()],
                "outputs": [self.tname(i) for i in graph_outputs if i in self.edge_out.values()]}
        if self.dequantized:
            g.meta["dequantized_weights"] = [n for n in self.dequantized if n in g.tensors]
        index = {}
        for i, n in self.names.items():
            if n in g.tensors:
                index[n] = i
        g.meta["tflite_tensors"] = index
