"""The two values the video package hands out: a sampled :class:`VideoClip` and a streamed :class:`Frame`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np


@dataclass
class VideoClip:
    """Frames sampled from one source.

    frames: (T, H, W, 3) uint8 RGB; indices: (T,) int64 source frame numbers (``frames[t]`` is the source's frame
    ``indices[t]``, counted in presentation order from 0); timestamps: (T,) float64 seconds from the source's first
    frame; fps: the source's average frame rate; duration: the source's length in seconds; source: its printable
    name; total_frames: frames in the source; backend: the decoder that read it.

    lost_frames: half-open ranges ``(start, end)`` of source frame numbers, ascending and disjoint, that were
    asked for (they lie in the requested window: start/end, the whole video by default) but could not be read,
    from truncated or damaged data: the frames the decoder's index found lost, and the sampled frames that failed
    to decode (frames never tried are not listed). A range may pass ``total_frames`` when the container declares
    more frames than its data holds. The frames were sampled among the readable ones by the same rule, so a
    damaged video still gives the number of frames asked for while it has enough readable ones. Empty for an
    intact source; see :attr:`partial`."""

    frames: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    fps: float
    duration: float
    source: str
    total_frames: int = 0
    backend: str = ""
    lost_frames: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"frames: expected (T, H, W, 3) uint8; got {self.frames.shape} {self.frames.dtype}")
        if not len(self.frames) == len(self.indices) == len(self.timestamps):
            raise ValueError(
                f"frames, indices and timestamps differ in length: {len(self.frames)}, "
                f"{len(self.indices)}, {len(self.timestamps)}"
            )
        self.lost_frames = _checked_ranges(self.lost_frames)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def partial(self) -> bool:
        """Whether frames of the requested window were lost (:attr:`lost_frames` is not empty)."""
        return bool(self.lost_frames)

    @property
    def num_lost_frames(self) -> int:
        """How many frames :attr:`lost_frames` covers."""
        return sum(end - start for start, end in self.lost_frames)

    def take(self, positions: Sequence[int] | np.ndarray) -> "VideoClip":
        """A clip of the frames at ``positions`` ((k,) ints into this clip), in the order given."""
        picks = np.asarray(positions, dtype=np.int64)
        return replace(self, frames=self.frames[picks], indices=self.indices[picks], timestamps=self.timestamps[picks])

    def to_pil(self) -> list[Any]:
        """The frames as a list of PIL images (needs pillow)."""
        from .._optional import require

        image = require("PIL.Image", "video", "pillow")
        return [image.fromarray(frame) for frame in self.frames]

    def __repr__(self) -> str:
        return (
            f"VideoClip(source={self.source!r}, frames={tuple(self.frames.shape)}, fps={self.fps:.3f}, "
            f"duration={self.duration:.2f}s, indices={self.indices.tolist()[:8]}"
            f"{' ...' if len(self.indices) > 8 else ''}, backend={self.backend!r}"
            f"{f', lost {self.num_lost_frames} frames' if self.partial else ''})"
        )


def _checked_ranges(ranges: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """``ranges`` as a tuple of int pairs, or ``ValueError`` unless they are ascending, disjoint and non-empty."""
    pairs = tuple((int(start), int(end)) for start, end in ranges)
    bounds = [bound for pair in pairs for bound in pair]
    if any(start >= end for start, end in pairs) or bounds != sorted(bounds) or min(bounds, default=0) < 0:
        raise ValueError(
            f"lost_frames: expected ascending, disjoint (start, end) ranges with 0 <= start < end; got {ranges}"
        )
    return pairs


@dataclass
class Frame:
    """One streamed frame. image: (H, W, 3) uint8 RGB; index: frame number (for files, the frame's number in the
    file; for live sources, frames decoded since the stream began); timestamp: seconds (for files, from the
    file's first frame; for live sources, wall-clock seconds since the stream began)."""

    image: np.ndarray
    index: int
    timestamp: float

    def __repr__(self) -> str:
        return f"Frame(index={self.index}, timestamp={self.timestamp:.3f}, image={tuple(self.image.shape)})"
