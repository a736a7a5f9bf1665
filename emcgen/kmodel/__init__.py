"""kmodel v3 for the Kendryte K210: read, build, write, inspect, emulate and verify.

    from emcgen import kmodel
    km = kmodel.load("model.kmodel")          # or bytes; FormatError on anything malformed
    km.layers[0].regs.conv_value.arg_x        # decoded, signed register fields
    data = km.to_bytes()                      # byte-identical for an unmodified file
    outputs = kmodel.run(km, image)           # the K210's result, bit-exact for the KPU part
    kmodel.check(km)                          # [] or one line per problem; kmodel.verify raises
    print(kmodel.render(km)); kmodel.describe(km)   # text / JSON-serialisable description

Modules:
  format     struct layouts (dissect.cstruct, declared once) and the one table of layer types
  model      KModel, Layer, BatchNorm, Activation (the in-memory model)
  reader     load(): bytes -> KModel with bounds checks, tolerating nncase's missing final padding
  writer     KModel -> bytes: the source layout (exact round trip) or the recommended layout (docs §7.2)
  builder    constructors for every layer kind and conv_registers(), the register recipe from shapes
  layout     KPU-RAM feature-map layout, conv geometry, pool types
  access     main-buffer and KPU-RAM ranges each layer reads and writes
  kpu        bit-accurate K210_CONV (convolution, batch norm, activation, pooling, KPU RAM)
  cpu        the runtime's CPU layers (float32 as the SDK computes it)
  emulator   run()/trace()/pack_input(): the whole model as kpu_run_kmodel executes it
  verify     check()/verify(): what the hardware and runtime need beyond the arithmetic
  inspect    describe()/render()
  yolo       YOLOv2 region decoding (for detector models such as nncase's 20-class example)

Reference: docs/kmodel_v3.md in the shared documentation folder. Nothing here imports TensorFlow.
"""

from .builder import (
    activation,
    assemble,
    batch_norm,
    channelwise_dequantize,
    concat,
    conv_registers,
    fully_connected,
    k210_conv,
    layer,
    output,
)
from .emulator import pack_input, run, trace
from .format import LAYER_TYPES, RUNTIMES, LayerType, cs, layer_type
from .inspect import describe, render
from .model import Activation, BatchNorm, KModel, Layer
from .reader import load
from .verify import check, verify

__all__ = [
    "LAYER_TYPES",
    "RUNTIMES",
    "Activation",
    "BatchNorm",
    "KModel",
    "Layer",
    "LayerType",
    "activation",
    "batch_norm",
    "channelwise_dequantize",
    "check",
    "concat",
    "conv_registers",
    "cs",
    "describe",
    "fully_connected",
    "k210_conv",
    "assemble",
    "layer",
    "layer_type",
    "load",
    "output",
    "pack_input",
    "render",
    "run",
    "trace",
    "verify",
]
