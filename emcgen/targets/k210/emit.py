"""Turn lowered steps plus their memory plans into kmodel v3 layers (emcgen.kmodel builders).

Only this module knows the body fields of each layer type; the arithmetic parameters come from
kpu_quant (KPU convolutions) and from the small rules below (CPU layers, float32 like the SDK).
"""
from __future__ import annotations

import math

import numpy as np

from ... import kmodel
from .kpu_quant import UQuant
from .lower import Lowered
from .memory import MemoryLayout


def quant_param(q: UQuant) -> tuple[float, float]:
    """(scale, bias) of the SDK's QUANTIZE/DEQUANTIZE bodies: real = q*scale + bias."""
    return float(q.scale), float(-q.zero_point * q.scale)


def quantized_add_params(qa: UQuant, qb: UQuant, qo: UQuant) -> dict[str, int]:
    """QUANTIZED_ADD fields: v = (a - za)*ma + (b - zb)*mb (shift 0, exact), out = carry_shift(v*om, os) + zo.

    ma, mb carry the input scales relative to the larger one in 16 bits; om/2^os = smax / (2^16 * so)
    keeps |v*om| < 2^57, inside the runtime's 64-bit arithmetic.
    """
    smax = max(qa.scale, qb.scale)
    ma = int(round(qa.scale / smax * (1 << 16)))
    mb = int(round(qb.scale / smax * (1 << 16)))
    ratio = smax / ((1 << 16) * qo.scale)
    shift = max(0, min(62, int(math.floor(math.log2(((1 << 31) - 1) / ratio)))))
    om = int(round(ratio * (1 << shift)))
    while om >= (1 << 31):
        shift -= 1
        om = int(round(ratio * (1 << shift)))
    return dict(in_a_offset=-int(qa.zero_point), in_a_mul=ma, in_a_shift=0,
                in_b_offset=-int(qb.zero_point), in_b_mul=mb, in_b_shift=0,
                out_offset=int(qo.zero_point), out_mul=om, out_shift=shift)


def _whc(shape) -> tuple[int, int, int]:
    c, h, w = shape
    return w, h, c


