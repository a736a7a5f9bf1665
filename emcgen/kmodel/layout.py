"""KPU geometry shared by the emulator, the verifier, the inspector and the register recipe.

Three facts of docs/kmodel_v3.md live here and nowhere else: the 64-byte-line layout of feature maps in
KPU RAM (§3.8), the geometry a K210_CONV's registers describe (§3.3), and the pool types (§3.10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .format import KPU_LINE_BYTES

# pool_type -> (what it does, stride). Output size is floor(input / stride) in both directions.
POOL_TYPES: dict[int, tuple[str, int]] = {
    0: ("bypass", 1),
    1: ("max 2x2 stride 2", 2),
    2: ("mean 2x2 stride 2", 2),
    3: ("max 4x4 stride 4", 4),
    4: ("mean 4x4 stride 4", 4),
    5: ("left-top select 2x2 stride 2", 2),
    6: ("right-top select 2x2 stride 2", 2),
    7: ("left-top select 4x4 stride 4", 4),
    8: ("mean 2x2 stride 1 (edge replicated)", 1),
    9: ("max 2x2 stride 1 (outside = 0)", 1),
}


def row_layout(width: int) -> tuple[int, int, int]:
    """(groups, row_len, row_pitch) of a map of this width: channels per line, lines per row, bytes
    between the channels packed into one line (docs §3.8)."""
    if width <= 16:
        return 4, 1, 16
    if width <= 32:
        return 2, 1, 32
    return 1, (width + 63) // 64, 64


def map_lines(width: int, height: int, channels: int) -> int:
    """64-byte lines a (channels, height, width) map occupies in KPU RAM."""
    groups, row_len, _ = row_layout(width)
    return row_len * height * -(-channels // groups)


def pooled_size(height: int, width: int, pool_type: int) -> tuple[int, int]:
    stride = POOL_TYPES[pool_type][1]
    return height // stride, width // stride


def byte_addresses(
    base_line: int,
    channels: int,
    height: int,
    width: int,
    channel_switch_lines: int,
    row_switch_lines: int,
    groups: int,
) -> np.ndarray:
    """KPU-RAM byte address of every element (c, y, x), as the hardware derives it from the register
    fields (channel_switch_addr, row_switch_addr, coef_group), so a layout bug in a model shows up."""
    c = np.arange(channels, dtype=np.int64)
    chan = (c // groups) * channel_switch_lines * KPU_LINE_BYTES + (c % groups) * (KPU_LINE_BYTES // groups)
    rows = np.arange(height, dtype=np.int64) * row_switch_lines * KPU_LINE_BYTES
    cols = np.arange(width, dtype=np.int64)
    return base_line * KPU_LINE_BYTES + chan[:, None, None] + rows[None, :, None] + cols[None, None, :]


def sdk_byte_addresses(base_line: int, channels: int, height: int, width: int) -> np.ndarray:
    """Addresses the SDK's CPU upload (kpu_upload_core) writes: the layout computed from the width."""
    groups, row_len, _ = row_layout(width)
    return byte_addresses(base_line, channels, height, width, row_len * height, row_len, groups)


@dataclass(frozen=True)
class ConvGeometry:
    """Shapes and options a K210_CONV's 12 register words describe (fields decoded, +1 applied)."""

    in_channels: int
    in_height: int
    in_width: int
    out_channels: int
    out_height: int
    out_width: int
    kernel: int | None  # 1, 3, or None when kernel_type is not 0/1
    depthwise: bool
    pool_type: int
    src_line: int
    dst_line: int

    @classmethod
    def of(cls, regs) -> ConvGeometry:
        ch, size, kp = regs.image_channel_num, regs.image_size, regs.kernel_pool_type_cfg
        return cls(
            in_channels=ch.i_ch_num + 1,
            in_height=size.i_col_high + 1,
            in_width=size.i_row_wid + 1,
            out_channels=ch.o_ch_num + 1,
            out_height=size.o_col_high + 1,
            out_width=size.o_row_wid + 1,
            kernel={0: 1, 1: 3}.get(kp.kernel_type),
            depthwise=bool(regs.interrupt_enabe.depth_wise_layer),
            pool_type=kp.pool_type,
            src_line=regs.image_addr.image_src_addr,
            dst_line=regs.image_addr.image_dst_addr,
        )

    @property
    def in_shape(self) -> tuple[int, int, int]:
        return self.in_channels, self.in_height, self.in_width

    @property
    def out_shape(self) -> tuple[int, int, int]:
        return self.out_channels, self.out_height, self.out_width

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """OIHW for a normal conv, (C, k, k) for depthwise (docs §3.7)."""
        k = self.kernel or 0
        if self.depthwise:
            return self.out_channels, k, k
        return self.out_channels, self.in_channels, k, k

    @property
    def weight_count(self) -> int:
        return int(np.prod(self.weight_shape))

    @property
    def out_bytes(self) -> int:
        return self.out_channels * self.out_height * self.out_width
