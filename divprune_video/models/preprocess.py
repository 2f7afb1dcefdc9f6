"""Frames -> pixel values, as the checkpoint's video processor prepares them.

The checkpoint's own transformers video processor is used when it can be built (it needs torchvision).
Without torchvision, :class:`TorchFramePreprocessor` applies the same steps from the same settings
(``video_preprocessor_config.json``): resize (the shortest edge, as CLIP-style processors do, or to an exact height
and width, as SigLIP-style ones do; bicubic, antialiased), center crop, rescale, normalize. The two agree up to the
rounding of the resize.

Both run where the model runs when given ``device``: the uint8 frames are copied to the device (a quarter of the
bytes of float32 pixel values) and resized and normalized there, so a GPU does the per-pixel work and the copy is
small (measurements: notes/design-history.md#divprune_videomodelspreprocess).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Union

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: PIL resampling codes (as stored in processor configs) -> torch interpolation modes.
_RESAMPLE_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}
Device = Union[str, torch.device, None]


class FramePreprocessor(Protocol):
    """(T, H, W, 3) uint8 frames -> what the family's vision path takes, computed on ``device`` (default: CPU):
    (T, 3, S, S) float32 pixel values for the LLaVA families, :class:`~.patches.VideoPatches` for Qwen's."""

    def __call__(self, frames: np.ndarray, device: Device = None) -> Any: ...


def check_frames(frames: Any) -> np.ndarray:
    """Return ``frames`` as a (T, H, W, 3) uint8 numpy array, or raise naming what was wrong."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    if not isinstance(frames, np.ndarray):
        raise TypeError(f"frames must be a (T, H, W, 3) uint8 numpy array; got {type(frames).__name__}")
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T >= 1; got {frames.shape}")
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must have dtype uint8 (RGB 0..255); got {frames.dtype}")
    return frames


@dataclass(frozen=True)
class TorchFramePreprocessor:
    """A video processor's frame preprocessing in plain PyTorch (the steps of transformers' ``BaseVideoProcessor``
    for CLIP- and SigLIP-style settings).

    Attributes:
        shortest_edge: resize so that the shortest edge has this length, keeping the aspect ratio (CLIP: 336);
            None when ``resize_to`` is given.
        crop_size: (height, width) of the center crop, or None for no crop.
        mean, std: per-channel normalization in 0..1 units.
        resize_to: (height, width) to resize to exactly, whatever the aspect ratio (SigLIP: 384 x 384).
        rescale_factor: 1/255 for uint8 input.
        resample: ``"bicubic"``, ``"bilinear"`` or ``"nearest"``.
    """

    shortest_edge: Optional[int]
    crop_size: Optional[tuple[int, int]]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize_to: Optional[tuple[int, int]] = None
    rescale_factor: float = 1 / 255
    resample: str = "bicubic"
    do_resize: bool = True
    do_normalize: bool = True

    def __post_init__(self) -> None:
        if self.do_resize and (self.shortest_edge is None) == (self.resize_to is None):
            raise ValueError("resizing needs exactly one of shortest_edge and resize_to")

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> "TorchFramePreprocessor":
        """From a video processor config (the keys of ``video_preprocessor_config.json``)."""
        size = settings.get("size") or {}
        shortest: Optional[int] = None
        resize_to: Optional[tuple[int, int]] = None
        if "shortest_edge" in size:
            shortest = int(size["shortest_edge"])
        elif "height" in size and "width" in size:
            resize_to = (int(size["height"]), int(size["width"]))
        else:
            raise ValueError(
                f"unsupported video processor size {size!r}: expected 'shortest_edge' or 'height' and 'width'"
            )
        crop = settings.get("crop_size") or {}
        crop_size = None
        if settings.get("do_center_crop") and crop:
            crop_size = (int(crop["height"]), int(crop["width"]))
        resample = settings.get("resample", 3)
        if resample not in _RESAMPLE_MODES:
            raise ValueError(f"unsupported resample {resample!r}; supported: {sorted(_RESAMPLE_MODES)}")
        return cls(
            shortest_edge=shortest,
            crop_size=crop_size,
            mean=tuple(settings.get("image_mean", (0.0, 0.0, 0.0))),
            std=tuple(settings.get("image_std", (1.0, 1.0, 1.0))),
            resize_to=resize_to,
            rescale_factor=float(settings.get("rescale_factor", 1 / 255)),
            resample=_RESAMPLE_MODES[resample],
            do_resize=bool(settings.get("do_resize", True)),
            do_normalize=bool(settings.get("do_normalize", True)),
        )

    def __call__(self, frames: np.ndarray, device: Device = None) -> torch.Tensor:
        """frames: (T, H, W, 3) uint8 -> (T, 3, H', W') float32 pixel values on ``device`` (default CPU),
        computed there."""
        video = torch.from_numpy(np.ascontiguousarray(check_frames(frames)))
        video = video.to(device or "cpu", non_blocking=True).permute(0, 3, 1, 2)
        if self.do_resize:
            video = self._resize(video)
        if self.crop_size is not None:
            video = _center_crop(video, self.crop_size)
        if not self.do_normalize:
            return video.float() * self.rescale_factor
        # Rescaling folded into the normalization, as transformers' processors fuse them.
        mean = torch.tensor(self.mean, device=video.device) * (1.0 / self.rescale_factor)
        std = torch.tensor(self.std, device=video.device) * (1.0 / self.rescale_factor)
        return (video.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the resized frames (before the crop) for frames of ``height`` x ``width``."""
        if self.resize_to is not None:
            return self.resize_to
        short, long = (height, width) if height <= width else (width, height)
        new_long = int(self.shortest_edge * long / short)
        return (self.shortest_edge, new_long) if height <= width else (new_long, self.shortest_edge)

    def _resize(self, video: torch.Tensor) -> torch.Tensor:
        return resize_frames(video, self.output_size(*video.shape[-2:]), self.resample)


