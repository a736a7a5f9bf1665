"""`make demo`: convert the bundled MNIST example for every target that exists and show the reports.

Uses only files inside the repository (examples/mnist: the trained TensorLayer model and its calibration
digits), so it needs no network and no training.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import targets
from .convert import convert
from .errors import EmcError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "mnist"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="out", help="output folder (default: out)")
    args = ap.parse_args(argv)
    model = EXAMPLE / "mnist_cnn.h5"
    dataset = EXAMPLE / "calibration"
    if not model.exists():
        print(f"demo: {model} is missing (examples/mnist is part of the repository)", file=sys.stderr)
        return 2
    out = Path(args.out)
    written = []
    for name, summary, kind in targets.available():
        dest = out / ("mnist.kmodel" if kind == "file" else f"mnist_{name}")
        print(f"\n=== {name}: {summary}\n")
        try:
            report = convert(str(model), name, dest, dataset=str(dataset), dataset_func="img_0_1", quant="minmax")
        except EmcError as exc:
            print(f"demo: {name}: error: {exc}", file=sys.stderr)
            return 2
        print(report.table())
        print()
        for line in report.summary_lines():
            print("  " + line)
        written.append((name, dest, targets.get(name).report_path(dest)))
    print("\n=== outputs")
    for name, dest, rep in written:
        print(f"  {name:8s} {dest}   (report: {rep})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
