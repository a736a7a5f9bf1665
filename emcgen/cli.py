"""The `emcgen` command line (also `python -m emcgen`).

Commands (a contract: later work and outside checks call exactly these):
  emcgen convert MODEL --target TARGET --dataset DIR [--dataset-func F] [--quant Q] -o OUT
  emcgen run MODEL --input X --output Y.npy [--dataset-func F]
  emcgen inspect FILE [--json]
  emcgen targets
  emcgen verify OUT --inputs X.npy --outputs Y.npy [--on host|qemu]

Bad input prints one line on stderr and exits with code 2; --debug shows the traceback instead.
Each command is a small class with a name, a help line, add_arguments() and run(); COMMANDS lists them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .errors import EmcError


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


class Command:
    name = ""
    help = ""

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        pass

    def run(self, args) -> int:
        raise NotImplementedError


class Convert(Command):
    name = "convert"
    help = "convert a model for a target (kmodel file, K210 project, STM32 project)"

    def add_arguments(self, p):
        from . import targets
        p.add_argument("model", help="model file (.h5 TensorLayer/Keras, .keras, .tflite)")
        p.add_argument("--target", "-t", required=True, choices=list(targets.REGISTRY),
                       help="what to produce (see `emcgen targets`)")
        p.add_argument("--dataset", "-d", help="calibration data: a folder of images or an .npy/.npz array")
        p.add_argument("--dataset-func", default="img_0_1",
                       help="how pixels become model inputs: img_0_1 (default), img_neg1_1, img_0_255")
        p.add_argument("--quant", default="minmax", help="calibration method: minmax (default), kld, percentile")
        p.add_argument("-o", "--output", required=True, help="output file (kmodel) or folder (projects)")
        g = p.add_argument_group("target options")
        for name in targets.REGISTRY:
            try:
                targets.get(name).add_arguments(g)
            except EmcError:
                pass

    def run(self, args):
        from . import targets
        from .convert import convert
        from .progress import make_progress
        tgt = targets.get(args.target)
        options = {k: v for k, v in vars(args).items() if k not in _COMMON_KEYS}
        report = convert(args.model, args.target, Path(args.output), dataset=args.dataset,
                         dataset_func=args.dataset_func, quant=args.quant, options=options,
                         log=print, progress=make_progress("calibrating"))
        print(report.table())
        print()
        for line in report.summary_lines():
            print(line)
        out = Path(args.output)
        print(f"wrote {out}{'/' if tgt.output_kind == 'project' else ''} and {tgt.report_path(out)}")
        return 0


_COMMON_KEYS = {"command", "debug", "model", "target", "dataset", "dataset_func", "quant", "output", "func"}


def _is_kmodel(path: Path) -> bool:
    if path.suffix.lower() == ".kmodel":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[:4] == b"\x03\x00\x00\x00" and head[8:12] == b"\x00\x00\x00\x00"


def _need_file(path: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise EmcError(f"{path}: no such file")
    return p


class Run(Command):
    name = "run"
    help = "run a model on inputs (float/int8 reference interpreters; kmodel through the K210 emulator)"

    def add_arguments(self, p):
        p.add_argument("model", help="model file (.h5, .keras, .tflite, .kmodel)")
        p.add_argument("--input", "-i", required=True,
                       help="an image file, a .npy of one input or a batch (N, H, W, C); for a kmodel also a "
                            ".bin of the raw bytes kpu_run_kmodel receives")
        p.add_argument("--output", "-o", required=True, help="where to save the outputs (.npy, batch first)")
        p.add_argument("--dataset-func", default="img_0_1", help="normalization for image inputs (default img_0_1)")

    def run(self, args):
        model = _need_file(args.model)
        x_path = _need_file(args.input)
        if _is_kmodel(model):
            outputs = _run_kmodel(model, x_path)
        else:
            outputs = _run_graph(model, x_path, args.dataset_func)
        _save_outputs(Path(args.output), outputs)
        shapes = ", ".join(f"{k} {tuple(v.shape)} {v.dtype}" for k, v in outputs.items())
        print(f"wrote {args.output}: {shapes}")
        return 0


def _load_batch(x_path: Path, shape, dataset_func: str):
    """Input file -> batch (N, *shape): images and uint8 arrays go through the dataset function."""
    from . import datasets
    if x_path.suffix.lower() in (".npy", ".npz"):
        return datasets.load_dataset(x_path, tuple(shape), dataset_func)
    return datasets.load_image(x_path, tuple(shape), dataset_func)


def _run_graph(model: Path, x_path: Path, dataset_func: str) -> dict[str, np.ndarray]:
    from .frontends import load_model
    graph = load_model(str(model))
    if len(graph.inputs) != 1:
        raise EmcError(f"{model}: `emcgen run` handles models with one input; this one has {len(graph.inputs)}")
    shape = graph.tensors[graph.inputs[0]].shape[1:]
    raw = np.load(x_path) if x_path.suffix.lower() == ".npy" else None
    if raw is not None and raw.dtype == np.int8:      # already-quantized input of an int8 model
        x = raw if raw.shape[1:] == tuple(shape) else raw[None]
    else:
        x = _load_batch(x_path, shape, dataset_func)
    if graph.meta.get("quantized"):
        from .tflite_int8.interpreter import run_int8
        return run_int8(graph, [x])
    from . import interpreter
    return dict(zip(graph.outputs, interpreter.predict(graph, x.astype(np.float32)), strict=True))


def kmodel_input_shape(km) -> tuple[int, ...]:
    """What the first layer reads: (H, W, C) uint8 pixels, or (N,) floats for a FULLY_CONNECTED first layer."""
    first = km.layers[0]
    if first.type.name == "FULLY_CONNECTED":
        return (int(first.body.in_channels),)
    if first.type.tail != "conv":
        raise EmcError(f"the first layer is {first.name}; kmodels start with K210_CONV or FULLY_CONNECTED")
    c, h, w = first.geometry.in_shape
    return (h, w, c)


def _run_kmodel(model: Path, x_path: Path) -> dict[str, np.ndarray]:
    from . import kmodel
    km = kmodel.load(model)
    shape = kmodel_input_shape(km)
    suffix = x_path.suffix.lower()
    if suffix == ".bin":
        samples = [x_path.read_bytes()]
    elif suffix == ".npy":
        x = np.load(x_path)
        samples = [x] if x.ndim == len(shape) else list(x)
    elif len(shape) == 1:
        raise EmcError(f"{model}: the first layer reads {shape[0]} floats; give a .npy or a .bin, not an image")
    else:
        from . import datasets
        samples = [datasets.load_image_uint8(x_path, shape)]
    results = [kmodel.run(km, s) for s in samples]
    return {f"output_{i}": np.stack([r[i] for r in results]) for i in range(len(results[0]))}


def _save_outputs(path: Path, outputs: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(outputs) == 1:
        np.save(path, next(iter(outputs.values())))
    elif path.suffix == ".npz":
        np.savez(path, **{k.replace("/", "_"): v for k, v in outputs.items()})
    else:
        raise EmcError(f"the model has {len(outputs)} outputs; give an --output ending in .npz to save them all")


class Inspect(Command):
    name = "inspect"
    help = "summarize a model or a kmodel (layers, shapes, parameters, MACs; kmodel registers and memory)"

    def add_arguments(self, p):
        p.add_argument("file", help="a model file or a .kmodel")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def run(self, args):
        path = _need_file(args.file)
        if _is_kmodel(path):
            from . import kmodel
            from .kmodel import inspect as kinspect
            km = kmodel.load(path)
            print(json.dumps(kinspect.describe(km), indent=2) if args.json else kinspect.render(km))
            return 0
        from .frontends import load_model
        from .report import layer_rows, render_table
        graph = load_model(str(path))
        rows = layer_rows(graph)
        if args.json:
            info = {"model": graph.name, "inputs": {n: list(graph.tensors[n].shape) for n in graph.inputs},
                    "outputs": {n: list(graph.tensors[n].shape) for n in graph.outputs},
                    "quantized": bool(graph.meta.get("quantized")), "layers": rows}
            print(json.dumps(info, indent=2))
        else:
            print(f"model {graph.name}: inputs "
                  + ", ".join(f"{n} {list(graph.tensors[n].shape)}" for n in graph.inputs))
            print(render_table(rows, ["name", "op", "activation", "output", "params", "macs", "activation_bytes"]))
            print(f"total: {sum(r['params'] for r in rows):,} parameters, {sum(r['macs'] for r in rows):,} MACs")
        return 0


class Targets(Command):
    name = "targets"
    help = "list the targets this emcgen can convert to"

    def run(self, args):
        from . import targets
        for name, summary, kind in targets.available():
            print(f"{name:8s} {kind:8s} {summary}")
        return 0


class Verify(Command):
    name = "verify"
    help = "build a generated project, run it on inputs and compare with emcgen's reference"

    def add_arguments(self, p):
        p.add_argument("project", help="a project folder written by `emcgen convert`")
        p.add_argument("--inputs", required=True, help=".npy batch of inputs (int8 or float, as the model's input)")
        p.add_argument("--outputs", required=True, help="where to write what the built code produced (.npy)")
        p.add_argument("--on", default="host", choices=["host", "qemu"], help="host gcc (default) or QEMU")

    def run(self, args):
        from . import targets
        project = _need_file(args.project)
        report_path = project / "report.json"
        if not report_path.exists():
            raise EmcError(f"{project}: no report.json; is this a folder written by `emcgen convert`?")
        target = json.loads(report_path.read_text()).get("target", "")
        tgt = targets.get(target)
        if not hasattr(tgt, "verify"):
            raise EmcError(f"target {target!r} has no verify step")
        return tgt.verify(project, Path(args.inputs), Path(args.outputs), on=args.on)


COMMANDS: list[Command] = [Convert(), Run(), Inspect(), Targets(), Verify()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emcgen", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"emcgen {__version__}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS:
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        cmd.add_arguments(p)
        p.set_defaults(func=cmd.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except EmcError as exc:
        if args.debug:
            raise
        _err(f"emcgen {args.command}: error: {exc}")
        return exc.exit_code
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        if args.debug:
            raise
        _err(f"emcgen {args.command}: error: {exc.filename or ''}: {exc.strerror or exc}")
        return 2
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
