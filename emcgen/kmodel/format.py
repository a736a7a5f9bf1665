"""kmodel v3 binary layouts, declared once with dissect.cstruct, and the one table of layer types.

Everything else in emcgen.kmodel (reader, writer, emulator, verifier, inspector, constructors) derives
from the declarations here: struct sizes, field names and bit positions come from `CDEF`, the layer type
names, body structs and runtime support come from `LAYER_TYPES`. Field names follow the Kendryte SDK's
kpu.h so that a reader of this code can grep the SDK (including its spelling `interrupt_enabe`).
Source of every layout: docs/kmodel_v3.md §1 (file), §2 (bodies), §3 (K210_CONV and KPU registers).

dissect.cstruct quirks handled here (docs/python_stack.md §3): every 64-bit register word is a struct
whose bitfields fill the unit exactly and all use the same storage type (uint64); dissect neither masks
values on write nor sign-extends on read, so `pack()` range-checks and masks every field and
`sign_fix()` sign-extends the fields listed in `SIGNED_BITFIELDS` after a read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
from dissect.cstruct import cstruct

from ..errors import EmcError

CDEF = """
/* ---- file structure (docs §1) ---- */
struct kmodel_header {
    uint32 version; uint32 flags; uint32 arch; uint32 layers_length;
    uint32 max_start_address; uint32 main_mem_usage; uint32 output_count;
};
struct output_entry { uint32 address; uint32 size; };
struct layer_header { uint32 type; uint32 body_size; };

/* ---- records used inside bodies ---- */
struct shape { uint32 width; uint32 height; uint32 channels; };
struct memory_range { uint32 start; uint32 size; };
struct quant_param { float scale; float bias; };

/* ---- fixed part of each layer body (docs §2.3, §3.1) ---- */
struct add_body {
    uint32 flags; uint32 main_mem_in_a_address; uint32 main_mem_in_b_address;
    uint32 main_mem_out_address; uint32 count;
};
struct quantized_add_body {
    uint32 flags; uint32 main_mem_in_a_address; uint32 main_mem_in_b_address;
    uint32 main_mem_out_address; uint32 count;
    int32 in_a_offset; int32 in_a_mul; int32 in_a_shift;
    int32 in_b_offset; int32 in_b_mul; int32 in_b_shift;
    int32 out_offset; int32 out_mul; int32 out_shift;
};
struct gap2d_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address;
    uint32 kernel_size; uint32 channels;
};
struct quantized_max_pool2d_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address;
    shape in_shape; shape out_shape;
    uint32 kernel_width; uint32 kernel_height; uint32 stride_width; uint32 stride_height;
    uint32 padding_width; uint32 padding_height;
};
struct average_pool2d_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address;
    shape in_shape; shape out_shape;
    uint32 kernel_width; uint32 kernel_height; uint32 stride_width; uint32 stride_height;
    uint32 padding_width; uint32 padding_height; uint32 act;
};
struct quantize_body {
    uint32 flags; uint32 main_mem_in_address; uint32 mem_out_address; uint32 count;
    quant_param quant_param;
};
struct dequantize_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address; uint32 count;
    quant_param quant_param;
};
struct requantize_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address; uint32 count;
    uint8 table[256];
};
struct channels_body {          /* L2_NORMALIZATION, SOFTMAX, LOGISTIC */
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address; uint32 channels;
};
struct concat_body {            /* followed by memory_range[input_count] */
    uint32 flags; uint32 main_mem_out_address; uint32 input_count;
};
struct fully_connected_body {   /* followed by float weights[out][in], float bias[out] */
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address;
    uint32 in_channels; uint32 out_channels; uint32 act;
};
struct tf_flatten_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address; shape shape;
};
struct resize_nearest_neighbor_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address;
    shape in_shape; uint32 out_width; uint32 out_height; uint32 align_corners;
};
struct channelwise_dequantize_body {   /* followed by quant_param[channels] */
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address;
    uint32 channels; uint32 channel_size;
};
struct k210_conv_body {         /* the *_offset fields are absolute file offsets */
    uint32 flags; uint32 main_mem_out_address;
    uint32 layer_offset; uint32 weights_offset; uint32 bn_offset; uint32 act_offset;
};
struct k210_add_padding_body {
    uint32 flags; uint32 main_mem_in_address; uint32 kpu_mem_out_address; uint32 channels;
};
struct k210_remove_padding_body {
    uint32 flags; uint32 main_mem_in_address; uint32 main_mem_out_address; uint32 channels;
};
struct k210_upload_body {
    uint32 flags; uint32 main_mem_in_address; uint32 kpu_mem_out_address;
    uint32 width; uint32 height; uint32 channels;
};

