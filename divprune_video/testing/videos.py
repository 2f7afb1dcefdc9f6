"""Generated videos: moving shapes (demo, model tests) and index-coded frames, videos and frame folders (video
input tests, ``bench-video``). Each index-coded frame draws its own frame number as a 16-bit code of large black /
white blocks (robust to lossy compression), so a test can check that the frame at position t of a clip really is
the source's frame ``indices[t]``."""

from __future__ import annotations

import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np


def moving_shapes_video(num_frames: int = 32, height: int = 96, width: int = 128, *, seed: int = 0) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 RGB frames: coloured squares and discs moving across a dark gradient
    and bouncing off the edges (three shapes, each with its own colour, size and velocity)."""
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(f"need num_frames >= 1 and frames of at least 8 x 8; got {num_frames} x {height} x {width}")
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    background = np.stack([20 + 40 * cols / width, 20 + 30 * rows / height, np.full((height, width), 50.0)], -1)
    colours = np.array([[230, 40, 40], [40, 110, 240], [250, 220, 40]], dtype=np.float64)
    radius = rng.uniform(0.12, 0.2, size=3) * min(height, width)
    centre = rng.uniform([0.25 * height, 0.25 * width], [0.75 * height, 0.75 * width], size=(3, 2))
    velocity = rng.uniform(-0.06, 0.06, size=(3, 2)) * [height, width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        frame = background.copy()
        for shape in range(3):
            dy, dx = rows - centre[shape, 0], cols - centre[shape, 1]
            inside = (np.maximum(abs(dy), abs(dx)) if shape == 1 else np.hypot(dy, dx)) <= radius[shape]
            frame[inside] = colours[shape]
        frames[index] = frame.astype(np.uint8)
        centre += velocity
        for axis, limit in enumerate((height, width)):
            bounce = (centre[:, axis] < 0) | (centre[:, axis] > limit)
            velocity[bounce, axis] *= -1
            centre[:, axis] = np.clip(centre[:, axis], 0, limit)
    return frames


#: Colours of the marker row (top row of the code): red, green, blue, black. They reveal RGB/BGR swaps and
#: rotations.
INDEX_CODE_MARKERS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0))
_CODE_BITS = 16


def _code_block(height: int, width: int) -> tuple[int, int]:
    """Block size (rows, cols) of the 5 x 4 block code, which fills the top-left quarter of the frame."""
    if height < 20 or width < 16:
        raise ValueError(f"index-coded frames need at least 20 x 16 pixels; got {height} x {width}")
    return height // 10, width // 8


def index_coded_frame(index: int, height: int = 160, width: int = 128, *, texture: bool = False) -> np.ndarray:
    """(height, width, 3) uint8 RGB frame showing ``index`` (0..65535) as a block code in its top-left quarter:
    a marker row (red, green, blue, black) over 4 x 4 bit blocks (bit b at row 1 + b // 4, column b % 4; white
    is 1). The rest of the frame is a smooth gradient that moves with ``index``, or with ``texture=True`` a
    scrolling random texture that costs about as much to decode as camera footage. Read it back with
    :func:`read_frame_index`."""
    if not 0 <= index < 2**_CODE_BITS:
        raise ValueError(f"index must lie in 0..{2**_CODE_BITS - 1}; got {index}")
    block_h, block_w = _code_block(height, width)
    if texture:
        rng = np.random.default_rng(height * 7919 + width)
        tile = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        base = np.repeat(np.repeat(tile, 8, axis=0), 8, axis=1)[:height, :width]
        frame = np.roll(base, 4 * index, axis=1)
        grain = rng.integers(0, 3, size=(7, height, width, 3), dtype=np.uint8)[index % 7]
        frame = frame + grain
    else:
        rows, cols = np.mgrid[0:height, 0:width]
        shift = (3 * index) % width
        frame = np.stack(
            [(cols + shift) % width * 200 // width + 20, rows * 180 // height + 30, np.full((height, width), 90)],
            axis=-1,
        ).astype(np.uint8)
    for column, colour in enumerate(INDEX_CODE_MARKERS):
        frame[0:block_h, column * block_w : (column + 1) * block_w] = colour
    for bit in range(_CODE_BITS):
        row, column = 1 + bit // 4, bit % 4
        value = 255 if (index >> bit) & 1 else 0
        frame[row * block_h : (row + 1) * block_h, column * block_w : (column + 1) * block_w] = value
    return frame


def index_coded_frames(num_frames: int, height: int = 160, width: int = 128, *, first: int = 0) -> np.ndarray:
    """(num_frames, height, width, 3) uint8: :func:`index_coded_frame` of ``first .. first + num_frames - 1``."""
    return np.stack([index_coded_frame(first + i, height, width) for i in range(num_frames)])


def read_frame_index(frame: np.ndarray) -> int:
    """The number drawn by :func:`index_coded_frame` into ``frame`` ((H, W, 3) uint8 RGB, possibly after lossy
    compression): each bit block's centre half is averaged and compared with mid-grey."""
    block_h, block_w = _code_block(frame.shape[0], frame.shape[1])
    value = 0
    for bit in range(_CODE_BITS):
        row, column = 1 + bit // 4, bit % 4
        centre = frame[
            row * block_h + block_h // 4 : (row + 1) * block_h - block_h // 4,
            column * block_w + block_w // 4 : (column + 1) * block_w - block_w // 4,
        ]
        if centre.mean() > 127:
            value |= 1 << bit
    return value


