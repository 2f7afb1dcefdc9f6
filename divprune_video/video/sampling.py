"""Which frames to take: uniform rules, a fixed rate, and a [start, end] time window.

Two uniform rules are in use for LLaVA-NeXT-Video, and they pick different frames:

- ``"lmms_eval"`` (the default, and what benchmark numbers are reported with): lmms-eval's video loaders
  (``lmms_eval/models/model_utils/load_video.py``, read at commit 75571cfe) take
  ``n = min(num_frames, total)`` frames at ``np.linspace(0, total - 1, n)`` rounded down. The first and the last
  frame are always included; asking for more frames than the video has returns every frame once.
- ``"llava_next_video"``: the LLaVA-NeXT-Video examples in transformers (the model card's ``read_video_pyav``
  helper) take ``np.arange(0, total, total / n)`` rounded down: ``n`` frames starting at frame 0 with stride
  ``total / n``, so the last frame is usually not included; asking for more frames than the video has repeats
  frames. (transformers' video processors, e.g. ``apply_chat_template(..., num_frames=8)``, sample
  ``i * total // n`` in integers: the same indices for every total up to 40,000 and n up to 128.)

Both are computed here in the same floating-point arithmetic as those expressions, so the indices agree with the
reference implementations exactly (tested against the expressions above). ``total`` is the number of frames
counted from the file's packets; for MP4 that equals the header's frame count that lmms-eval reads.
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np

from .errors import TimeRangeError

SamplingRule = Literal["lmms_eval", "llava_next_video"]
SAMPLING_RULES: tuple[str, ...] = ("lmms_eval", "llava_next_video")

# Timestamps are compared with this slack (seconds), so that a window boundary set to a frame's exact time
# includes that frame despite float rounding.
_EPS = 1e-6


def uniform_indices(num_total: int, num_frames: int, rule: SamplingRule = "lmms_eval") -> np.ndarray:
    """(n,) int64 frame numbers in 0..num_total-1 taken uniformly by ``rule`` (see the module docstring).

    ``n`` is ``min(num_frames, num_total)`` for ``"lmms_eval"`` and ``num_frames`` for ``"llava_next_video"``."""
    if num_total < 1:
        raise ValueError(f"num_total must be at least 1; got {num_total}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1; got {num_frames}")
    if rule == "lmms_eval":
        count = min(num_frames, num_total)
        return np.floor(np.linspace(0, num_total - 1, count)).astype(np.int64)
    if rule == "llava_next_video":
        stride = num_total / num_frames
        return np.floor(np.arange(num_frames) * stride).astype(np.int64)
    raise ValueError(f"sampling must be one of {SAMPLING_RULES}; got {rule!r}")


def rate_indices(timestamps: np.ndarray, fps: float, start: float, end: float) -> np.ndarray:
    """(n,) int64 frame numbers, one every ``1 / fps`` seconds from ``start`` while before ``end``: at each time
    the frame on screen then (the last one whose timestamp is not after it). A frame is never taken twice, so a
    rate above the video's own gives each frame of the window once.

    timestamps: (T,) float seconds, non-decreasing."""
    if not fps > 0:
        raise ValueError(f"fps must be positive; got {fps}")
    count = max(1, int(np.ceil((end - start) * fps - _EPS)))
    times = start + np.arange(count) / fps
    positions = np.searchsorted(timestamps, times + _EPS, side="right") - 1
    return np.unique(np.clip(positions, 0, len(timestamps) - 1)).astype(np.int64)


def time_window(
    timestamps: np.ndarray, duration: float, start: Optional[float], end: Optional[float], *, source: str
) -> tuple[int, int, float, float]:
    """The frames shown in [start, end] seconds: ``(first, stop, start, end)`` with frames ``first..stop-1``.

    ``None`` means the video's start / end. Raises :class:`TimeRangeError` naming ``source`` when the window lies
    outside the video (``end`` may pass the last frame's time by at most one frame interval) or holds no frame."""
    begin = 0.0 if start is None else float(start)
    finish = duration if end is None else float(end)
    interval = duration / max(len(timestamps), 1)
    if not np.isfinite(begin) or not np.isfinite(finish):
        raise TimeRangeError(source, f"start and end must be finite seconds; got start={start}, end={end}")
    if begin < 0:
        raise TimeRangeError(source, f"start={begin:g} s is before the video's start (0 s)")
    if begin >= duration:
        raise TimeRangeError(source, f"start={begin:g} s is at or after the video's end ({duration:.3f} s)")
    if finish <= begin:
        raise TimeRangeError(source, f"end={finish:g} s must be after start={begin:g} s")
    if finish > duration + interval + _EPS:
        raise TimeRangeError(source, f"end={finish:g} s is after the video's end ({duration:.3f} s)")
    first = int(np.searchsorted(timestamps, begin - _EPS, side="left"))
    stop = int(np.searchsorted(timestamps, finish + _EPS, side="right"))
    if stop <= first:
        raise TimeRangeError(source, f"no frame lies in [{begin:g}, {finish:g}] s")
    return first, stop, begin, finish


Window = tuple[int, int, float, float]


def sample_window(
    timestamps: np.ndarray,
    window: Window,
    *,
    num_frames: Optional[int],
    fps: Optional[float],
    rule: SamplingRule,
    readable: Optional[np.ndarray] = None,
) -> np.ndarray:
    """The frame numbers to decode in ``window`` (``(first, stop, start, end)`` from :func:`time_window`):
    ``num_frames`` uniform by ``rule``, or one every ``1 / fps`` seconds.

    readable: (T,) bool, the frames that may be taken (default: all). The rule then runs over the readable frames
    of the window as if the others were not there: uniform over their count, or at each time the readable frame
    on screen then. Returns (n,) int64 in time order; empty when no frame of the window is readable."""
    first, stop, begin, finish = window
    candidates = np.arange(first, stop, dtype=np.int64)
    if readable is not None:
        candidates = candidates[readable[first:stop]]
    if len(candidates) == 0:
        return candidates
    if fps is not None:
        return candidates[rate_indices(timestamps[candidates], fps, begin, finish)]
    assert num_frames is not None
    return candidates[uniform_indices(len(candidates), num_frames, rule)]