/* ---- the 12 KPU layer-argument words (docs §3.3), each exactly one uint64 ---- */
struct interrupt_enabe_word {
    uint64 int_en:1; uint64 ram_flag:1; uint64 full_add:1; uint64 depth_wise_layer:1; uint64 reserved:60;
};
struct image_addr_word {
    uint64 image_src_addr:15; uint64 reserved0:17; uint64 image_dst_addr:15; uint64 reserved1:17;
};
struct image_channel_num_word {
    uint64 i_ch_num:10; uint64 reserved0:22; uint64 o_ch_num:10; uint64 reserved1:6;
    uint64 o_ch_num_coef:10; uint64 reserved2:6;
};
struct image_size_word {
    uint64 i_row_wid:10; uint64 i_col_high:9; uint64 reserved0:13;
    uint64 o_row_wid:10; uint64 o_col_high:9; uint64 reserved1:13;
};
struct kernel_pool_type_cfg_word {
    uint64 kernel_type:3; uint64 pad_type:1; uint64 pool_type:4; uint64 first_stride:1;
    uint64 bypass_conv:1; uint64 load_para:1; uint64 reserved0:5; uint64 dma_burst_size:8;
    uint64 pad_value:8; uint64 bwsx_base_addr:32;
};
struct kernel_load_cfg_word {
    uint64 load_coor:1; uint64 load_time:6; uint64 reserved0:8; uint64 para_size:17;
    uint64 para_start_addr:32;
};
struct kernel_offset_word {
    uint64 coef_column_offset:4; uint64 coef_row_offset:12; uint64 reserved0:48;
};
struct kernel_calc_type_cfg_word {
    uint64 channel_switch_addr:15; uint64 reserved:1; uint64 row_switch_addr:4; uint64 coef_size:8;
    uint64 coef_group:3; uint64 load_act:1; uint64 active_addr:32;
};
struct write_back_cfg_word {
    uint64 wb_channel_switch_addr:15; uint64 reserved0:1; uint64 wb_row_switch_addr:4;
    uint64 wb_group:3; uint64 reserved1:41;
};
struct conv_value_word {
    uint64 shr_w:4; uint64 shr_x:4; uint64 arg_w:24; uint64 arg_x:24; uint64 reserved0:8;
};
struct conv_value2_word { uint64 arg_add:40; uint64 reserved:24; };
struct dma_parameter_word {
    uint64 send_data_out:1; uint64 reserved:15; uint64 channel_byte_num:16; uint64 dma_total_byte:32;
};
struct kpu_layer_argument {
    interrupt_enabe_word interrupt_enabe;
    image_addr_word image_addr;
    image_channel_num_word image_channel_num;
    image_size_word image_size;
    kernel_pool_type_cfg_word kernel_pool_type_cfg;
    kernel_load_cfg_word kernel_load_cfg;
    kernel_offset_word kernel_offset;
    kernel_calc_type_cfg_word kernel_calc_type_cfg;
    write_back_cfg_word write_back_cfg;
    conv_value_word conv_value;
    conv_value2_word conv_value2;
    dma_parameter_word dma_parameter;
};

