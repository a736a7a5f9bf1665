"""Scratch-buffer sizes of the CMSIS-NN int8 kernels, computed on the host.

A generated STM32 project has one static scratch buffer shared by all layers; its size is the largest
`*_get_buffer_size()` over the layers. Real CMSIS-NN (v7.0.0 API, commit 99f736a6) chooses its
implementation from the core's features at compile time, and the scratch size follows that choice, so the
generator must know the rule for each *flavour* of build:

* ``"pure_c"``: no DSP/MVE extension (Cortex-M0/M0+/M3, any host build);
* ``"dsp"``: DSP extension (Cortex-M4/M7/M33/M35P);
* ``"mve"``: Helium/MVE (Cortex-M55/M85);
* ``"emc_nn"``: emcgen's own portable library (templates/stm32_cmsis/emc_nn), whatever the core.

The formulas restate CMSIS-NN's documented sizing rules; tests check them against every value measured with
real CMSIS-NN in ../shared/fixtures/cmsis_nn_vectors (x86-64, Cortex-M3, M4 and M55 builds). Two values
depend on the compiler; ``compiler="gcc"`` (the default, arm-none-eabi-gcc) or ``"armclang"`` (Arm
Compiler 6) selects them.

Arguments are ``Dims``/``Tile`` tuples or mappings with the CMSIS-NN field names (``{"n", "h", "w", "c"}``,
``{"w", "h"}``), e.g. the dicts of cases.json.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from ...errors import UnsupportedError

FLAVOURS = ("pure_c", "dsp", "mve", "emc_nn")
COMPILERS = ("gcc", "armclang")

# CMSIS-NN's MVE depthwise kernel processes the channels in blocks of this many (CH_IN_BLOCK_MVE).
_MVE_DW_CHANNEL_BLOCK = 124

_CORE_FLAVOURS = {
    "cortex-m0": "pure_c",
    "cortex-m0plus": "pure_c",
    "cortex-m0+": "pure_c",
    "cortex-m3": "pure_c",
    "cortex-m4": "dsp",
    "cortex-m7": "dsp",
    "cortex-m33": "dsp",
    "cortex-m35p": "dsp",
    "cortex-m55": "mve",
    "cortex-m85": "mve",
}


class Dims(NamedTuple):
    """cmsis_nn_dims: NHWC order; what n and c mean depends on the function."""

    n: int
    h: int
    w: int
    c: int


class Tile(NamedTuple):
    """cmsis_nn_tile: width first."""

    w: int
    h: int


def flavour_for_core(core: str) -> str:
    """The CMSIS-NN build flavour of a Cortex-M core name as gcc's -mcpu spells it."""
    try:
        return _CORE_FLAVOURS[core.lower()]
    except KeyError:
        known = ", ".join(sorted(_CORE_FLAVOURS))
        message = f"no CMSIS-NN build flavour known for core {core!r}; supported: {known}"
        raise UnsupportedError(message) from None


def _dims(value) -> Dims:
    if isinstance(value, Dims):
        return value
    if isinstance(value, Mapping):
        return Dims(int(value["n"]), int(value["h"]), int(value["w"]), int(value["c"]))
    return Dims(*(int(v) for v in value))


def _tile(value) -> Tile:
    if isinstance(value, Tile):
        return value
    if isinstance(value, Mapping):
        return Tile(int(value["w"]), int(value["h"]))
    return Tile(*(int(v) for v in value))


