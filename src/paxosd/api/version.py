"""The version of the installed paxosd, as the front ends report it (RESP INFO and HELLO, the
dashboard)."""

from __future__ import annotations

from importlib import metadata
from typing import Final

__all__ = ["VERSION"]


def _version() -> str:
    try:
        return metadata.version("paxosd")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


VERSION: Final = _version()
