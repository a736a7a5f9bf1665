"""Calibration methods by name: `register_method(name, factory)`, `get_method(name, **options)`.

A factory takes the method's options as keyword arguments and returns a CalibrationMethod. A method
sees only TensorStats (never activations): `histogram(stats)` says whether it wants a second pass that
fills a histogram for that tensor (and over which range), and `range(stats)` turns the statistics into
the (min, max) the quantizer will use.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EmcError
from .stats import Histogram, TensorStats


class CalibrationMethod:
    """Base class of calibration methods.

    two_pass: True when `histogram` may return a histogram (the data are then run a second time).
    """

    name = "?"
    two_pass = False

    def histogram(self, stats: TensorStats) -> Histogram | None:
        """An empty histogram to fill during the second pass, or None when this tensor needs none."""
        return None

    def range(self, stats: TensorStats) -> tuple[float, float]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The options in effect (for reports)."""
        return {}


Factory = Callable[..., CalibrationMethod]
_REGISTRY: dict[str, Factory] = {}


def register_method(name: str, factory: Factory, *, replace: bool = False) -> None:
    """Make `factory(**options) -> CalibrationMethod` available as calibration method `name`."""
    if not isinstance(name, str) or not name:
        raise EmcError(f"calibration method name must be a non-empty string, got {name!r}")
    if not callable(factory):
        raise EmcError(f"calibration method {name!r}: factory {factory!r} is not callable")
    if name in _REGISTRY and not replace:
        raise EmcError(f"calibration method {name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[name] = factory


def method_names() -> list[str]:
    """Names of the registered calibration methods, in registration order."""
    return list(_REGISTRY)


def get_method(method: str | CalibrationMethod, **options) -> CalibrationMethod:
    """A configured method from its name (options go to its factory), or an instance as it is."""
    if isinstance(method, CalibrationMethod):
        if options:
            raise EmcError(f"options {', '.join(sorted(options))} cannot be applied to an already built "
                           f"calibration method {method.name!r}")
        return method
    try:
        factory = _REGISTRY[method]
    except (KeyError, TypeError):
        raise EmcError(f"unknown calibration method {method!r}; known: {', '.join(_REGISTRY)}") from None
    return factory(**options)


def take_options(method: str, given: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """defaults updated with `given`; an option not in defaults is an error naming the known ones."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise EmcError(f"calibration method {method!r} has no option {', '.join(unknown)}; its options: {known}")
    return {**defaults, **given}


def positive_int(method: str, option: str, value, minimum: int = 1) -> int:
    """An integer option >= minimum, or an EmcError naming the method, option and value."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise EmcError(f"calibration method {method!r}: option {option} must be an integer >= {minimum}, "
                       f"got {value!r}")
    return int(value)
