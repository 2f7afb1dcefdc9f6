"""The root of the errors divprune-video raises for its own reasons.

``except DivPruneVideoError`` catches every one of them: bad or unreadable video (:class:`~.video.VideoError` and its
subclasses), benchmark data and settings (:class:`~.eval.base.BenchmarkError`), a prompt longer than the model's
context (:class:`~.models.context.ContextLengthError`), an optional dependency that is not installed
(:class:`~._optional.MissingDependencyError`), a question before any frame (:class:`~.streaming.EmptyMemoryError`),
a failed worker of a sharded run. Each also derives from the built-in exception it refines (``ValueError``,
``ImportError``, ``FileNotFoundError`` ...), so code that catches those keeps working.
"""

from __future__ import annotations

__all__ = ["DivPruneVideoError"]


class DivPruneVideoError(Exception):
    """Base class of every error divprune-video raises for its own reasons (see the module text)."""
