"""Where the Jinja2 templates of the generated projects live.

They are kept at <repo>/templates/ (templates/k210, templates/stm32_cmsis) and shipped inside the wheel as
emcgen/templates/ (pyproject's force-include); this is the one place that knows both locations.
"""
from __future__ import annotations

from pathlib import Path

from .errors import EmcError

_PACKAGE = Path(__file__).resolve().parent


def templates_dir(kind: str | None = None) -> Path:
    """The templates folder (emcgen/templates in a wheel, <repo>/templates in a checkout), or its `kind`
    subfolder (e.g. 'k210', 'stm32_cmsis')."""
    for base in (_PACKAGE / "templates", _PACKAGE.parent / "templates"):
        if base.is_dir() and (kind is None or (base / kind).is_dir()):
            return base / kind if kind else base
    raise EmcError(f"the project templates{' ' + kind if kind else ''} are missing from this emcgen installation "
                   f"(looked in {_PACKAGE / 'templates'} and {_PACKAGE.parent / 'templates'})")
