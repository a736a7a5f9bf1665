"""The conversion pipeline shared by every target:

frontend -> IR -> passes -> (dataset + calibration) -> target.build (quantize, lower, plan memory, emit)
-> report. Output is staged in a temporary sibling and moved into place only when everything succeeded,
so a failed conversion leaves nothing half-written behind.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from . import passes, targets
from .errors import EmcError
from .ir import Graph


def prepare(model, *, name: str | None = None) -> Graph:
    """Load (if needed) and canonicalize a model: the graph every target starts from.

    Float graphs go through the default passes. An int8 graph (from a full-integer .tflite) is taken as
    it is: its ops already carry the converter's fusions, and the float rewrites would change its numbers
    (an int8 identity may requantize; a standalone int8 LOGISTIC has no fused form).
    """
    if isinstance(model, Graph):
        graph = model
    else:
        from .frontends import load_model
        graph = load_model(model, name=name) if name else load_model(model)
    if graph.meta.get("quantized"):
        graph.validate()
        return graph
    return passes.optimize(graph)


def calibration_data(graph: Graph, dataset, dataset_func: str, log=print):
    """Load the calibration samples for the graph's (single) input."""
    from . import datasets
    if len(graph.inputs) != 1:
        raise EmcError(f"calibrating a model with {len(graph.inputs)} inputs from a dataset folder is not "
                       "supported; give a model with one input")
    if dataset is None:
        raise EmcError("this target needs calibration data: give --dataset DIR (images) "
                       "or an .npy/.npz array")
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    ds = datasets.read_dataset(dataset, shape, dataset_func)
    if ds.skipped:
        log(ds.skipped_line())
    return ds.x


@contextlib.contextmanager
def staged_output(out: Path, kind: str):
    """Yield a temporary path beside `out`; move it to `out` on success, delete it on failure."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    staged = tmpdir / out.name
    if kind == "project":
        staged.mkdir()
    try:
        yield staged
        if out.is_dir() and kind == "project":
            shutil.rmtree(out)
        for item in tmpdir.iterdir():
            item.replace(out.parent / item.name)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def convert(model, target: str, out, *, dataset=None, dataset_func: str = "img_0_1", quant: str = "minmax",
            options: dict | None = None, log=print, progress=None):
    """Convert `model` (path, TensorLayer/Keras object or Graph) for `target`, writing `out`.

    Returns the Report (also written as JSON next to the output: OUT.report.json for a file,
    OUT/report.json for a project).
    """
    from . import calibration
    tgt = targets.get(target)
    out = Path(out)
    graph = tgt.prepare_graph(prepare(model))
    data = ranges = None
    if tgt.needs_dataset and not graph.meta.get("quantized"):
        data = calibration_data(graph, dataset, dataset_func, log)
        ranges = calibration.calibrate(graph, data, method=quant, progress=progress)
    ctx = targets.BuildContext(graph=graph, source=str(graph.meta.get("source", model)), dataset=data,
                               dataset_func=dataset_func, ranges=ranges, quant=quant,
                               options=dict(options or {}), log=log)
    with staged_output(out, tgt.output_kind) as staged:
        report = tgt.build(ctx, staged)
        report.outputs = [str(out)]
        report.write(tgt.report_path(staged))
    return report
