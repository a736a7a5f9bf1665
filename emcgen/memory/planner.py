"""Static memory planning: place buffers with known lifetimes in one arena, as small as possible.

Interface (after TFLM's planner): add a buffer with its size and the first and last step that use it, ask
for the offsets and the peak. Several placement strategies are tried and the smallest valid plan wins:

- greedy by size (TFLM's GreedyMemoryPlanner idea): biggest buffer first, each at the lowest offset
  where it does not overlap a buffer alive at the same time;
- greedy in order of first use, with best fit;
- two-ended: a chain of producer/consumer tensors alternates between the bottom and the top of an arena
  of the lower-bound size, which reaches the bound on plain chains where greedy by size does not
  (MobileNet's 48x48x8 -> 48x48x16 pair is the classic case).

`lower_bound()` is the live-set bound max over steps of the bytes alive at that step: no plan can be
smaller. Aliases (reshape, in-place ops) share their target's offset and extend its lifetime.
Sizes and offsets are in abstract units: bytes for the STM32 arena and main memory, 64-byte lines for
the K210 KPU RAM.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Buffer:
    name: str
    size: int
    first: int
    last: int
    align: int = 1
    offset: int | None = None


@dataclass
class Plan:
    offsets: dict[str, int]
    peak: int
    strategy: str
    buffers: list[Buffer] = field(default_factory=list)


def _round_up(v: int, a: int) -> int:
    return -(-v // a) * a


def _overlap_in_time(a: Buffer, b: Buffer) -> bool:
    return a.first <= b.last and b.first <= a.last


class MemoryPlanner:
    """Collects buffers (and aliases) and computes a plan."""

    def __init__(self):
        self.buffers: dict[str, Buffer] = {}
        self.aliases: dict[str, tuple[str, int]] = {}   # name -> (target buffer, byte offset inside it)

    def add(self, name: str, size: int, first: int, last: int, align: int = 1) -> None:
        if name in self.buffers or name in self.aliases:
            raise ValueError(f"buffer {name!r} added twice")
        if last < first:
            raise ValueError(f"buffer {name!r}: last use {last} before first use {first}")
        self.buffers[name] = Buffer(name, max(int(size), 0), first, last, max(align, 1))

    def alias(self, name: str, of: str, last: int | None = None, offset: int = 0) -> None:
        """`name` lives inside buffer `of` (same memory); extend `of`'s lifetime to `last`."""
        root, base = self.resolve(of)
        self.aliases[name] = (root, base + offset)
        if last is not None:
            self.buffers[root].last = max(self.buffers[root].last, last)

    def resolve(self, name: str) -> tuple[str, int]:
        extra = 0
        while name in self.aliases:
            name, off = self.aliases[name]
            extra += off
        if name not in self.buffers:
            raise KeyError(name)
        return name, extra

    # ---- bounds and strategies ---------------------------------------------------------------
    def lower_bound(self) -> int:
        """max over steps of the total size alive at that step (ignoring alignment)."""
        steps = {b.first for b in self.buffers.values()} | {b.last for b in self.buffers.values()}
        best = 0
        for s in steps:
            best = max(best, sum(b.size for b in self.buffers.values() if b.first <= s <= b.last))
        return best

    def plan(self) -> Plan:
        bufs = [b for b in self.buffers.values() if b.size > 0]
        candidates = [
            ("greedy_by_size", _place_in_order(bufs, sorted(bufs, key=lambda b: (-b.size, b.first)))),
            ("first_use_best_fit", _place_in_order(bufs, sorted(bufs, key=lambda b: (b.first, -b.size)),
                                                   best_fit=True)),
        ]
        two = _two_ended(bufs, self.lower_bound())
        if two is not None:
            candidates.append(("two_ended", two))
        name, offsets = min(candidates, key=lambda c: (_peak(bufs, c[1]), c[0]))
        for b in self.buffers.values():
            b.offset = offsets.get(b.name, 0)
        all_offsets = {b.name: b.offset for b in self.buffers.values()}
        for a in self.aliases:
            root, off = self.resolve(a)
            all_offsets[a] = all_offsets[root] + off
        plan = Plan(all_offsets, _peak(bufs, offsets), name, list(self.buffers.values()))
        check_no_overlap(plan.buffers)
        return plan


