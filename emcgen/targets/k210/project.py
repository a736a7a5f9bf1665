"""K210 target: a Kendryte standalone-SDK C project that embeds the kmodel, runs it and checks the result.

`build()` asks kmodel_target.build_kmodel() for the kmodel, the calibration sample and emcgen's emulator
outputs for it, checks that everything fits the K210's 6 MiB SRAM (DoesNotFitError with the numbers if not)
and renders templates/k210/ with Jinja2 into the project folder: CMakeLists.txt (out-of-tree build against
an SDK checkout), README.md, src/main.c, src/model_data.[ch] (the kmodel array + CRC-32), src/model_io.[ch]
(input packing, dequantize, softmax, top-k), src/test_data.[ch] (test input, camera frame, expected outputs)
and src/compat/ (stand-ins some SDK versions need for a C-only build). The SDK itself is never copied.
`render_project()` does the rendering from any object with KModelBuild's fields, so it is testable without
a model conversion.
"""
from __future__ import annotations

import dataclasses
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ... import __version__
from ...errors import DoesNotFitError, EmcError, UnsupportedError
from ...report import Report
from ...templating import templates_dir
from .. import BuildContext, Target

SRAM_BYTES = 6 * 1024 * 1024          # general-purpose SRAM the linker script gives the CPUs
KPU_RAM_BYTES = 2 * 1024 * 1024       # the KPU's own RAM (feature maps)
KPU_RAM_LINES = 32768                 # 64-byte lines of KPU RAM
# What the firmware needs besides the model, its buffers and the test data: code and data of the SDK
# drivers, newlib and main.c (measured ~95 KB with SDK V0.5.7, ~68 KB with V0.5.6; docs/k210_sdk_build.md),
# the two 32 KiB stacks of the SDK's linker script, the ~48 KiB block table V0.5.7's iomem allocator mallocs,
# and ~110 KiB headroom for printf's buffers and the user's own code.
FIRMWARE_RESERVE_BYTES = 320 * 1024
MODEL_ALIGN = 256

CAMERA_FORMATS = {
    # name: (C enum, element C type, bytes per pixel, description)
    "rgb888": ("EMC_PIXEL_RGB888", "uint8_t", 3, "RGB888 (interleaved R, G, B bytes)"),
    "rgb565": ("EMC_PIXEL_RGB565", "uint16_t", 2, "RGB565 (one uint16_t per pixel)"),
    "grey": ("EMC_PIXEL_GREY", "uint8_t", 1, "greyscale (one byte per pixel)"),
}
DEFAULT_TOLERANCE = 1e-4
DEFAULT_TOP_K = 5
PLL0_HZ = 800_000_000      # CPU runs at PLL0 / 2
PLL1_HZ = 400_000_000      # KPU clock, as in Kendryte's demos
DMA_CHANNEL = 5
TIMING_RUNS = 10
PRINT_MAX = 16


def template_root() -> Path:
    """Folder holding the project templates (see emcgen.templating)."""
    return templates_dir("k210").parent


# ---- the target --------------------------------------------------------------------------------------

class K210ProjectTarget(Target):
    name = "k210"
    summary = "Kendryte standalone-SDK C project (CMake) that embeds the kmodel, runs it on the KPU and checks it"
    output_kind = "project"

    def add_arguments(self, parser) -> None:
        parser.add_argument("--k210-labels", metavar="FILE",
                            help="k210: class names, one per line, for output 0 (printed with the top-k)")
        parser.add_argument("--k210-camera", choices=sorted(CAMERA_FORMATS),
                            help="k210: camera pixel format the input helpers are set up for "
                                 "(default rgb888 for 3-channel models, grey for 1-channel)")
        parser.add_argument("--k210-camera-size", metavar="WxH",
                            help="k210: camera frame size, resized to the model input by nearest neighbour "
                                 "(default: the model's input size)")
        parser.add_argument("--k210-tolerance", type=float, metavar="X",
                            help=f"k210: absolute tolerance of the on-chip PASS/FAIL check "
                                 f"(default {DEFAULT_TOLERANCE:g})")

    def build(self, ctx: BuildContext, out: Path) -> Report:
        from .kmodel_target import build_kmodel
        kb = build_kmodel(ctx)
        report = render_project(kb, out, ctx.options, source=ctx.source)
        ctx.log(f"k210: SRAM {report.extra['k210']['sram_fit']}")
        return report


