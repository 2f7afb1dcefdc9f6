"""Importing an optional backend library, with a message that says how to install it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Optional, Union

from ...registry import Registry
from ..errors import BackendUnavailableError


@dataclass(frozen=True)
class BackendSpec:
    """A decoding backend: its reader, what it reads, and the library it needs.

    Attributes:
        name: the ``backend=`` name.
        reader: the :class:`~.base.VideoReader` subclass, or ``"module:Class"`` imported when first used.
        kinds: the source kinds it reads (``"path"``, ``"url"``, ``"bytes"``, ``"fileobj"``, ``"webcam"``).
        module: the library imported to check that the backend is available (None: nothing to import).
        package: the pip package that installs ``module``.
        extra: the divprune-video extra that installs it (None: in none, e.g. torchcodec, whose wheels must match
            the installed torch build and need FFmpeg's shared libraries from the system).
        probe: check with PyAV that the source is a real video before this backend opens it (media containers;
            a backend of another format turns it off).
    """

    name: str
    reader: Union[str, type]
    kinds: frozenset[str]
    module: Optional[str] = None
    package: str = ""
    extra: Optional[str] = None
    probe: bool = True

    def reader_class(self) -> Any:
        if not isinstance(self.reader, str):
            return self.reader
        module_name, class_name = self.reader.split(":")
        return getattr(importlib.import_module(module_name), class_name)


#: The decoding backends by name.
VIDEO_BACKENDS: Registry[BackendSpec] = Registry("video backend")


def register_backend(spec: BackendSpec) -> BackendSpec:
    """Make ``spec`` available as ``backend=spec.name`` (``load_video``, ``open_reader``)."""
    return VIDEO_BACKENDS.register(spec.name, spec)


for _spec in (
    BackendSpec(
        "pyav",
        "divprune_video.video.backends.pyav:PyAVReader",
        frozenset({"path", "url", "bytes", "fileobj", "webcam"}),
        "av",
        "av",
        "video",
    ),
    BackendSpec(
        "torchcodec",
        "divprune_video.video.backends.torchcodec_backend:TorchCodecReader",
        frozenset({"path", "url", "bytes", "fileobj"}),
        "torchcodec.decoders",
        "torchcodec",
        None,
    ),
    BackendSpec(
        "decord",
        "divprune_video.video.backends.decord_backend:DecordReader",
        frozenset({"path", "bytes", "fileobj"}),
        "decord",
        "decord2",
        "video-all",
    ),
    BackendSpec(
        "opencv",
        "divprune_video.video.backends.opencv_backend:OpenCVReader",
        frozenset({"path", "url", "webcam"}),
        "cv2",
        "opencv-python-headless",
        "video-all",
    ),
):
    register_backend(_spec)

_FFMPEG_HINT = "it needs FFmpeg's shared libraries, e.g. apt-get install ffmpeg, and a wheel built for your torch"


def load_backend(name: str) -> ModuleType:
    """Import backend ``name``'s library or raise :class:`BackendUnavailableError` naming the extra. Loading
    errors of installed libraries (torchcodec without FFmpeg's shared libraries, a wheel built for another torch)
    are reported the same way, with the underlying error."""
    spec = VIDEO_BACKENDS.get(name)
    module, package, extra = spec.module, spec.package, spec.extra
    if module is None:
        return None  # type: ignore[return-value]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if extra is None:
            reason = f"not installed: pip install {package} ({_FFMPEG_HINT})"
        else:
            reason = f"not installed: pip install 'divprune-video[{extra}]' (or pip install {package})"
        raise BackendUnavailableError(f"backend {name!r}", reason) from error
    except (OSError, RuntimeError) as error:  # installed, but its native libraries do not load
        hint = f" ({_FFMPEG_HINT})" if name == "torchcodec" else ""
        reason = f"installed but cannot load{hint}: {_root_cause(error)}"
        if name == "torchcodec" and ("cuda" in reason.lower() or "nvrtc" in reason.lower()):
            reason += (
                ". This torchcodec wheel is built against a CUDA build of torch (it links libtorch_cuda and "
                "libnvrtc), which a CPU-only torch lacks: install a torchcodec built for your torch, or use "
                "backend='pyav'"
            )
        raise BackendUnavailableError(f"backend {name!r}", reason) from error


def _root_cause(error: BaseException) -> str:
    """``Type: message`` of ``error`` and of the errors it was raised from (torchcodec wraps the loader's error,
    which names the missing library, in a generic one)."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return " <- ".join(parts)
