"""Memory plans of a lowered kmodel: KPU RAM (64-byte lines) and the runtime's main buffer (bytes).

Each buffer lives from the layer that writes it to the last layer that reads it; model outputs live to
the end (the application reads them after the run). A conv's input and output are alive at the same
step, so they never overlap, as the KPU requires. Sizes follow what the runtime touches: uint8 buffers
are rounded up to 8 bytes (the KPU's DMA writes whole 64-bit words and QUANTIZED_ADD works in blocks
of 8 elements), float buffers are 4 bytes per element.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...errors import DoesNotFitError
from ...memory.planner import MemoryPlanner, Plan
from .lower import Lowered

KPU_LINES = 32768            # 2 MiB of 64-byte lines
LINE = 64


def kpu_lines(shape) -> int:
    c, h, w = shape
    if w <= 16:
        groups, row_len = 4, 1
    elif w <= 32:
        groups, row_len = 2, 1
    else:
        groups, row_len = 1, -(-w // 64)
    return row_len * h * -(-c // groups)


def main_bytes(buf) -> int:
    n = buf.count * (4 if buf.kind == "f32" else 1)
    return -(-n // 8) * 8


@dataclass
class MemoryLayout:
    kpu: Plan
    main: Plan
    lifetimes: dict[str, tuple[int, int]]

    @property
    def kpu_bytes(self) -> int:
        return self.kpu.peak * LINE

    @property
    def main_bytes(self) -> int:
        return self.main.peak

    @property
    def max_start_address(self) -> int:
        used = [off for name, off in self.kpu.offsets.items()]
        return min(used) if used else KPU_LINES


def plan_memory(lowered: Lowered) -> MemoryLayout:
    steps = lowered.steps
    first: dict[str, int] = {lowered.input_buffer: 0}
    last: dict[str, int] = {}
    for i, step in enumerate(steps):
        for b in step.writes:
            first.setdefault(b, i)
            last[b] = max(last.get(b, i), i)
        for b in step.reads:
            last[b] = max(last.get(b, first.get(b, i)), i)
    end = len(steps)
    for b in lowered.output_buffers:
        last[b] = end
    kpu, main = MemoryPlanner(), MemoryPlanner()
    for name, buf in lowered.buffers.items():
        if name not in first:
            continue
        lo, hi = first[name], last.get(name, first[name])
        if buf.kind == "kpu":
            kpu.add(name, kpu_lines(buf.shape), lo, hi)
        else:
            main.add(name, main_bytes(buf), lo, hi, align=8)
    kplan, mplan = kpu.plan(), main.plan()
    if kplan.peak > KPU_LINES:
        worst = max(range(len(steps)), key=lambda i: sum(
            b.size for b in kplan.buffers if b.first <= i <= b.last))
        live = [b for b in kplan.buffers if b.first <= worst <= b.last]
        names = ", ".join(f"{b.name} {b.size * LINE:,} B" for b in live)
        layer = steps[worst].ir_ops[0] if steps[worst].ir_ops else steps[worst].kind
        raise DoesNotFitError(f"layer {layer!r} needs {kplan.peak * LINE:,} bytes of KPU RAM "
                              f"({names}); the K210 has {KPU_LINES * LINE:,}")
    return MemoryLayout(kplan, mplan, {n: (first[n], last.get(n, first[n])) for n in first})
