"""Helpers for tests: locate ../shared/ data and external tools; skip locally, fail in CI."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("EMCGEN_SHARED", ROOT.parent / "shared"))
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str):
    """Skip (user's clone) or fail (CI=true) because something the test needs is absent."""
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def shared(*parts: str) -> Path:
    """Path of a file under ../shared/, or skip/fail when it is not there."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        missing(f"{path} not found (the read-only ../shared/ folder beside the checkout)")
    return path


def tool(name: str) -> str:
    """Full path of an executable on PATH, or skip/fail when it is not installed."""
    found = shutil.which(name)
    if not found:
        missing(f"tool '{name}' is not installed (make test installs it on Debian when run as root)")
    return found


def module(name: str):
    """Import an optional Python module (tensorflow, tflite_micro, ...), or skip/fail without it."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        missing(f"Python module '{name}' is not installed ({exc})")