/* ---- K210_CONV payload tables (docs §3.5, §3.6) ---- */
struct batchnorm_word { uint64 norm_mul:24; uint64 norm_add:32; uint64 norm_shift:4; uint64 reserved:4; };
struct activate_segment_word {
    uint64 shift_number:8; uint64 y_mul:16; uint64 x_start:36; uint64 reserved:4;
};
struct activate_table {
    activate_segment_word activate_para[16];
    uint8 activate_para_bias[16];    /* two words: byte k = bias of segment k */
};
"""

cs = cstruct(endian="<").load(CDEF)

# Bitfields that hold two's-complement numbers (docs §3.3, §3.5, §3.6). y_mul is treated as unsigned
# (the SDK declares it uint64_t y_mul:16; producers keep it below 2^15, so the question never arises).
SIGNED_BITFIELDS = {"arg_w": 24, "arg_x": 24, "arg_add": 40, "norm_mul": 24, "norm_add": 32, "x_start": 36}

HEADER_SIZE = len(cs.kmodel_header)
OUTPUT_SIZE = len(cs.output_entry)
LAYER_HEADER_SIZE = len(cs.layer_header)
REGISTERS_SIZE = len(cs.kpu_layer_argument)  # 96
ACT_TABLE_SIZE = len(cs.activate_table)  # 144
BN_ENTRY_SIZE = len(cs.batchnorm_word)  # 8
KMODEL_VERSION = 3
KPU_RAM_LINES = 32768  # 2 MiB of 64-byte lines
KPU_LINE_BYTES = 64
K210_SRAM_BYTES = 6 * 1024 * 1024  # general-purpose SRAM; the runtime mallocs main_mem_usage from it

assert REGISTERS_SIZE == 96 and ACT_TABLE_SIZE == 144 and HEADER_SIZE == 28


# ---- the one table of layer types -------------------------------------------------------------------


@dataclass(frozen=True)
class LayerType:
    """One entry of the SDK's kpu_model_layer_type_t enum.

    struct: name of the fixed body struct in `cs`, or None when no public runtime defines a body (the
    body is then kept as opaque bytes). tail: what follows the fixed struct ("fc", "concat",
    "channelwise") or "conv" for K210_CONV's payload reached through absolute offsets.
    sdk / maix_emc: executed by the official SDK v3 runtime (kpu.c @804a11f) / by Maix-EMC's patched kpu.c.
    """

    code: int
    name: str
    struct: str | None
    sdk: bool
    maix_emc: bool
    tail: str | None = None

    @property
    def body_struct(self):
        return getattr(cs, self.struct) if self.struct else None

    @property
    def fixed_size(self) -> int:
        return len(self.body_struct) if self.struct else 0


LAYER_TYPES: tuple[LayerType, ...] = (
    LayerType(0, "INVALID", None, False, False),
    LayerType(1, "ADD", "add_body", True, True),
    LayerType(2, "QUANTIZED_ADD", "quantized_add_body", True, True),
    LayerType(3, "GLOBAL_MAX_POOL2D", None, False, False),
    LayerType(4, "QUANTIZED_GLOBAL_MAX_POOL2D", None, False, False),
    LayerType(5, "GLOBAL_AVERAGE_POOL2D", "gap2d_body", True, True),
    LayerType(6, "QUANTIZED_GLOBAL_AVERAGE_POOL2D", "gap2d_body", False, True),
    LayerType(7, "MAX_POOL2D", None, False, False),
    LayerType(8, "QUANTIZED_MAX_POOL2D", "quantized_max_pool2d_body", True, True),
    LayerType(9, "AVERAGE_POOL2D", "average_pool2d_body", True, True),
    LayerType(10, "QUANTIZED_AVERAGE_POOL2D", None, False, False),
    LayerType(11, "QUANTIZE", "quantize_body", True, True),
    LayerType(12, "DEQUANTIZE", "dequantize_body", True, True),
    LayerType(13, "REQUANTIZE", "requantize_body", True, True),
    LayerType(14, "L2_NORMALIZATION", "channels_body", True, True),
    LayerType(15, "SOFTMAX", "channels_body", True, True),
    LayerType(16, "CONCAT", "concat_body", True, True, "concat"),
    LayerType(17, "QUANTIZED_CONCAT", "concat_body", True, True, "concat"),
    LayerType(18, "FULLY_CONNECTED", "fully_connected_body", True, True, "fc"),
    LayerType(19, "QUANTIZED_FULLY_CONNECTED", None, False, False),
    LayerType(20, "TENSORFLOW_FLATTEN", "tf_flatten_body", True, True),
    LayerType(21, "QUANTIZED_TENSORFLOW_FLATTEN", "tf_flatten_body", False, True),
    LayerType(22, "RESIZE_NEAREST_NEIGHBOR", "resize_nearest_neighbor_body", True, False),
    LayerType(23, "QUANTIZED_RESIZE_NEAREST_NEIGHBOR", "resize_nearest_neighbor_body", True, False),
    LayerType(24, "CHANNELWISE_DEQUANTIZE", "channelwise_dequantize_body", True, False, "channelwise"),
    LayerType(25, "LOGISTIC", "channels_body", True, False),
    LayerType(10240, "K210_CONV", "k210_conv_body", True, True, "conv"),
    LayerType(10241, "K210_ADD_PADDING", "k210_add_padding_body", True, True),
    LayerType(10242, "K210_REMOVE_PADDING", "k210_remove_padding_body", True, True),
    LayerType(10243, "K210_UPLOAD", "k210_upload_body", True, True),
)

BY_CODE = {t.code: t for t in LAYER_TYPES}
BY_NAME = {t.name: t for t in LAYER_TYPES}

# Runtimes a model can target, with the layer types each executes (derived from the table).
RUNTIMES = {
    "sdk": frozenset(t.code for t in LAYER_TYPES if t.sdk),
    "maix-emc": frozenset(t.code for t in LAYER_TYPES if t.maix_emc),
}
RUNTIME_NAMES = {"sdk": "the official Kendryte SDK v3 runtime", "maix-emc": "Maix-EMC's patched kpu.c"}


def layer_type(key: int | str | LayerType) -> LayerType:
    """Look a layer type up by code, name or LayerType; EmcError when it does not exist."""
    if isinstance(key, LayerType):
        return key
    found = BY_NAME.get(key.upper()) if isinstance(key, str) else BY_CODE.get(int(key))
    if found is None:
        raise EmcError(f"unknown kmodel v3 layer type {key!r} (known: {', '.join(BY_NAME)})")
    return found


# ---- bitfield helpers ---------------------------------------------------------------------------------


@cache
def bitfields(word_type) -> tuple[tuple[str, int, int], ...]:
    """(name, lowest bit, width) of every bitfield of a one-word struct, from the cstruct declaration."""
    out, shift = [], 0
    for f in word_type.__fields__:
        out.append((f.name, shift, f.bits))
        shift += f.bits
    assert shift == 64, word_type
    return tuple(out)


def is_word(struct_type) -> bool:
    fields = getattr(struct_type, "__fields__", None)
    return bool(fields) and all(f.bits for f in fields)


def to_signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


@cache
def _signed_fields(struct_type) -> tuple[tuple[str, int], ...]:
    """(path, bits) of every signed bitfield in a struct, nested structs included."""
    out = []
    for f in struct_type.__fields__:
        if f.bits and f.name in SIGNED_BITFIELDS:
            out.append((f.name, f.bits))
        elif hasattr(f.type, "__fields__"):
            out += [(f"{f.name}.{sub}", bits) for sub, bits in _signed_fields(f.type)]
    return tuple(out)


def sign_fix(inst):
    """Sign-extend, in place, the SIGNED_BITFIELDS of a freshly read struct (nested words included)."""
    for path, bits in _signed_fields(type(inst)):
        *parents, name = path.split(".")
        owner = inst
        for p in parents:
            owner = getattr(owner, p)
        setattr(owner, name, to_signed(getattr(owner, name), bits))
    return inst


def _check_int(path: str, value, lo: int, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise EmcError(f"{path} = {value!r} is not an integer")
    value = int(value)
    if not lo <= value <= hi:
        raise EmcError(f"{path} = {value} is outside the field's range {lo}..{hi}")
    return value


def _clean(struct_type, inst, path: str):
    """A copy of `inst` whose values are range-checked and masked, safe for dissect's dumps()."""
    kwargs = {}
    for f in struct_type.__fields__:
        value = getattr(inst, f.name)
        where = f"{path}.{f.name}"
        if f.bits:
            bits = f.bits
            lo = -(1 << (bits - 1)) if f.name in SIGNED_BITFIELDS else 0
            kwargs[f.name] = _check_int(where, value, lo, (1 << bits) - 1) & ((1 << bits) - 1)
        elif hasattr(f.type, "__fields__"):
            kwargs[f.name] = _clean(f.type, value, where)
        elif getattr(f.type, "num_entries", None) is not None:
            elem = f.type.type
            if len(value) != f.type.num_entries:
                raise EmcError(f"{where} has {len(value)} entries, the struct needs {f.type.num_entries}")
            if hasattr(elem, "__fields__"):
                kwargs[f.name] = [_clean(elem, v, f"{where}[{i}]") for i, v in enumerate(value)]
            else:
                kwargs[f.name] = [_clean_scalar(elem, v, f"{where}[{i}]") for i, v in enumerate(value)]
        else:
            kwargs[f.name] = _clean_scalar(f.type, value, where)
    return struct_type(**kwargs)