# ---- options -----------------------------------------------------------------------------------------

@dataclass
class ProjectOptions:
    labels: list[str]
    camera: str
    camera_size: tuple[int, int]       # (W, H)
    tolerance: float


def parse_options(options: dict[str, Any] | None, input_shape: tuple[int, int, int], n_classes: int
                  ) -> ProjectOptions:
    options = options or {}
    h, w, c = input_shape
    labels = _labels(options.get("k210_labels"), n_classes)
    camera = options.get("k210_camera") or ("grey" if c == 1 else "rgb888")
    if camera not in CAMERA_FORMATS:
        raise EmcError(f"--k210-camera {camera!r}: supported formats are {', '.join(sorted(CAMERA_FORMATS))}")
    size = options.get("k210_camera_size")
    if size is None:
        camera_size = (w, h)
    elif isinstance(size, str):
        m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", size)
        if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
            raise EmcError(f"--k210-camera-size {size!r}: give WIDTHxHEIGHT in pixels, e.g. 320x240")
        camera_size = (int(m.group(1)), int(m.group(2)))
    else:
        camera_size = (int(size[0]), int(size[1]))
    if camera_size[0] * camera_size[1] > 1920 * 1080:
        raise EmcError(f"--k210-camera-size {camera_size[0]}x{camera_size[1]}: the embedded test frame would not "
                       "fit the K210's SRAM; use at most 1920x1080 (K210 cameras give 320x240)")
    tol = options.get("k210_tolerance")
    tol = DEFAULT_TOLERANCE if tol is None else float(tol)
    if not np.isfinite(tol) or tol < 0:
        raise EmcError(f"--k210-tolerance {tol}: give a non-negative number, e.g. {DEFAULT_TOLERANCE:g}")
    return ProjectOptions(labels, camera, camera_size, tol)


def _labels(value, n_classes: int) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, Path)):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise EmcError(f"--k210-labels {value}: cannot read it ({exc})") from None
        labels = [line.strip() for line in text.splitlines() if line.strip()]
        where = f"--k210-labels {value}"
    else:
        labels = [str(x) for x in value]
        where = "k210_labels"
    if len(labels) != n_classes:
        raise EmcError(f"{where} has {len(labels)} class names but output 0 has {n_classes} values; "
                       "give one name per line, one line per class")
    return labels


# ---- pure helpers (numpy references of what the generated C does) -------------------------------------

def crc32(data: bytes) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 integer luma of (..., 3) uint8, as emc_luma()."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((77 * r + 150 * g + 29 * b + 128) >> 8).astype(np.uint8)


def rgb565_encode(rgb: np.ndarray) -> np.ndarray:
    r, g, b = (rgb[..., i].astype(np.uint16) for i in range(3))
    return ((r >> 3) << 11) | ((g >> 2) << 5) | (b >> 3)


def rgb565_decode(px: np.ndarray) -> np.ndarray:
    px = px.astype(np.uint16)
    r5, g6, b5 = (px >> 11) & 0x1F, (px >> 5) & 0x3F, px & 0x1F
    return np.stack([(r5 << 3) | (r5 >> 2), (g6 << 2) | (g6 >> 4), (b5 << 3) | (b5 >> 2)], axis=-1).astype(np.uint8)