def _peak(bufs: list[Buffer], offsets: dict[str, int]) -> int:
    return max((offsets[b.name] + b.size for b in bufs), default=0)


def _lowest_fit(b: Buffer, placed: list[Buffer], offsets: dict[str, int], best_fit: bool) -> int:
    """Lowest (or tightest) aligned offset where b fits among time-overlapping placed buffers."""
    busy = sorted((offsets[p.name], offsets[p.name] + p.size) for p in placed if _overlap_in_time(p, b))
    gaps = []
    cur = 0
    for start, end in busy:
        cand = _round_up(cur, b.align)
        if cand + b.size <= start:
            gaps.append((start - cand, cand))
        cur = max(cur, end)
    tail = _round_up(cur, b.align)
    if best_fit and gaps:
        return min(gaps)[1]
    return gaps[0][1] if gaps else tail


def _place_in_order(bufs, order, best_fit=False) -> dict[str, int]:
    offsets: dict[str, int] = {}
    placed: list[Buffer] = []
    for b in order:
        offsets[b.name] = _lowest_fit(b, placed, offsets, best_fit)
        placed.append(b)
    return offsets


def _two_ended(bufs: list[Buffer], bound: int) -> dict[str, int] | None:
    """Alternate buffers between the bottom and the top of an arena of `bound` units.

    In order of first use, each buffer goes to the end (bottom or top) opposite to the buffers it
    overlaps in time that were placed most recently; returns None if it does not fit in `bound`.
    """
    if not bufs:
        return {}
    offsets: dict[str, int] = {}
    side: dict[str, int] = {}
    placed: list[Buffer] = []
    for b in sorted(bufs, key=lambda x: (x.first, -x.size)):
        live = [p for p in placed if _overlap_in_time(p, b)]
        prefer = 1 - side[live[-1].name] if live else 0
        for s in (prefer, 1 - prefer):
            off = _fit_from_side(b, live, offsets, bound, s)
            if off is not None:
                offsets[b.name], side[b.name] = off, s
                placed.append(b)
                break
        else:
            return None
    return offsets


def _fit_from_side(b: Buffer, live, offsets, bound: int, side: int) -> int | None:
    busy = sorted((offsets[p.name], offsets[p.name] + p.size) for p in live)
    if side == 0:
        cur = 0
        for start, end in busy:
            cand = _round_up(cur, b.align)
            if cand + b.size <= start:
                return cand
            cur = max(cur, end)
        cand = _round_up(cur, b.align)
        return cand if cand + b.size <= bound else None
    top = bound
    for start, end in sorted(busy, key=lambda r: -r[1]):
        cand = (top - b.size) // b.align * b.align
        if cand >= end:
            return cand
        top = min(top, start)
    cand = (top - b.size) // b.align * b.align
    return cand if cand >= 0 else None


def check_no_overlap(bufs: list[Buffer]) -> None:
    """Raise AssertionError if two buffers alive at the same time share memory (a planner bug)."""
    items = [b for b in bufs if b.size > 0]
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if _overlap_in_time(a, b) and a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                raise AssertionError(f"planner bug: {a.name} [{a.offset}, +{a.size}) overlaps "
                                     f"{b.name} [{b.offset}, +{b.size}) while both are alive")


def render_plan(plan: Plan, width: int = 64) -> str:
    """ASCII picture: one row per step, one letter per buffer, scaled to `width` columns."""
    bufs = [b for b in plan.buffers if b.size > 0]
    if not bufs or plan.peak == 0:
        return "(empty plan)"
    steps = range(min(b.first for b in bufs), max(b.last for b in bufs) + 1)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    key = {b.name: letters[i % len(letters)] for i, b in enumerate(bufs)}
    rows = []
    for s in steps:
        row = ["."] * width
        for b in bufs:
            if b.first <= s <= b.last:
                lo = b.offset * width // plan.peak
                hi = max(lo + 1, (b.offset + b.size) * width // plan.peak)
                for k in range(lo, min(hi, width)):
                    row[k] = key[b.name]
        rows.append(f"{s:4d} |{''.join(row)}|")
    legend = ", ".join(f"{key[b.name]}={b.name}" for b in bufs)
    return "\n".join(rows + [f"peak {plan.peak} ({plan.strategy}); {legend}"])
