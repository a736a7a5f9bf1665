"""Targets: what a converted model becomes.

A target is a class with a name, a one-line summary, the kind of output it writes (a file or a project
folder) and a `build(ctx, out)` method that returns the per-layer Report. Targets are registered here by
module path and imported only when used, so `emcgen targets` works even when one target's optional
dependencies are missing, and adding a target is one new module plus one line below.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import EmcError
from ..ir import Graph

# name -> (module, class)
REGISTRY: dict[str, tuple[str, str]] = {
    "kmodel": ("emcgen.targets.k210.kmodel_target", "KModelTarget"),
    "k210": ("emcgen.targets.k210.project", "K210ProjectTarget"),
    "stm32": ("emcgen.targets.stm32.target", "Stm32Target"),
}


@dataclass
class BuildContext:
    """Everything a target needs from the common front half of the pipeline."""

    graph: Graph                       # after the default passes; float, or int8 from a quantized .tflite
    source: str = ""                   # where the model came from (path or object description)
    dataset: np.ndarray | None = None  # calibration samples, float32 (N, H, W, C), after dataset_func
    dataset_func: str = "img_0_1"
    ranges: Any = None                 # emcgen.calibration result: tensor name -> (min, max)
    quant: str = "minmax"
    options: dict[str, Any] = field(default_factory=dict)
    log: Any = print


class Target:
    """Base class; subclasses set the attributes and implement build()."""

    name = ""
    summary = ""
    output_kind = "file"        # "file" or "project"
    suffix = ""                 # default file suffix for "file" targets
    needs_dataset = True        # float models need calibration data

    def add_arguments(self, parser) -> None:
        """Target-specific CLI options (e.g. --mcu); parsed values arrive in ctx.options."""

    def prepare_graph(self, graph: Graph) -> Graph:
        """Target-specific rewrites that must happen before calibration (e.g. unfusing activations the
        target cannot fuse, so their inputs get calibrated ranges). Default: none."""
        return graph

    def build(self, ctx: BuildContext, out: Path):
        raise NotImplementedError

    def report_path(self, out: Path) -> Path:
        out = Path(out)
        if self.output_kind == "project":
            return out / "report.json"
        return out.with_name(out.name + ".report.json")


def get(name: str) -> Target:
    if name not in REGISTRY:
        raise EmcError(f"unknown target {name!r}; available: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("emcgen"):
            raise EmcError(f"target {name!r} is not built yet in this version of emcgen") from None
        raise
    if not hasattr(mod, cls):
        raise EmcError(f"target {name!r} is not built yet in this version of emcgen")
    return getattr(mod, cls)()


def available() -> list[tuple[str, str, str]]:
    """(name, summary, output kind) of every target whose module imports."""
    rows = []
    for name in REGISTRY:
        try:
            t = get(name)
        except EmcError:
            continue
        rows.append((name, t.summary, t.output_kind))
    return rows
