"""What a video source is: a file, URL, bytes, file object, frame folder, in-memory frames or a webcam.

:func:`resolve_source` turns whatever the user passed into a :class:`VideoSource` (checking what can be checked
without decoding: existence, emptiness, URL scheme, array shape), so that backends see one small, typed object
and every error can name the source.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from .errors import EmptyVideoError, NotAVideoError, UnsupportedSourceError, VideoNotFoundError

SourceKind = Literal["path", "url", "bytes", "fileobj", "folder", "frames", "webcam"]

#: URL schemes that the backends read (through FFmpeg).
URL_SCHEMES = ("http", "https", "rtsp", "rtsps")
#: URL schemes that are live by nature (no end, no seeking).
LIVE_SCHEMES = ("rtsp", "rtsps")
#: File name extensions recognised as frame images in a folder.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
#: Frame rate assumed for in-memory frames and frame folders, which carry no timing of their own.
DEFAULT_FRAMES_FPS = 1.0

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
_WEBCAM_DEVICE = re.compile(r"^/dev/video(\d+)$")

Source = Union[str, os.PathLike, bytes, bytearray, memoryview, io.IOBase, np.ndarray, Sequence[Any], int, "VideoSource"]


@dataclass(frozen=True)
class VideoSource:
    """A resolved source. ``value`` by ``kind``: path/folder: :class:`~pathlib.Path`; url: ``str``; bytes:
    ``bytes``; fileobj: a binary file object; frames: (T, H, W, 3) uint8 array; webcam: ``int`` index or a
    ``/dev/videoN`` path. ``name`` is printable (URL credentials removed); ``fps`` overrides the frame rate of
    frames and frame folders (which have none of their own)."""

    kind: SourceKind
    value: Any = field(repr=False)
    name: str
    fps: Optional[float] = None
    images: tuple[Path, ...] = field(default=(), repr=False)

    @property
    def is_network(self) -> bool:
        return self.kind == "url"

    @property
    def is_live(self) -> bool:
        """Webcams and rtsp streams: no end, no random access. (An http stream may be live too; the stream reader
        decides that once it has opened it.)"""
        return self.kind == "webcam" or (self.kind == "url" and urlsplit(self.value).scheme.lower() in LIVE_SCHEMES)

    def __str__(self) -> str:
        return self.name


def redact_url(url: str) -> str:
    """``url`` without the user name and password (rtsp URLs often carry them)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def natural_key(path: Path) -> list:
    """Sort key that orders ``frame_2.jpg`` before ``frame_10.jpg``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frame_images(folder: Path) -> list[Path]:
    """The image files directly inside ``folder``, in natural order."""
    images = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(images, key=natural_key)


def as_frame_array(frames: Any, *, name: str = "frames") -> np.ndarray:
    """(T, H, W, 3) uint8 C-contiguous array from an array, a tensor, or a list of PIL images or (H, W, 3) arrays.

    Raises ``TypeError`` / ``ValueError`` naming ``name`` and the expected layout for anything else."""
    if isinstance(frames, (list, tuple)):
        if len(frames) == 0:
            raise ValueError(f"{name}: an empty list of frames")
        arrays = [_image_array(item, name=f"{name}[{i}]") for i, item in enumerate(frames)]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise ValueError(f"{name}: all frames must have one size; got {sorted(shapes)}")
        return np.ascontiguousarray(np.stack(arrays))
    array = _to_numpy(frames, name=name)
    if array.ndim != 4 or array.shape[-1] != 3:
        hint = " (channels first? use tensor.permute(0, 2, 3, 1))" if array.ndim == 4 and array.shape[1] == 3 else ""
        raise ValueError(f"{name}: expected a (T, H, W, 3) RGB array; got shape {tuple(array.shape)}{hint}")
    if array.dtype != np.uint8:
        raise TypeError(f"{name}: expected uint8 frames (0..255); got {array.dtype}")
    if array.shape[0] == 0 or array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"{name}: empty frames array of shape {tuple(array.shape)}")
    return np.ascontiguousarray(array)


def _to_numpy(value: Any, *, name: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor, without importing torch here
        return value.detach().cpu().numpy()
    raise TypeError(f"{name}: expected a numpy array, a torch tensor or a list of images; got {type(value).__name__}")


def _image_array(item: Any, *, name: str) -> np.ndarray:
    if hasattr(item, "convert") and hasattr(item, "size"):  # a PIL image
        return np.asarray(item.convert("RGB"))
    array = _to_numpy(item, name=name)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8:
        raise ValueError(f"{name}: expected an (H, W, 3) uint8 image; got shape {array.shape}, dtype {array.dtype}")
    return array


def resolve_source(source: Source, *, fps: Optional[float] = None) -> VideoSource:
    """Classify and check ``source``. ``fps``: the frame rate of in-memory frames or a frame folder.

    Raises :class:`VideoNotFoundError`, :class:`EmptyVideoError`, :class:`NotAVideoError` or
    :class:`UnsupportedSourceError` naming the source, ``TypeError`` for a type that is no source at all."""
    if isinstance(source, VideoSource):
        return source
    if isinstance(source, bool):
        raise TypeError("source: expected a path, URL, bytes, file object, frames or a webcam index; got a bool")
    if isinstance(source, int):
        if source < 0:
            raise UnsupportedSourceError(f"webcam {source}", "a webcam index must be 0 or more")
        return VideoSource("webcam", source, f"webcam {source}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = f"<{len(data):,} bytes>"
        if not data:
            raise EmptyVideoError(name, "no data (0 bytes)")
        return VideoSource("bytes", data, name)
    if isinstance(source, str):
        match = _SCHEME.match(source)
        if match:
            return _resolve_url(source, match.group(1).lower())
        if _WEBCAM_DEVICE.match(source):
            if not os.path.exists(source):
                raise VideoNotFoundError(source, "no such video device (is the camera connected?)")
            return VideoSource("webcam", source, source)
        return _resolve_path(Path(source), fps)
    if isinstance(source, os.PathLike):
        return _resolve_path(Path(source), fps)
    if hasattr(source, "read"):
        name = f"<file object {getattr(source, 'name', type(source).__name__)}>"
        return VideoSource("fileobj", source, name)
    if isinstance(source, (np.ndarray, list, tuple)) or hasattr(source, "detach"):
        frames = as_frame_array(source, name="source")
        return VideoSource("frames", frames, f"<frames {tuple(frames.shape)}>", fps=fps)
    raise TypeError(
        "source: expected a path, an http(s)/rtsp URL, bytes, a binary file object, a folder of frame images, "
        f"a (T, H, W, 3) uint8 array or tensor, a list of PIL images, or a webcam index; got {type(source).__name__}"
    )


def _resolve_url(url: str, scheme: str) -> VideoSource:
    name = redact_url(url)
    if scheme == "file":
        return _resolve_path(Path(urlsplit(url).path), None)
    if scheme not in URL_SCHEMES:
        supported = ", ".join(f"{s}://" for s in URL_SCHEMES)
        raise UnsupportedSourceError(name, f"unsupported URL scheme {scheme}://; supported: {supported}, file://")
    return VideoSource("url", url, name)


def _resolve_path(path: Path, fps: Optional[float]) -> VideoSource:
    name = str(path)
    if not path.exists():
        raise VideoNotFoundError(name, "no such file or folder")
    if path.is_dir():
        images = list_frame_images(path)
        if not images:
            raise EmptyVideoError(name, f"folder has no frame images ({', '.join(IMAGE_EXTENSIONS)})")
        return VideoSource("folder", path, name, fps=fps, images=tuple(images))
    if path.stat().st_size == 0:
        raise EmptyVideoError(name, "empty file (0 bytes)")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise NotAVideoError(name, "this is a single image; pass its folder to read a folder of frames")
    return VideoSource("path", path, name)
