"""The calibration driver: run the float interpreter over the dataset in batches and collect ranges.

Pass 1 runs every batch and keeps per-tensor running statistics (TensorStats: count, min, max, sum,
sum of squares) through the interpreter's `observe` callback; activations are dropped as soon as they
have been observed. Methods that need a distribution (kld, percentile: `two_pass`) get a second pass
that fills one fixed-range histogram per tensor, the range taken from pass 1 (a histogram cannot be
binned before its range is known). The method then turns each tensor's statistics into (min, max).

Every range returned satisfies min < max: a degenerate one is widened upwards by a tiny step (see
stats.widen). Zero is NOT forced into the range; the quantizer decides. Graph inputs keep their
observed min/max unless clip_inputs=True, because clipping raw model inputs (pixels) never helps and
the K210 target derives the input quantization from the dataset function anyway.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from .. import interpreter
from ..errors import EmcError
from ..ir import Graph
from ..progress import Progress, report, scaled
from .registry import CalibrationMethod, get_method
from .stats import TensorStats, widen


class Ranges(Mapping):
    """tensor name -> (min, max) for every graph input and op output; also the statistics behind them.

    Attributes: method (name), options (dict), samples (int), stats {name: TensorStats} (histograms
    included when the method used them).
    """

    def __init__(self, ranges: dict[str, tuple[float, float]], stats: dict[str, TensorStats],
                 method: str, options: dict[str, Any], samples: int):
        self._ranges = ranges
        self.stats = stats
        self.method = method
        self.options = options
        self.samples = samples

    def __getitem__(self, name: str) -> tuple[float, float]:
        return self._ranges[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ranges)

    def __len__(self) -> int:
        return len(self._ranges)

    def __repr__(self) -> str:
        return f"Ranges({self.method}, {len(self)} tensors, {self.samples} samples)"

    def to_json(self, histograms: bool = False) -> dict:
        tensors = {}
        for name, (lo, hi) in self._ranges.items():
            s = self.stats[name]
            entry = {"min": lo, "max": hi, "observed_min": s.min, "observed_max": s.max}
            if histograms and s.histogram is not None:
                entry["stats"] = s.to_json()
            tensors[name] = entry
        return {"method": self.method, "options": self.options, "samples": self.samples, "tensors": tensors}


def _bind(graph: Graph, data) -> list[np.ndarray]:
    """Calibration data -> one array per graph input (graph.inputs order), all with the same N >= 1."""
    if isinstance(data, Mapping):
        missing = [n for n in graph.inputs if n not in data]
        if missing:
            given = ", ".join(repr(k) for k in data) or "none"
            raise EmcError(f"calibration data has no samples for model input(s) "
                           f"{', '.join(map(repr, missing))} (given: {given})")
        arrays = [data[n] for n in graph.inputs]
    elif isinstance(data, np.ndarray):
        arrays = [data]
    elif isinstance(data, list | tuple):
        arrays = list(data)
    else:
        raise EmcError(f"calibration data must be an array, a list of arrays or a dict by input name, "
                       f"got {type(data).__name__}")
    if len(arrays) != len(graph.inputs):
        raise EmcError(f"model {graph.name!r} has {len(graph.inputs)} inputs; calibration data gives "
                       f"{len(arrays)} arrays")
    out = []
    for name, a in zip(graph.inputs, arrays, strict=True):
        a = np.asarray(a)
        want = tuple(graph.tensors[name].shape[1:])
        if a.ndim == 0 or tuple(a.shape[1:]) != want:
            raise EmcError(f"calibration data for input {name!r} has shape {a.shape}; expected "
                           f"(N, {', '.join(map(str, want))})")
        if a.dtype.kind not in "fiu":
            raise EmcError(f"calibration data for input {name!r} has dtype {a.dtype}; expected numbers")
        out.append(a)
    n = {a.shape[0] for a in out}
    if len(n) != 1:
        raise EmcError(f"calibration inputs have different sample counts {sorted(n)}")
    if n == {0}:
        raise EmcError("calibration data holds no samples")
    return out


def _run_pass(graph: Graph, arrays, batch_size: int, observe, progress: Progress | None) -> None:
    n = arrays[0].shape[0]
    starts = range(0, n, batch_size)
    for k, start in enumerate(starts):
        batch = [np.asarray(a[start:start + batch_size], dtype=np.float32) for a in arrays]
        interpreter.run(graph, batch, observe=observe)
        report(progress, (k + 1) / len(starts))


def _producer(graph: Graph, name: str) -> str:
    op = graph.producer(name)
    return f"output of {op.type} {op.name!r}" if op else "model input"


def calibrate(graph: Graph, data, method: str | CalibrationMethod = "minmax",
              progress: Progress | None = None, batch_size: int = 64, *, clip_inputs: bool = False,
              **options) -> Ranges:
    """Activation ranges of `graph` over `data` with a calibration method by name (options go to it).

    data: float32 samples (N, ...) for a one-input graph, or a list / {input name: array} of them.
    Returns Ranges: tensor name -> (min, max) with min < max, for every graph input and op output.
    """
    m = get_method(method, **options)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EmcError(f"calibration batch size must be a positive integer, got {batch_size!r}")
    arrays = _bind(graph, data)
    stats: dict[str, TensorStats] = {}

    def first(name: str, value: np.ndarray) -> None:
        s = stats.get(name)
        if s is None:
            s = stats[name] = TensorStats(name)
        s.update(value)

    _run_pass(graph, arrays, batch_size, first, scaled(progress, 0.0, 0.45 if m.two_pass else 1.0))
    for name, s in stats.items():
        if not s.finite:
            raise EmcError(f"tensor {name!r} ({_producer(graph, name)}) has NaN or infinite values on the "
                           "calibration data; check the model weights and the dataset normalization")

    wanted = {name: h for name, s in stats.items() if (h := m.histogram(s)) is not None}
    if wanted:
        for name, h in wanted.items():
            stats[name].histogram = h

        def second(name: str, value: np.ndarray) -> None:
            h = wanted.get(name)
            if h is not None:
                h.add(value)

        _run_pass(graph, arrays, batch_size, second, scaled(progress, 0.45, 0.9))

    ranges: dict[str, tuple[float, float]] = {}
    inputs = set(graph.inputs)
    for k, (name, s) in enumerate(stats.items()):
        if name in inputs and not clip_inputs:
            lo, hi = s.min, s.max
        else:
            lo, hi = m.range(s)
        ranges[name] = widen(lo, hi)
        report(progress, 0.9 + 0.1 * (k + 1) / len(stats) if m.two_pass else 1.0)
    report(progress, 1.0)
    return Ranges(ranges, stats, m.name, m.options(), int(arrays[0].shape[0]))