def _clean_scalar(t, value, where: str):
    if t.packchar in "fd":
        try:
            return float(value)
        except (TypeError, ValueError):
            raise EmcError(f"{where} = {value!r} is not a number") from None
    bits = 8 * t.size
    if t.packchar.islower():
        return _check_int(where, value, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return _check_int(where, value, 0, (1 << bits) - 1)


def new(struct_type, **values):
    """A zeroed instance of `struct_type` with `values` set. Use this instead of `struct_type()`:
    dissect shares the default instances of nested structs between all default-constructed parents,
    so mutating `cs.kpu_layer_argument().conv_value` would change every other default instance too."""
    kwargs = {}
    for f in struct_type.__fields__:
        if f.name in values:
            kwargs[f.name] = values.pop(f.name)
        elif hasattr(f.type, "__fields__"):
            kwargs[f.name] = new(f.type)
        elif getattr(f.type, "num_entries", None) is not None:
            elem = f.type.type
            make = (lambda e=elem: new(e)) if hasattr(elem, "__fields__") else (lambda e=elem: e(0))
            kwargs[f.name] = [make() for _ in range(f.type.num_entries)]
        else:
            kwargs[f.name] = 0
    if values:
        raise EmcError(f"{struct_type.__name__} has no field(s) {', '.join(values)}")
    return struct_type(**kwargs)


def pack(inst, path: str = "") -> bytes:
    """Serialize a cstruct instance after range-checking every field (EmcError naming the field)."""
    struct_type = type(inst)
    return _clean(struct_type, inst, path or struct_type.__name__).dumps()


def unpack(struct_name: str, data, offset: int = 0):
    """Read struct `struct_name` at `offset` of `data` (caller checks bounds) and sign-fix it."""
    t = getattr(cs, struct_name)
    return sign_fix(t(bytes(data[offset : offset + len(t)])))


# ---- vectorized tables (batch norm, activation segments) ---------------------------------------------


def decode_words(words: np.ndarray, word_type) -> dict[str, np.ndarray]:
    """Split an array of uint64 words into int64 arrays per bitfield (signed fields sign-extended)."""
    words = np.asarray(words, dtype=np.uint64)
    out = {}
    for name, shift, bits in bitfields(word_type):
        v = ((words >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        if name in SIGNED_BITFIELDS:
            v = np.where(v >= (1 << (bits - 1)), v - (1 << bits), v)
        out[name] = v
    return out


def encode_words(fields: dict[str, np.ndarray], word_type, count: int, path: str) -> np.ndarray:
    """Inverse of decode_words, with a range check per field; missing fields are 0."""
    words = np.zeros(count, dtype=np.uint64)
    names = {n for n, _, _ in bitfields(word_type)}
    unknown = set(fields) - names
    if unknown:
        raise EmcError(f"{path}: unknown field(s) {sorted(unknown)} (fields: {sorted(names)})")
    for name, shift, bits in bitfields(word_type):
        if name not in fields or fields[name] is None:
            continue
        v = np.asarray(fields[name])
        if v.shape not in ((), (count,)):
            raise EmcError(f"{path}.{name} has shape {v.shape}, expected ({count},)")
        lo = -(1 << (bits - 1)) if name in SIGNED_BITFIELDS else 0
        hi = (1 << bits) - 1
        v = np.broadcast_to(check_range(v, lo, hi, f"{path}.{name}"), (count,))
        words |= (v & hi).astype(np.uint64) << np.uint64(shift)
    return words


def check_range(values, lo: int, hi: int, where: str) -> np.ndarray:
    """`values` as int64 after checking they are integers in lo..hi (EmcError naming the first bad one)."""
    v = np.asarray(values)
    if v.dtype.kind not in "iub":
        raise EmcError(f"{where} must hold integers, not {v.dtype}")
    v = v.astype(np.int64)
    if v.size and (v.min() < lo or v.max() > hi):
        bad = int(v[(v < lo) | (v > hi)].flat[0])
        raise EmcError(f"{where} = {bad} is outside the field's range {lo}..{hi}")
    return v


def to_plain(inst):
    """A cstruct instance (nested structs, arrays) as dicts/lists of ints and floats, for JSON."""
    if hasattr(type(inst), "__fields__"):
        return {f.name: to_plain(getattr(inst, f.name)) for f in type(inst).__fields__}
    if isinstance(inst, (list, tuple)):
        return [to_plain(v) for v in inst]
    if isinstance(inst, float):
        return float(inst)
    return int(inst)