def resize_frames(video: torch.Tensor, size: tuple[int, int], resample: str = "bicubic") -> torch.Tensor:
    """video: (T, C, H, W) uint8 -> (T, C, *size) uint8, resized as torchvision resizes uint8 tensors (antialiased
    for bilinear and bicubic), on the video's device."""
    if tuple(size) == tuple(video.shape[-2:]):
        return video
    antialias = resample in ("bilinear", "bicubic")
    options = {} if resample == "nearest" else {"align_corners": False}
    if video.device.type == "cpu":
        # PyTorch's own uint8 kernel on the CPU (separable passes, rounded between them), as torchvision's
        # resize, and so the transformers processor, uses for uint8 frames there.
        return F.interpolate(video, size=size, mode=resample, antialias=antialias, **options)
    # Elsewhere interpolation needs float input; torchvision does the same and rounds back to uint8.
    resized = F.interpolate(video.float(), size=size, mode=resample, antialias=antialias, **options)
    return resized.round().clamp(0, 255).to(torch.uint8)


def _center_crop(video: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    crop_height, crop_width = size
    height, width = video.shape[-2:]
    if crop_height > height or crop_width > width:
        pad = [
            (crop_width - width) // 2,
            (crop_width - width + 1) // 2,
            (crop_height - height) // 2,
            (crop_height - height + 1) // 2,
        ]
        video = F.pad(video, [max(0, value) for value in pad])
        height, width = video.shape[-2:]
    top, left = int((height - crop_height) / 2.0), int((width - crop_width) / 2.0)
    return video[..., top : top + crop_height, left : left + crop_width]


def load_frame_preprocessor(model: str, **hub_kwargs: Any) -> FramePreprocessor:
    """The frame preprocessing of checkpoint ``model`` (hub id or folder).

    The checkpoint's own transformers video processor when it can be built, else :class:`TorchFramePreprocessor`
    with its settings.
    """
    return load_checkpoint_preprocessor(
        model, TorchFramePreprocessor.from_dict, _TransformersFramePreprocessor, **hub_kwargs
    )


def load_checkpoint_preprocessor(
    model: str, from_settings: Callable[[dict[str, Any]], Any], wrap: Callable[[Any], Any], **hub_kwargs: Any
) -> Any:
    """``wrap(processor)`` of checkpoint ``model``'s transformers video processor when it can be built (it needs
    torchvision), else ``from_settings(its video processor settings)`` (the same steps in PyTorch)."""
    from transformers import AutoVideoProcessor
    from transformers.video_processing_utils import BaseVideoProcessor

    try:
        processor = AutoVideoProcessor.from_pretrained(model, **hub_kwargs)
    except ImportError as error:
        logger.info(
            "transformers' video processor is unavailable (%s); preprocessing frames in PyTorch",
            str(error).strip().splitlines()[0],
        )
        settings, _ = BaseVideoProcessor.get_video_processor_dict(model, **hub_kwargs)
        return from_settings(settings)
    return wrap(processor)


class _TransformersFramePreprocessor:
    """Adapts a transformers video processor to :data:`FramePreprocessor`."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, frames: np.ndarray, device: Device = None) -> torch.Tensor:
        options: dict[str, Any] = {} if device is None else {"device": str(device)}
        output = self.processor(videos=[check_frames(frames)], return_tensors="pt", **options)
        return output["pixel_values_videos"][0]
