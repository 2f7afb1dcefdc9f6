"""Fixtures for the video tests: index-coded files written once per session (small, fast to decode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from divprune_video.testing import write_index_coded_video
from divprune_video.video.backends import backend_problem

#: Frames in the shared test video: 5 s at 30 fps, a keyframe every 12 frames, 2 B-frames between references.
CODED_FRAMES = 150


def require_backend(name: str) -> None:
    """Skip the calling test when backend ``name`` cannot load here (saying why)."""
    problem = backend_problem(name)
    if problem is not None:
        pytest.skip(f"backend {name!r} unavailable: {problem}")


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def coded_mp4(video_dir: Path) -> Path:
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    return write_index_coded_video(video_dir / "coded.mp4", CODED_FRAMES)


@pytest.fixture(scope="session")
def coded_ts(video_dir: Path) -> Path:
    """The same frames in an MPEG-TS file (no frame count in the header; seeking by byte position)."""
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    return write_index_coded_video(video_dir / "coded.ts", CODED_FRAMES)
