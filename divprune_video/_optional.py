"""Lazy imports of optional dependencies with a message naming the extra that provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import DivPruneVideoError


class MissingDependencyError(DivPruneVideoError, ImportError):
    """An optional dependency is not installed; the message says which extra installs it."""


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install 'divprune-video[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but is not installed: "
            f"pip install 'divprune-video[{extra}]' (or pip install {package or module})",
            name=module,
        ) from error