def nearest(img: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Nearest-neighbour resize with source index (i * src) // dst, as emc_pack_input()."""
    h, w = img.shape[:2]
    ys = (np.arange(out_h) * h) // out_h
    xs = (np.arange(out_w) * w) // out_w
    return img[ys][:, xs]


def pack_input(frame: np.ndarray, fmt: str, dst_h: int, dst_w: int, dst_c: int) -> np.ndarray:
    """Planar uint8 CHW from a camera frame: (H, W, 3) rgb888, (H, W) uint16 rgb565 or (H, W) grey."""
    small = nearest(frame, dst_h, dst_w)
    if fmt == "rgb565":
        rgb = rgb565_decode(small)
    elif fmt == "grey":
        rgb = np.repeat(small[..., None], 3, axis=-1)
    else:
        rgb = small
    if dst_c == 3:
        return np.ascontiguousarray(rgb.transpose(2, 0, 1))
    return (small if fmt == "grey" else luma(rgb))[None]


def camera_frame(sample: np.ndarray, fmt: str, width: int, height: int) -> np.ndarray:
    """The (H, W, C) uint8 sample shown as a camera frame of the given format and size."""
    img = nearest(sample, height, width)
    rgb = np.repeat(img, 3, axis=-1) if img.shape[-1] == 1 else img
    if fmt == "rgb565":
        return rgb565_encode(rgb)
    if fmt == "grey":
        return img[..., 0] if img.shape[-1] == 1 else luma(rgb)
    return np.ascontiguousarray(rgb)


# ---- C text helpers ------------------------------------------------------------------------------------

def hex_rows(data: bytes, per_row: int = 16) -> list[str]:
    text = data.hex()
    rows = []
    for i in range(0, len(data), per_row):
        chunk = text[2 * i:2 * (i + per_row)]
        rows.append(", ".join("0x" + chunk[j:j + 2] for j in range(0, len(chunk), 2)) + ",")
    return rows


def u16_rows(values: np.ndarray, per_row: int = 12) -> list[str]:
    flat = [f"0x{int(v):04x}" for v in np.asarray(values).reshape(-1)]
    return [", ".join(flat[i:i + per_row]) + "," for i in range(0, len(flat), per_row)]


def c_float(value) -> str:
    """A float32 as a C float literal that reads back to the same float32."""
    v = float(np.float32(value))
    if np.isnan(v):
        return "NAN"
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    text = f"{v:.9g}"
    if not any(ch in text for ch in ".e"):
        text += ".0"
    return text + "f"


def float_rows(values: np.ndarray, per_row: int = 6) -> list[str]:
    flat = [c_float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1)]
    return [", ".join(flat[i:i + per_row]) + "," for i in range(0, len(flat), per_row)]


def c_string(text: str) -> str:
    """Body of a C string literal (no quotes): escapes, and non-ASCII as UTF-8 octal escapes."""
    out = []
    for byte in str(text).encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 32 <= byte < 127 and ch != "?":
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def c_comment(text: str) -> str:
    return str(text).replace("*/", "* /").replace("\n", " ")


def c_identifier(name: str) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_") or "emc_k210"
    return ident if not ident[0].isdigit() else "k210_" + ident


# ---- rendering -----------------------------------------------------------------------------------------

def render_project(kb, out: Path, options: dict[str, Any] | None = None, *, source: str = "",
                   name: str | None = None) -> Report:
    """Write the project for `kb` (a KModelBuild or anything with its fields) into `out`; return the report."""
    from ...kmodel import load as load_kmodel
    out = Path(out)
    name = c_identifier(name or out.name)
    data = bytes(kb.data)
    km = load_kmodel(data)
    h, w, c = (int(x) for x in kb.input_shape)
    sample = np.asarray(kb.sample_input)
    if sample.dtype != np.uint8 or sample.shape != (h, w, c):
        raise ValueError(f"sample_input must be uint8 {(h, w, c)}, got {sample.dtype} {sample.shape}")
    outputs = _outputs(kb)
    opts = parse_options(options, (h, w, c), outputs[0]["count"])
    sdk = sdk_facts(km)
    if sdk["first_layer"] != "K210_CONV":
        raise UnsupportedError(f"the K210 project feeds uint8 pixels to the KPU, but this kmodel's first layer is "
                               f"{sdk['first_layer']}; only kmodels that start with K210_CONV are supported")
    memory = memory_budget(kb, km, opts, outputs)
    frame = _frame(sample, opts)
    affine = getattr(kb, "input_affine", None)
    notes = list(getattr(kb, "notes", []) or [])
    context = {
        "name": name,
        "version": __version__,
        "source": source or getattr(kb.report, "model", "") or "a model",
        "kmodel": {"size": len(data), "crc32": crc32(data), "main_mem_usage": km.main_mem_usage,
                   "rows": hex_rows(data)},
        "input": {"h": h, "w": w, "c": c, "bytes": h * w * c,
                  "scale": None if affine is None else float(affine[0]),
                  "offset": None if affine is None else float(affine[1])},
        "outputs": outputs,
        "max_output_count": max(o["count"] for o in outputs),
        "output_is_probability": sdk["last_layer"] == "SOFTMAX",
        "labels": opts.labels,
        "tolerance": opts.tolerance,
        "test_input_rows": hex_rows(sample.transpose(2, 0, 1).tobytes()),
        "sample_note": getattr(kb, "sample_note", "") or "the first calibration sample",
        "frame": frame,
        "pll0_hz": PLL0_HZ, "pll1_hz": PLL1_HZ, "dma_channel": DMA_CHANNEL, "timing_runs": TIMING_RUNS,
        "print_max": PRINT_MAX, "top_k": min(DEFAULT_TOP_K, outputs[0]["count"]),
        "memory": memory, "sdk": sdk, "notes": notes, "options": opts,
        "top": top_classes(outputs[0]["expected"], opts.labels, sdk["last_layer"] == "SOFTMAX", DEFAULT_TOP_K),
        "stub_flags": " ".join(_stub_flags()),
    }
    _render_tree(template_root() / "k210", out, context)
    (out / "model.kmodel").write_bytes(data)
    return _report(kb, memory, sdk, notes, name)