def emit(lowered: Lowered, mem: MemoryLayout, weight_bits: int = 8) -> kmodel.KModel:
    B = lowered.buffers
    kline = mem.kpu.offsets
    moff = mem.main.offsets

    def main(name: str) -> int:
        return int(moff[name])

    layers = []
    for step in lowered.steps:
        k = step.kind
        p = step.params
        if k == "conv":
            cp = p["conv"]
            regs = kmodel.conv_registers(
                in_shape=p["in_shape"], out_channels=p["out_shape"][0], kernel=p["kernel"],
                src_line=int(kline[step.reads[0]]), dst_line=int(kline[step.writes[0]]), pool_type=p["pool_type"],
                depthwise=p["depthwise"], pad_value=cp.pad_value, weight_bits=weight_bits,
                arg_x=cp.arg_x, shr_x=cp.shr_x, arg_w=cp.arg_w, shr_w=cp.shr_w, arg_add=cp.arg_add)
            bn = kmodel.batch_norm(cp.norm_mul, cp.norm_add, cp.norm_shift)
            act = kmodel.activation(cp.act.x_start, cp.act.y_mul, cp.act.shift, cp.act.bias)
            main_out = main(p["main_out"]) if p.get("main_out") else None
            layers.append(kmodel.k210_conv(regs, cp.weights, bn, act, main_mem_out_address=main_out))
        elif k == "add_padding":
            layers.append(kmodel.layer("K210_ADD_PADDING", main_mem_in_address=main(step.reads[0]),
                                       kpu_mem_out_address=int(kline[step.writes[0]]), channels=p["channels"]))
        elif k == "remove_padding":
            layers.append(kmodel.layer("K210_REMOVE_PADDING", main_mem_in_address=main(step.reads[0]),
                                       main_mem_out_address=main(step.writes[0]), channels=p["channels"]))
        elif k == "upload":
            c, h, w = B[step.writes[0]].shape
            layers.append(kmodel.layer("K210_UPLOAD", main_mem_in_address=main(step.reads[0]),
                                       kpu_mem_out_address=int(kline[step.writes[0]]), width=w, height=h, channels=c))
        elif k in ("quantize", "dequantize"):
            src, dst = step.reads[0], step.writes[0]
            q = p["quant"]
            if k == "quantize":
                layers.append(kmodel.layer("QUANTIZE", main_mem_in_address=main(src), mem_out_address=main(dst),
                                           count=B[dst].count, quant_param=quant_param(q)))
            else:
                layers.append(kmodel.layer("DEQUANTIZE", main_mem_in_address=main(src),
                                           main_mem_out_address=main(dst), count=B[dst].count,
                                           quant_param=quant_param(q)))
        elif k == "fc":
            layers.append(kmodel.fully_connected(main(step.reads[0]), main(step.writes[0]), p["weights"], p["bias"],
                                                 act=p["act"]))
        elif k in ("max_pool", "avg_pool"):
            (kh, kw), (sh, sw), (ph, pw) = p["kernel"], p["stride"], p["padding"]
            fields = dict(main_mem_in_address=main(step.reads[0]) + p.get("in_offset", 0),
                          main_mem_out_address=main(step.writes[0]), in_shape=_whc(p["in_shape"]),
                          out_shape=_whc(p["out_shape"]), kernel_width=kw, kernel_height=kh, stride_width=sw,
                          stride_height=sh, padding_width=pw, padding_height=ph)
            if k == "max_pool":
                layers.append(kmodel.layer("QUANTIZED_MAX_POOL2D", **fields))
            else:
                layers.append(kmodel.layer("AVERAGE_POOL2D", act=0, **fields))
        elif k == "global_avg_pool":
            layers.append(kmodel.layer("GLOBAL_AVERAGE_POOL2D", main_mem_in_address=main(step.reads[0]),
                                       main_mem_out_address=main(step.writes[0]), kernel_size=p["kernel_size"],
                                       channels=p["channels"]))
        elif k == "quantized_add":
            a, b = step.reads
            out = step.writes[0]
            layers.append(kmodel.layer("QUANTIZED_ADD", main_mem_in_a_address=main(a), main_mem_in_b_address=main(b),
                                       main_mem_out_address=main(out), count=B[out].count,
                                       **quantized_add_params(B[a].quant, B[b].quant, B[out].quant)))
        elif k == "concat":
            ranges = [(main(r), B[r].count) for r in step.reads]
            layers.append(kmodel.concat(main(step.writes[0]), ranges, quantized=True))
        elif k == "requantize":
            out = step.writes[0]
            layers.append(kmodel.layer("REQUANTIZE", main_mem_in_address=main(step.reads[0]),
                                       main_mem_out_address=main(out), count=B[out].count,
                                       table=np.asarray(p["table"], np.uint8)))
        elif k in ("softmax", "logistic"):
            out = step.writes[0]
            layers.append(kmodel.layer(k.upper(), main_mem_in_address=main(step.reads[0]),
                                       main_mem_out_address=main(out), channels=B[out].count))
        elif k == "flatten":
            layers.append(kmodel.layer("TENSORFLOW_FLATTEN", main_mem_in_address=main(step.reads[0]),
                                       main_mem_out_address=main(step.writes[0]), shape=_whc(p["shape"])))
        elif k == "resize_nearest":
            src, out = step.reads[0], step.writes[0]
            _, oh, ow = B[out].shape
            layers.append(kmodel.layer("QUANTIZED_RESIZE_NEAREST_NEIGHBOR", main_mem_in_address=main(src),
                                       main_mem_out_address=main(out), in_shape=_whc(B[src].shape), out_width=ow,
                                       out_height=oh, align_corners=0))
        else:
            raise AssertionError(f"no emitter for step kind {k!r}")
    outputs = [kmodel.output(main(b), B[b].count * 4) for b in lowered.output_buffers]
    return kmodel.assemble(layers, outputs, main_mem_usage=int(mem.main_bytes), eight_bit=weight_bits == 8)
