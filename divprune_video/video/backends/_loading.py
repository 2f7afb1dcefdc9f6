"""Importing an optional backend library, with a message that says how to install it."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Optional

from ..errors import BackendUnavailableError

#: backend name -> (module to import, pip package, extra that installs it). torchcodec is in no extra: its wheels
#: must match the installed torch build and need FFmpeg's shared libraries from the system.
BACKEND_PACKAGES: dict[str, tuple[str, str, Optional[str]]] = {
    "pyav": ("av", "av", "video"),
    "decord": ("decord", "decord2", "video-all"),
    "opencv": ("cv2", "opencv-python-headless", "video-all"),
    "torchcodec": ("torchcodec.decoders", "torchcodec", None),
}
_FFMPEG_HINT = "it needs FFmpeg's shared libraries, e.g. apt-get install ffmpeg, and a wheel built for your torch"


def load_backend(name: str) -> ModuleType:
    """Import backend ``name``'s library or raise :class:`BackendUnavailableError` naming the extra. Loading
    errors of installed libraries (torchcodec without FFmpeg's shared libraries, a wheel built for another torch)
    are reported the same way, with the underlying error."""
    module, package, extra = BACKEND_PACKAGES[name]
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
            reason += (". This torchcodec wheel is built against a CUDA build of torch (it links libtorch_cuda and "
                       "libnvrtc), which a CPU-only torch lacks: install a torchcodec built for your torch, or use "
                       "backend='pyav'")
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