def top_classes(values: np.ndarray, labels: list[str], is_probability: bool, k: int) -> list[dict[str, Any]]:
    """The top-k lines main.c prints for output 0 (README's expected output)."""
    x = np.asarray(values, dtype=np.float32).reshape(-1)
    if x.size <= 1:
        return []
    probs = x if is_probability else np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    order = np.argsort(-x, kind="stable")[:k]
    return [{"rank": r + 1, "index": int(i), "label": labels[i] if i < len(labels) else "",
             "value": float(x[i]), "probability": float(probs[i])} for r, i in enumerate(order)]


def _outputs(kb) -> list[dict[str, Any]]:
    expected = list(kb.sample_expected)
    if len(expected) != len(kb.outputs) or not kb.outputs:
        raise ValueError(f"{len(kb.outputs)} outputs but {len(expected)} expected arrays")
    result = []
    for i, (o, exp) in enumerate(zip(kb.outputs, expected, strict=True)):
        exp = np.asarray(exp, dtype=np.float32).reshape(-1)
        count = int(np.prod(o["shape"]))
        if o.get("dtype", "float32") != "float32" or int(o["bytes"]) != 4 * count or exp.size != count:
            raise ValueError(f"output {i}: {o} does not match {exp.size} expected float32 values")
        result.append({"name": o.get("name") or f"output_{i}", "shape": [int(x) for x in o["shape"]],
                       "count": count, "expected": exp, "expected_rows": float_rows(exp)})
    return result


def _frame(sample: np.ndarray, opts: ProjectOptions) -> dict[str, Any]:
    h, w, c = sample.shape
    fw, fh = opts.camera_size
    enum, ctype, _bpp, label = CAMERA_FORMATS[opts.camera]
    frame = camera_frame(sample, opts.camera, fw, fh)
    packed = pack_input(frame, opts.camera, h, w, c)
    rows = u16_rows(frame) if ctype == "uint16_t" else hex_rows(frame.tobytes())
    return {"format": opts.camera, "enum": enum, "ctype": ctype, "label": label, "w": fw, "h": fh,
            "count": int(frame.size), "bytes": int(frame.nbytes), "rows": rows,
            "packed_crc32": crc32(packed.tobytes()), "exact": bool(np.array_equal(packed, sample.transpose(2, 0, 1)))}


def sdk_facts(km) -> dict[str, Any]:
    """What about this kmodel depends on the SDK version (docs/kmodel_v3.md §4.6, §6)."""
    from ...kmodel.format import BY_CODE
    names = [layer.type.name for layer in km.layers]
    unsupported = sorted({layer.type.name + f" (type {layer.type.code})" for layer in km.layers
                          if not BY_CODE[layer.type.code].sdk})
    fc_act = any(layer.type.name == "FULLY_CONNECTED" and int(layer.body.act) != 0 for layer in km.layers)
    notes = []
    if unsupported:
        notes.append(f"This kmodel contains {', '.join(unsupported)}, which the official SDK's kpu.c does not "
                     "implement (it asserts \"Layer is not supported\"): run it with a kpu.c that implements it "
                     "(e.g. Maix-EMC's patched driver) or MaixPy; the build itself works with any SDK version.")
    return {"first_layer": names[0], "last_layer": names[-1], "layers": names,
            "unsupported": unsupported, "fc_activation": fc_act, "notes": notes}


