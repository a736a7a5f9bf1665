"""Describe a kmodel v3 for people (`render`) and for tools (`describe`, JSON-serialisable).

Both list the header, the output table and every layer: type name and code, whether the official SDK
and Maix-EMC's runtime execute it, body offset and size, the body fields, the main-buffer byte ranges
and KPU-RAM line ranges it reads and writes, and for K210_CONV the decoded register words, shapes and
payload placement. The `emcgen inspect` command prints one or the other.
"""

from __future__ import annotations

import numpy as np

from .access import layer_access
from .format import pack, to_plain
from .layout import POOL_TYPES
from .writer import plan


def describe(km) -> dict:
    """Everything about the model as plain dicts, lists, ints, floats, strings and bools."""
    placed = plan(km)
    layers = []
    for i, (layer, (offset, size), conv_at) in enumerate(
        zip(km.layers, placed.bodies, placed.conv_offsets, strict=True)
    ):
        entry = {
            "index": i,
            "type": layer.name,
            "code": layer.type.code,
            "sdk": layer.type.sdk,
            "maix_emc": layer.type.maix_emc,
            "body_offset": offset,
            "body_size": size,
        }
        if layer.type.struct is None:
            entry["body_hex"] = bytes(layer.body[:64]).hex()
        else:
            entry["fields"] = to_plain(layer.body)
        acc = layer_access(layer)
        if acc is not None:
            entry.update(acc.to_json())
        if layer.type.tail == "fc":
            entry["weights"] = {"dtype": "float32", "shape": list(np.shape(layer.weights))}
        elif layer.type.tail == "concat":
            entry["inputs"] = [to_plain(r) for r in layer.inputs]
        elif layer.type.tail == "channelwise":
            entry["quant_params"] = np.asarray(layer.quant_params).tolist()
        elif layer.type.tail == "conv":
            entry["conv"] = _conv(layer, conv_at)
        layers.append(entry)
    return {
        "header": {
            "version": km.version,
            "flags": km.flags,
            "eight_bit_mode": km.eight_bit,
            "arch": km.arch,
            "layers_length": len(km.layers),
            "max_start_address": km.max_start_address,
            "main_mem_usage": km.main_mem_usage,
            "output_count": len(km.outputs),
        },
        "file_size": placed.file_size,
        "outputs": [{"index": k, "address": o.address, "size": o.size} for k, o in enumerate(km.outputs)],
        "layers": layers,
    }


def _conv(layer, offsets) -> dict:
    g = layer.geometry
    bn, act = layer.bn, layer.act
    return {
        "in_shape": list(g.in_shape),
        "out_shape": list(g.out_shape),
        "kernel": g.kernel,
        "depthwise": g.depthwise,
        "pool_type": g.pool_type,
        "pool": POOL_TYPES.get(g.pool_type, ("?",))[0],
        "src_line": g.src_line,
        "dst_line": g.dst_line,
        "registers": to_plain(layer.regs),
        "register_words": [f"0x{w:016x}" for w in np.frombuffer(_regs_bytes(layer), "<u8").tolist()],
        "offsets": dict(zip(("registers", "weights", "bn", "act"), offsets, strict=True)),
        "weights": {"dtype": str(np.asarray(layer.weights).dtype), "shape": list(np.shape(layer.weights))},
        "bn": {
            "entries": len(bn),
            "norm_mul": bn.norm_mul.tolist(),
            "norm_add": bn.norm_add.tolist(),
            "norm_shift": bn.norm_shift.tolist(),
        },
        "act": {
            "x_start": act.x_start.tolist(),
            "y_mul": act.y_mul.tolist(),
            "shift_number": act.shift_number.tolist(),
            "bias": act.bias.tolist(),
        },
    }


def _regs_bytes(layer) -> bytes:
    return pack(layer.regs, "regs")


def _ranges(ranges, unit="") -> str:
    return ",".join(f"{a}-{e}{unit}" for a, e in ranges) or "-"


def render(km) -> str:
    """A human-readable summary: header, outputs, one line per layer, then the conv registers."""
    d = describe(km)
    h = d["header"]
    lines = [
        f"kmodel v{h['version']}  {d['file_size']} bytes  {h['layers_length']} layers  "
        f"{'8' if h['eight_bit_mode'] else '16'}-bit weights  main_mem_usage {h['main_mem_usage']} B  "
        f"max_start_address {h['max_start_address']}  arch {h['arch']}  flags 0x{h['flags']:x}"
    ]
    for o in d["outputs"]:
        lines.append(f"output {o['index']}: main [{o['address']}, {o['address'] + o['size']}) {o['size']} B")
    lines.append(
        f"{'#':>3} {'type':<36} {'offset':>8} {'size':>7}  {'main reads':<18} {'main writes':<18} "
        f"{'KPU lines r/w':<24} details"
    )
    for e in d["layers"]:
        name = e["type"] + ("" if e["sdk"] else " *")
        kpu = f"{_ranges(e.get('kpu_reads', []))}/{_ranges(e.get('kpu_writes', []))}"
        lines.append(
            f"{e['index']:>3} {name:<36} {e['body_offset']:>8} {e['body_size']:>7}  "
            f"{_ranges(e.get('main_reads', [])):<18} {_ranges(e.get('main_writes', [])):<18} "
            f"{kpu:<24} {_details(e)}"
        )
    if not all(e["sdk"] for e in d["layers"]):
        lines.append(
            "* not executed by the official SDK v3 runtime (Maix-EMC's patched kpu.c runs types 6, 21)"
        )
    for e in d["layers"]:
        if "conv" in e:
            lines.append(f"layer {e['index']} K210_CONV registers:")
            for (word, fields), raw in zip(
                e["conv"]["registers"].items(), e["conv"]["register_words"], strict=True
            ):
                shown = " ".join(f"{k}={v}" for k, v in fields.items() if not k.startswith("reserved"))
                lines.append(f"  {word:<22} {raw}  {shown}")
    return "\n".join(lines)


def _details(e) -> str:
    if "conv" in e:
        c = e["conv"]
        kind = "dw" if c["depthwise"] else "conv"
        return (
            f"{kind} {c['kernel']}x{c['kernel']} {'x'.join(map(str, c['in_shape']))} -> "
            f"{'x'.join(map(str, c['out_shape']))} pool {c['pool_type']} ({c['pool']}) "
            f"{c['weights']['dtype']} weights" + (" +main out" if e["fields"]["flags"] & 1 else "")
        )
    if "fields" not in e:
        return f"opaque body {e['body_hex'][:32]}"
    shown = []
    for k, v in e["fields"].items():
        if k == "flags" or "address" in k or k == "table":
            continue
        if isinstance(v, dict):
            v = "(" + ",".join(str(x) for x in v.values()) + ")"
        shown.append(f"{k}={v}")
    return " ".join(shown)