def marker_colours(frame: np.ndarray) -> np.ndarray:
    """(4, 3) mean RGB of the four marker blocks of an index-coded frame (expected: :data:`INDEX_CODE_MARKERS`)."""
    block_h, block_w = _code_block(frame.shape[0], frame.shape[1])
    return np.array(
        [
            frame[block_h // 4 : block_h - block_h // 4, c * block_w + block_w // 4 : (c + 1) * block_w - block_w // 4]
            .reshape(-1, 3)
            .mean(0)
            for c in range(4)
        ]
    )


def write_index_coded_video(
    path: Union[str, os.PathLike],
    num_frames: int,
    *,
    fps: float = 30.0,
    height: int = 160,
    width: int = 128,
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 2,
    pix_fmt: str = "yuv420p",
    crf: int = 18,
    preset: str = "veryfast",
    timestamps: Optional[Sequence[float]] = None,
    texture: bool = False,
    rotation: int = 0,
    faststart: bool = False,
) -> Path:
    """Encode ``num_frames`` :func:`index_coded_frame` frames to ``path`` with PyAV and return the path.

    The container follows the extension (.mp4, .mkv, .ts, .avi ...). With libx264 (the default) the stream has a
    keyframe every ``gop`` frames and always ``bframes`` B-frames between references (no adaptive placement, no
    scene cuts), so seeking and frame reordering are exercised on every run. ``timestamps``: (num_frames,)
    increasing seconds for a variable-frame-rate file (millisecond precision). ``pix_fmt`` may be a 10-bit
    format such as ``"yuv420p10le"``. ``rotation`` (0, 90, 180, 270 degrees clockwise, MP4 only) is written as
    the track's display matrix, as phones do. ``faststart``: put an MP4's index before the frames (as web servers
    want it), so that a cut file still opens."""
    import av

    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1; got {num_frames}")
    if timestamps is not None and (len(timestamps) != num_frames or np.any(np.diff(timestamps) <= 0)):
        raise ValueError("timestamps must be num_frames increasing seconds")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(target), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {
                "crf": str(crf),
                "preset": preset,
                "x264-params": f"keyint={gop}:min-keyint={gop}:bframes={bframes}:b-adapt=0:scenecut=0",
            }
        else:
            stream.codec_context.gop_size = gop
            stream.codec_context.max_b_frames = bframes
        if timestamps is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_coded_frame(index, height, width, texture=texture), format="rgb24")
            if timestamps is not None:
                frame.pts, frame.time_base = int(round(timestamps[index] * 1000)), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    if rotation:
        _set_mp4_rotation(target, rotation)
    return target


def _set_mp4_rotation(path: Path, degrees: int) -> None:
    """Rewrite the display matrix of an MP4's (first) video track: rotate by ``degrees`` clockwise on display."""
    matrices = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}
    if degrees not in matrices:
        raise ValueError(f"rotation must be 0, 90, 180 or 270; got {degrees}")
    data = bytearray(path.read_bytes())
    where = data.find(b"tkhd")
    if where < 0 or data[where + 4] != 0:
        raise ValueError(f"{path}: rotation needs an MP4 file with a version-0 track header")
    a, b, c, d = (value * 0x10000 for value in matrices[degrees])
    offset = where + 4 + 40  # type, then version/flags, times, ids, duration, layer ... up to the matrix
    data[offset : offset + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def write_index_coded_folder(
    folder: Union[str, os.PathLike],
    num_frames: int,
    *,
    height: int = 160,
    width: int = 128,
    extension: str = "png",
    pattern: str = "{index}",
) -> Path:
    """Write ``num_frames`` :func:`index_coded_frame` images into ``folder`` (created) as ``pattern.extension``
    with 1-based unpadded numbers by default ("1.png", "2.png" ... "10.png": a folder that only natural sorting
    orders correctly, as some MVBench tasks ship them). Returns the folder."""
    from PIL import Image

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        name = pattern.format(index=index + 1) + "." + extension
        Image.fromarray(index_coded_frame(index, height, width)).save(target / name, quality=95)
    return target