def _check(flavour: str, compiler: str) -> None:
    if flavour not in FLAVOURS:
        raise UnsupportedError(f"unknown CMSIS-NN flavour {flavour!r}; use one of {', '.join(FLAVOURS)}")
    if compiler not in COMPILERS:
        raise UnsupportedError(f"unknown compiler {compiler!r}; use one of {', '.join(COMPILERS)}")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _trunc_div(a: int, b: int) -> int:
    """C integer division (truncates towards zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _trunc_mod(a: int, b: int) -> int:
    """C remainder (sign of the dividend)."""
    return a - b * _trunc_div(a, b)


# ---- convolution -------------------------------------------------------------------------------------------

def is_conv_1x1(padding, dilation, input_dims, filter_dims) -> bool:
    """arm_convolve_wrapper_s8 takes a 1x1 kernel (no scratch on gcc builds)."""
    pad, dil, inp, flt = _tile(padding), _tile(dilation), _dims(input_dims), _dims(filter_dims)
    return (pad.w == 0 and pad.h == 0 and flt.w == 1 and flt.h == 1 and dil.w == 1 and dil.h == 1
            and inp.c == flt.c)


def is_conv_1x1_fast(stride) -> bool:
    """The 1x1 kernel is the unit-stride 'fast' one."""
    st = _tile(stride)
    return st.w == 1 and st.h == 1


def is_conv_1_x_n(stride, dilation, input_dims, filter_dims) -> bool:
    """arm_convolve_wrapper_s8 takes arm_convolve_1_x_n_s8 (checked after the 1x1 test)."""
    st, dil, inp, flt = _tile(stride), _tile(dilation), _dims(input_dims), _dims(filter_dims)
    return (inp.h == 1 and dil.w == 1 and flt.h == 1 and (st.w * inp.c) % 4 == 0 and inp.c == flt.c)


def convolve_s8(input_dims, filter_dims, flavour: str, compiler: str = "gcc") -> int:
    """arm_convolve_s8_get_buffer_size(input_dims, filter_dims)."""
    _check(flavour, compiler)
    inp, flt = _dims(input_dims), _dims(filter_dims)
    if flavour == "emc_nn":
        return 2 * flt.h * flt.w * flt.c * 2           # two int16 im2col columns
    rhs_cols = flt.h * flt.w * inp.c
    if flavour == "mve":
        return 4 * _round_up(rhs_cols, 16)              # four int8 columns, whole 16-byte lanes
    return 2 * _round_up(rhs_cols, 4) * 2               # two int16 columns, 4-aligned


def convolve_1x1_s8_fast(input_dims, flavour: str, compiler: str = "gcc") -> int:
    """arm_convolve_1x1_s8_fast_get_buffer_size(input_dims): non-zero only for Arm Compiler 6 DSP builds."""
    _check(flavour, compiler)
    if flavour == "dsp" and compiler == "armclang":
        return 2 * _dims(input_dims).c * 2
    return 0


def convolve_1_x_n_s8(stride, padding, input_dims, filter_dims, output_dims, flavour: str,
                      compiler: str = "gcc") -> int:
    """arm_convolve_1_x_n_s8_get_buffer_size(conv_params, input_dims, filter_dims, output_dims)."""
    _check(flavour, compiler)
    if flavour != "mve":
        return convolve_s8(input_dims, filter_dims, flavour, compiler)
    st, pad = _tile(stride), _tile(padding)
    inp, flt, out = _dims(input_dims), _dims(filter_dims), _dims(output_dims)
    # The MVE kernel keeps left-padded, unpadded and right-padded output columns apart (C arithmetic:
    # TFLite VALID can make the total padding negative, and % keeps the dividend's sign).
    total_pad = (out.w - 1) * st.w + flt.w - inp.w
    asym_pad = _trunc_mod(total_pad, 2)
    right = pad.w + asym_pad
    right_pad_num = max(1, _trunc_div(right + st.w - 1, st.w)) if right != 0 else 0
    left_pad_num = max(1, _trunc_div(pad.w + st.w - 1, st.w)) if pad.w != 0 else 0
    no_pad_num = max(out.w - (right_pad_num + left_pad_num), 0)
    if right_pad_num + no_pad_num + left_pad_num != out.w:
        return convolve_s8(input_dims, filter_dims, flavour, compiler)
    pad_size_left = pad.w * inp.c
    pad_size_right = right_pad_num * inp.c if asym_pad else pad_size_left
    num_elem_left = flt.w * inp.c
    num_elem_right = num_elem_left - inp.c
    return max(num_elem_left + pad_size_left, num_elem_right + pad_size_right)


def convolve_wrapper_s8(stride, padding, dilation, input_dims, filter_dims, output_dims, flavour: str,
                        compiler: str = "gcc") -> int:
    """arm_convolve_wrapper_s8_get_buffer_size(conv_params, input_dims, filter_dims, output_dims)."""
    _check(flavour, compiler)
    if is_conv_1x1(padding, dilation, input_dims, filter_dims):
        if flavour != "emc_nn" and is_conv_1x1_fast(stride):
            return convolve_1x1_s8_fast(input_dims, flavour, compiler)
        return 0
    if flavour != "emc_nn" and is_conv_1_x_n(stride, dilation, input_dims, filter_dims):
        return convolve_1_x_n_s8(stride, padding, input_dims, filter_dims, output_dims, flavour, compiler)
    return convolve_s8(input_dims, filter_dims, flavour, compiler)


# ---- depthwise convolution ---------------------------------------------------------------------------------

def _mve_dw_runs_as_conv(input_dims, output_dims, compiler: str) -> bool:
    """MVE builds run a depthwise conv with one input channel as an ordinary conv (threshold per compiler)."""
    threshold = 8 if compiler == "armclang" else 1
    return _dims(input_dims).c == 1 and _dims(output_dims).c > threshold


def depthwise_conv_wrapper_s8(stride, padding, dilation, input_dims, filter_dims, output_dims, flavour: str,
                              compiler: str = "gcc") -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size(dw_conv_params, input_dims, filter_dims, output_dims)."""
    _check(flavour, compiler)
    inp, flt, out, dil, pad = (_dims(input_dims), _dims(filter_dims), _dims(output_dims), _tile(dilation),
                               _tile(padding))
    if flavour == "emc_nn":
        return 0
    if flavour == "mve" and _mve_dw_runs_as_conv(inp, out, compiler):
        # The filter is transposed into the scratch buffer behind the conv's own scratch.
        conv_filter = Dims(flt.c, flt.h, flt.w, flt.n)
        conv = convolve_wrapper_s8(stride, padding, dilation, inp, conv_filter, out, "mve", compiler)
        return conv + flt.n * flt.h * flt.w * flt.c
    if not (inp.c == out.c and inp.n == 1 and dil.w == 1 and dil.h == 1):
        return 0                                        # generic kernel, no scratch
    if flavour == "mve":
        return 4 * _MVE_DW_CHANNEL_BLOCK * flt.w * flt.h
    if flt.w == 3 and flt.h == 3 and pad.h <= 1 and pad.w <= 1:
        return 0                                        # 3x3 kernel
    if flavour == "dsp":
        return inp.c * flt.w * flt.h * 2                # _opt kernel, int16 im2col
    return 0


# ---- fully connected, pooling ------------------------------------------------------------------------------

def fully_connected_s8(filter_dims, flavour: str, compiler: str = "gcc") -> int:
    """arm_fully_connected_s8_get_buffer_size(filter_dims): MVE keeps one int32 kernel sum per output."""
    _check(flavour, compiler)
    return _dims(filter_dims).c * 4 if flavour == "mve" else 0


def avgpool_s8(output_w: int, input_c: int, flavour: str, compiler: str = "gcc") -> int:
    """arm_avgpool_s8_get_buffer_size(dim_dst_width, ch_src): DSP sums one int32 per channel."""
    _check(flavour, compiler)
    return int(input_c) * 4 if flavour == "dsp" else 0
