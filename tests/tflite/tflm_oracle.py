"""TFLM (tflite-micro's Python interpreter with its reference kernels) as the oracle for the TFLite tests,
plus a small builder of .tflite models on top of tflite-micro's pure-Python model editor.

The editor and the interpreter come from the `tflite_micro` wheel (support.module: skip locally, fail in
CI when missing); nothing here imports TensorFlow.
"""
from __future__ import annotations

import numpy as np
import support

_EDITOR = "tflite_micro.tensorflow.lite.micro.compression.model_editor"
_SCHEMA = "tflite_micro.tensorflow.lite.micro.python.schema_py_generated"
_DTYPES = {"int8": "INT8", "int32": "INT32", "float32": "FLOAT32", "int64": "INT64", "float16": "FLOAT16"}


def runtime():
    support.module("tflite_micro")
    from tflite_micro import runtime as rt
    return rt


def interpreter(blob: bytes, preserve: bool = False, arena: int = 8 << 20):
    rt = runtime()
    cfg = rt.InterpreterConfig.kPreserveAllTensors if preserve else rt.InterpreterConfig.kAllocationRecording
    return rt.Interpreter.from_bytes(bytes(blob), arena_size=arena, intrepreter_config=cfg)


def run(blob: bytes, *xs: np.ndarray) -> list[np.ndarray]:
    """Invoke TFLM once per batch item (TFLM models have batch 1); returns each output, batch first."""
    import tflite

    n_out = tflite.Model.GetRootAs(bytes(blob), 0).Subgraphs(0).OutputsLength()
    it = interpreter(blob)
    outs: list[list[np.ndarray]] = [[] for _ in range(n_out)]
    for b in range(xs[0].shape[0]):
        for k, x in enumerate(xs):
            it.set_input(np.ascontiguousarray(x[b:b + 1]), k)
        it.invoke()
        for k in range(n_out):
            outs[k].append(it.get_output(k))
    return [np.concatenate(o) for o in outs]


def all_tensors(blob: bytes, x: np.ndarray, indices) -> dict[int, np.ndarray]:
    """Values of the given TFLite tensor indices after one invoke with x (batch 1)."""
    it = interpreter(blob, preserve=True)
    it.set_input(np.ascontiguousarray(x), 0)
    it.invoke()
    return {i: np.asarray(it.GetTensor(int(i), 0)["tensor_data"]) for i in indices}


class ModelBuilder:
    """Build a one-subgraph .tflite: tensors, operators with builtin options, graph inputs/outputs."""

    def __init__(self):
        self.me = support.module(_EDITOR)
        self.fb = support.module(_SCHEMA)
        self.tensors, self.ops, self.inputs, self.outputs = [], [], [], []

    def tensor(self, name, shape, dtype="int8", scale=None, zp=0, axis=None, data=None):
        q = None
        if scale is not None:
            scales = [float(s) for s in np.atleast_1d(scale)]
            zps = [int(z) for z in np.broadcast_to(np.atleast_1d(zp), (len(scales),))]
            q = self.me.Quantization(scales if len(scales) > 1 else scales[0],
                                     zps if len(scales) > 1 else zps[0], axis=axis)
        kwargs = {"shape": tuple(int(d) for d in shape), "dtype": getattr(self.fb.TensorType, _DTYPES[dtype]),
                  "name": name, "quantization": q}
        if data is not None:
            kwargs["data"] = np.ascontiguousarray(np.asarray(data, dtype=dtype))
        t = self.me.Tensor(**kwargs)
        self.tensors.append(t)
        return t

    def input(self, *args, **kwargs):
        t = self.tensor(*args, **kwargs)
        self.inputs.append(t)
        return t

    def output(self, *args, **kwargs):
        t = self.tensor(*args, **kwargs)
        self.outputs.append(t)
        return t

    def op(self, opcode: str, inputs, outputs, options: str | None = None, **fields):
        op = self.me.Operator(opcode=getattr(self.fb.BuiltinOperator, opcode), inputs=list(inputs),
                              outputs=list(outputs))
        if options:
            opts = getattr(self.fb, options + "T")()
            for k, v in fields.items():
                setattr(opts, k, v)
            op._fb.builtinOptionsType = getattr(self.fb.BuiltinOptions, options)
            op._fb.builtinOptions = opts
        self.ops.append(op)
        return op

    def build(self) -> bytes:
        sg = self.me.Subgraph(tensors=self.tensors, operators=self.ops, inputs=self.inputs,
                              outputs=self.outputs)
        return bytes(self.me.Model(subgraphs=[sg]).build())


def dequantize_constant_weights(blob: bytes) -> bytes:
    """Make a hybrid (int8-weight, float-activation) model run on TFLM: give every int8 constant that
    feeds a float op its own DEQUANTIZE op (TFLM's reference kernel), so the op sees float weights."""
    me, fb = support.module(_EDITOR), support.module(_SCHEMA)
    model = me.read(bytes(blob))
    for code in model.operator_codes:  # files from older converters set only deprecated_builtin_code
        code.builtin_code = max(code.builtin_code, code._fb.deprecatedBuiltinCode)
    sg = model.subgraphs[0]
    for op in sg.operators:
        op.opcode = model.operator_codes[op.opcode_index].builtin_code
    def is_const(t):
        return t.buffer is not None and len(t.buffer.data) > 0

    new_ops = []
    for op in sg.operators:
        float_op = any(t is not None and not is_const(t) and t.dtype == fb.TensorType.FLOAT32
                       for t in op.inputs)
        for k, t in enumerate(op.inputs):
            if float_op and t is not None and is_const(t) and t.dtype == fb.TensorType.INT8:
                f = me.Tensor(shape=t.shape, dtype=fb.TensorType.FLOAT32, name=f"{t.name}_dequantized")
                sg.tensors.append(f)
                new_ops.append(me.Operator(opcode=fb.BuiltinOperator.DEQUANTIZE, inputs=[t], outputs=[f]))
                op.inputs[k] = f
        new_ops.append(op)
    sg.operators = new_ops
    return bytes(model.build())
