"""Decoding backends behind one interface (:class:`VideoReader`), chosen by name or automatically.

=============  =====================================  ===========================================================
name           library (extra)                        reads
=============  =====================================  ===========================================================
``pyav``       av (``video``), the default            paths, URLs, bytes, file objects, webcams (v4l2)
``torchcodec`` torchcodec (pip) + system FFmpeg       paths, URLs, bytes, file objects
``decord``     decord2 or decord (``video-all``)      paths, bytes, file objects
``opencv``     opencv-python-headless (``video-all``) paths, URLs, webcams; exact for constant frame rate only
=============  =====================================  ===========================================================

``backend="auto"`` takes the first available of :data:`AUTO_ORDER` that reads the source and numbers frames
exactly in every case the tests cover (see BENCHMARKS.md for the speed comparison behind the order). In-memory
frames and frame folders need no decoder and ignore ``backend``.

Whatever the backend, data that is no real video (a text file, which FFmpeg's tty demuxer draws as frames; cover
art of an audio file; a single still image) raises :class:`~..errors.NotAVideoError`: PyAV checks the stream it
opens, and probes the source before another backend opens it (when PyAV is installed).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

from ..errors import BackendUnavailableError, UnsupportedSourceError
from ..sources import VideoSource
from ._loading import VIDEO_BACKENDS, BackendSpec, load_backend, register_backend
from .base import DecodedFrames, VideoInfo, VideoReader, default_threads

#: Preference of ``backend="auto"``: backends that number frames exactly on every file we tried (VFR, B-frames,
#: long files), the fastest first (``bench-video``: PyAV beats decord and OpenCV at sparse sampling; decord was
#: not always exact, OpenCV is exact for constant frame rate only).
AUTO_ORDER: tuple[str, ...] = ("pyav", "torchcodec")


@lru_cache(maxsize=None)
def backend_problem(name: str) -> Optional[str]:
    """None when backend ``name`` loads here; otherwise why not (with how to install it)."""
    if name not in VIDEO_BACKENDS:
        raise ValueError(f"backend must be one of {tuple(VIDEO_BACKENDS.names())} or 'auto'; got {name!r}")
    try:
        load_backend(name)
    except BackendUnavailableError as error:
        return error.problem
    return None


def available_backends() -> list[str]:
    """The registered backends whose libraries load here, by name."""
    return [name for name in VIDEO_BACKENDS.names() if backend_problem(name) is None]


def choose_backend(source: VideoSource, backend: str = "auto") -> str:
    """The backend that will read ``source``: ``backend`` itself (checked), or the ``"auto"`` choice."""
    if backend != "auto":
        if backend not in VIDEO_BACKENDS:
            raise ValueError(f"backend must be one of {tuple(VIDEO_BACKENDS.names())} or 'auto'; got {backend!r}")
        if source.kind not in VIDEO_BACKENDS.get(backend).kinds:
            readers = [name for name, spec in VIDEO_BACKENDS.items() if source.kind in spec.kinds]
            raise UnsupportedSourceError(
                source.name,
                f"the {backend} backend cannot read a {source.kind} source; backends that can: {', '.join(readers)}",
            )
        problem = backend_problem(backend)
        if problem is not None:
            raise BackendUnavailableError(f"backend {backend!r}", problem)
        return backend
    order = ("opencv", "pyav") if source.kind == "webcam" else AUTO_ORDER
    for name in order:
        if source.kind in VIDEO_BACKENDS.get(name).kinds and backend_problem(name) is None:
            return name
    pyav = VIDEO_BACKENDS.get("pyav")
    package, extra = pyav.package, pyav.extra
    raise BackendUnavailableError(
        source.name, f"no video backend is installed: pip install 'divprune-video[{extra}]' (or pip install {package})"
    )


def open_reader(
    source: VideoSource, backend: str = "auto", *, threads: Optional[int] = None, timeout: Optional[float] = None
) -> VideoReader:
    """A :class:`VideoReader` over ``source`` (close it, or use it in a ``with`` block)."""
    from .frames import ArrayReader, FolderReader

    if source.kind == "frames":
        return ArrayReader(source)
    if source.kind == "folder":
        return FolderReader(source, threads=threads)
    if source.is_live:
        raise UnsupportedSourceError(source.name, "a live source has no random access; use stream_frames()")
    name = choose_backend(source, backend)
    spec = VIDEO_BACKENDS.get(name)
    if name != "pyav" and spec.probe and backend_problem("pyav") is None:
        from .pyav import DEFAULT_TIMEOUT, probe_video

        probe_video(source, timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
    reader_class = spec.reader_class()
    options = {"threads": threads}
    if timeout is not None:
        options["timeout"] = timeout
    return reader_class(source, **options)


__all__ = [
    "AUTO_ORDER",
    "VIDEO_BACKENDS",
    "BackendSpec",
    "DecodedFrames",
    "VideoInfo",
    "VideoReader",
    "available_backends",
    "backend_problem",
    "choose_backend",
    "default_threads",
    "open_reader",
    "register_backend",
]
