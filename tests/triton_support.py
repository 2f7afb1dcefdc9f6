"""Shared by the tests that run Triton kernels under Triton's CPU interpreter."""

import pytest


def needs_recent_interpreter() -> None:
    """Skip unless Triton's CPU interpreter can run our kernels: 3.6 fails with "only 0-dimensional arrays can be
    converted to Python scalars"; 3.9, the version CI installs, runs them."""
    triton = pytest.importorskip("triton")
    major, minor = (int(part) for part in triton.__version__.split(".")[:2])
    if (major, minor) < (3, 9):
        pytest.skip(f"Triton {triton.__version__}'s CPU interpreter cannot run these kernels (needs 3.9+)")
