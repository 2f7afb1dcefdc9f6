"""The interface every decoding backend implements, and the shared bookkeeping around it.

A :class:`VideoReader` has random access by frame number: ``read(indices)`` returns exactly the frames asked for
(in the order asked, duplicates allowed) with their timestamps. Frame number ``i`` is the ``i``-th frame in
presentation order, the same for every backend. Subclasses implement ``_decode(unique_sorted_indices)``, which
may leave out frames it could not decode; ``read`` then warns and returns what was readable, or raises
:class:`CorruptVideoError` when nothing was. ``read_available`` returns what was readable without either, for
callers that choose other frames instead (``load_video``). Frames known to be lost before decoding (found while
indexing) are in ``info.lost_frames``.
"""

from __future__ import annotations

import logging
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Iterable, Iterator, Optional, Sequence

import numpy as np

from ..errors import CorruptVideoError, TruncatedVideoWarning
from ..sources import VideoSource

logger = logging.getLogger("divprune_video.video")


@dataclass
class VideoInfo:
    """What is known about a source before decoding frames.

    timestamps: (num_frames,) float64 seconds of each frame from the first one (which is at 0). lost_frames:
    half-open ``(start, end)`` ranges of frame numbers known to be unreadable (lost or damaged data found while
    indexing), ascending; the last may pass ``num_frames`` when the container declares more frames than its data
    holds."""

    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    timestamps: np.ndarray
    codec: str = ""
    lost_frames: tuple[tuple[int, int], ...] = ()


@dataclass
class DecodedFrames:
    """frames: (T, H, W, 3) uint8 RGB; indices: (T,) int64 frame numbers; timestamps: (T,) float64 seconds."""

    frames: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray


def default_threads() -> int:
    """Decoding threads to use: the CPUs this process may run on, at most 8."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return max(1, min(count, 8))


def timestamps_from_rate(num_frames: int, fps: float) -> np.ndarray:
    """(num_frames,) float64 seconds ``i / fps`` for sources that only know their average rate."""
    return np.arange(num_frames, dtype=np.float64) / fps


class VideoReader(ABC):
    """Random access to one video's frames. Use as a context manager, or call :meth:`close`."""

    #: The backend's name ("pyav", "decord", "opencv", "torchcodec", "frames").
    name: ClassVar[str] = ""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.info: VideoInfo

    @abstractmethod
    def _decode(self, indices: np.ndarray) -> dict[int, np.ndarray]:
        """Decode the frames at ``indices`` ((U,) int64, unique, ascending); return {frame number: (H, W, 3)
        uint8 RGB} for those that could be decoded."""

    def iter_frames(self) -> Iterator[tuple[int, float, np.ndarray]]:
        """Every frame in order, as ``(frame number, timestamp seconds, (H, W, 3) uint8 RGB)``. The default reads
        in batches through :meth:`read`; backends with a faster sequential path override it."""
        batch = 16
        for begin in range(0, self.info.num_frames, batch):
            decoded = self.read(np.arange(begin, min(begin + batch, self.info.num_frames)))
            for frame, index, stamp in zip(decoded.frames, decoded.indices, decoded.timestamps):
                yield int(index), float(stamp), frame

    def read(self, indices: Sequence[int] | np.ndarray) -> DecodedFrames:
        """The frames at ``indices`` ((T,) ints in 0..num_frames-1, any order, repeats allowed).

        Frames that cannot be decoded (truncated or damaged data) are left out with a
        :class:`TruncatedVideoWarning`; when none can be, :class:`CorruptVideoError` is raised."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        decoded = self.read_available(wanted)
        keep = np.array([int(i) in decoded for i in wanted], dtype=bool)
        if not keep.any():
            raise CorruptVideoError(
                self.source.name, f"none of the {len(np.unique(wanted))} requested frames could be decoded"
            )
        if not keep.all():
            missing = {int(i) for i in wanted[~keep]}
            warn_lost(
                self.source.name,
                f"{frame_ranges(missing)} could not be decoded (truncated or damaged data: "
                f"{len(missing)} of the {len(np.unique(wanted))} requested); returning the "
                f"other {int(keep.sum())}",
                stacklevel=4,
            )
        kept = wanted[keep]
        return DecodedFrames(stack_frames(decoded, kept), kept, self.info.timestamps[kept].astype(np.float64))

    def read_available(self, indices: Sequence[int] | np.ndarray) -> dict[int, np.ndarray]:
        """Decode the frames at ``indices`` ((T,) ints in 0..num_frames-1, any order, repeats allowed) that can
        be decoded: {frame number: (H, W, 3) uint8 RGB}. Frames lost to truncated or damaged data are absent,
        silently (:meth:`read` warns)."""
        wanted = np.asarray(indices, dtype=np.int64).reshape(-1)
        total = self.info.num_frames
        if len(wanted) == 0:
            raise ValueError("indices: expected at least one frame number")
        if wanted.min() < 0 or wanted.max() >= total:
            raise IndexError(f"{self.source.name}: frame numbers must lie in 0..{total - 1}; got {wanted.tolist()}")
        return self._decode(np.unique(wanted))

    def close(self) -> None:
        """Release the decoder. Safe to call twice."""

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.source.name!r}, frames={self.info.num_frames}, fps={self.info.fps:.3f})"


def warn_lost(source_name: str, problem: str, *, stacklevel: int) -> None:
    """Log and warn (:class:`TruncatedVideoWarning`) that part of ``source_name`` could not be read."""
    message = f"{source_name}: {problem}"
    logger.warning(message)
    warnings.warn(message, TruncatedVideoWarning, stacklevel=stacklevel)


def runs(numbers: Iterable[int]) -> tuple[tuple[int, int], ...]:
    """The half-open ranges ``(start, end)``, ascending, that cover the distinct ints ``numbers`` (any order)."""
    ranges: list[list[int]] = []
    for value in sorted({int(i) for i in numbers}):
        if ranges and value == ranges[-1][1]:
            ranges[-1][1] = value + 1
        else:
            ranges.append([value, value + 1])
    return tuple((start, end) for start, end in ranges)


def frame_ranges(numbers: Iterable[int], limit: int = 6) -> str:
    """``"frames 3, 40-63, 70"`` (``"frame 3"`` for one) for frame ``numbers`` (ints, any order), at most ``limit``
    ranges and then ``", ..."``."""
    found = runs(numbers)
    text = ", ".join(f"{a}" if b == a + 1 else f"{a}-{b - 1}" for a, b in found[:limit])
    word = "frame" if len(found) == 1 and found[0][1] == found[0][0] + 1 else "frames"
    return f"{word} {text}" + (", ..." if len(found) > limit else "")


def stack_frames(decoded: dict[int, np.ndarray], order: np.ndarray) -> np.ndarray:
    """(len(order), H, W, 3) array of ``decoded[i] for i in order``, emptying ``decoded`` as it goes, so that
    peak memory stays near one copy of the frames (the output's pages are only committed as they are filled)."""
    last_use = {int(i): position for position, i in enumerate(order)}
    first = decoded[int(order[0])]
    frames = np.empty((len(order), *first.shape), dtype=first.dtype)
    for position, i in enumerate(order):
        frames[position] = decoded[int(i)]
        if last_use[int(i)] == position:
            del decoded[int(i)]
    return frames


def rotate_to_display(image: np.ndarray, rotation: Optional[float]) -> np.ndarray:
    """Apply a display-matrix rotation (degrees counter-clockwise, as FFmpeg reports it) to an (H, W, 3) frame,
    so that frames come out the way players show them."""
    if not rotation:
        return image
    turns = int(round(rotation / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image