def memory_budget(kb, km, opts: ProjectOptions, outputs) -> dict[str, int]:
    """Bytes of SRAM the firmware needs; DoesNotFitError (with every number) when it exceeds 6 MiB."""
    mem = dict(getattr(kb.report, "memory", {}) or {})
    kmodel_bytes = len(kb.data)
    main_mem = int(mem.get("main_mem_bytes", km.main_mem_usage))
    kpu_ram = int(mem.get("kpu_ram_bytes", (KPU_RAM_LINES - min(km.max_start_address, KPU_RAM_LINES)) * 64))
    h, w, c = kb.input_shape
    n_out = sum(o["count"] for o in outputs)
    fw, fh = opts.camera_size
    frame_bytes = fw * fh * CAMERA_FORMATS[opts.camera][2]
    test_bytes = h * w * c + frame_bytes + 4 * n_out
    buffers = h * w * c + 2 * 4 * max(o["count"] for o in outputs)   # g_packed, g_output, g_scores in main.c
    # SDK V0.5.7+ (FIX_CACHE) bounce every DMA to or from cached RAM through an iomem buffer of the transfer's
    # size: the input upload, or a conv output into the main buffer.
    bounce = max(h * w * c, main_mem)
    needed = kmodel_bytes + MODEL_ALIGN - 1 + main_mem + test_bytes + buffers + bounce + FIRMWARE_RESERVE_BYTES
    if kpu_ram > KPU_RAM_BYTES:
        raise DoesNotFitError(f"the kmodel needs {kpu_ram:,} bytes of KPU RAM, the K210 has {KPU_RAM_BYTES:,}")
    if needed > SRAM_BYTES:
        raise DoesNotFitError(
            f"the K210 project needs {needed:,} bytes of SRAM but the K210 has {SRAM_BYTES:,} (6 MiB): "
            f"kmodel {kmodel_bytes:,} (+{MODEL_ALIGN - 1} alignment) + main buffer {main_mem:,} + test data "
            f"{test_bytes:,} + buffers {buffers:,} + DMA bounce buffer {bounce:,} + firmware/stack reserve "
            f"{FIRMWARE_RESERVE_BYTES:,}; "
            f"{needed - SRAM_BYTES:,} bytes too many")
    return {"kmodel_bytes": kmodel_bytes, "main_mem_bytes": main_mem, "kpu_ram_bytes": kpu_ram,
            "test_data_bytes": test_bytes, "app_buffer_bytes": buffers, "dma_bounce_bytes": bounce,
            "firmware_reserve_bytes": FIRMWARE_RESERVE_BYTES, "sram_needed_bytes": needed,
            "sram_bytes": SRAM_BYTES, "sram_free_bytes": SRAM_BYTES - needed}


def _report(kb, memory: dict[str, int], sdk: dict[str, Any], notes: list[str], name: str) -> Report:
    base = kb.report
    report = dataclasses.replace(base, target="k210", layers=list(base.layers), extra=dict(base.extra),
                                 memory={**base.memory, **memory})
    report.extra["k210"] = {
        "project": name,
        "sram_fit": f"fits: {memory['sram_needed_bytes']:,} of {SRAM_BYTES:,} bytes of SRAM "
                    f"({memory['sram_free_bytes']:,} free, firmware/stack reserve included)",
        "sdk_notes": sdk["notes"] + (["a FULLY_CONNECTED layer has a fused activation, which SDK V0.5.6 ignores: "
                                      "use V0.5.7 or develop"] if sdk["fc_activation"] else []) + notes,
        "layers": sdk["layers"],
    }
    return report


def _stub_flags() -> list[str]:
    from .sdk_stub import CHECK_FLAGS
    return CHECK_FLAGS


def _render_tree(root: Path, out: Path, context: dict[str, Any]) -> None:
    import jinja2
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root)), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.filters.update(c_float=c_float, c_string=c_string, c_comment=c_comment)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        target = out / (str(rel)[:-3] if rel.suffix == ".j2" else str(rel))
        target.parent.mkdir(parents=True, exist_ok=True)
        text = env.get_template(rel.as_posix()).render(**context)
        target.write_text(text, encoding="utf-8")
