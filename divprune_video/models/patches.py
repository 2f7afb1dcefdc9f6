"""Frames -> flattened spatio-temporal patches, as Qwen2-VL-style vision towers take them (Qwen2.5-VL, Qwen3-VL).

These models see a video at its own resolution: each frame is resized so that both sides are multiples of
``patch_size * merge_size`` and the pixel count lies within the processor's limits (``smart_resize``), the frame
count is padded to a multiple of ``temporal_patch_size`` by repeating the last frame, and the pixels are cut into
(temporal_patch_size x patch_size x patch_size) patches listed so that each ``merge_size x merge_size`` block of
patches is contiguous (the vision tower merges those blocks into one LLM token). The LLM tokens then come in
frame-group-major, row-major order over the merged grid.

:class:`PatchFramePreprocessor` does this in PyTorch from the checkpoint's video processor settings (on the GPU when
given a device); with torchvision installed, :func:`load_patch_preprocessor` uses the checkpoint's own transformers
video processor instead. Both give :class:`VideoPatches`.
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .preprocess import Device, check_frames, load_checkpoint_preprocessor, resize_frames

logger = logging.getLogger(__name__)

_RESAMPLE_MODES = {0: "nearest", 2: "bilinear", 3: "bicubic"}
#: Frames whose sides differ by more than this factor are refused (as the processors refuse them).
MAX_ASPECT_RATIO = 200


@dataclass
class VideoPatches:
    """One video as flattened patches.

    Attributes:
        pixel_values: (t * h * w, channels * temporal_patch_size * patch_size * patch_size) float32.
        grid_thw: (3,) int64: frame groups t and patch rows h and columns w (before merging).
    """

    pixel_values: torch.Tensor
    grid_thw: torch.Tensor

    def merged_grid(self, merge_size: int) -> tuple[int, int]:
        """(rows, cols) of LLM tokens per frame group."""
        return int(self.grid_thw[1]) // merge_size, int(self.grid_thw[2]) // merge_size


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """The (height, width) a Qwen2-VL-style processor resizes a frame to: both multiples of ``factor``, the aspect
    ratio kept as well as possible, the pixel count within [min_pixels, max_pixels]."""
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"frames of {height} x {width} have an aspect ratio over {MAX_ASPECT_RATIO}")
    new_height, new_width = round(height / factor) * factor, round(width / factor) * factor
    if new_height * new_width > max_pixels:
        scale = math.sqrt(height * width / max_pixels)
        new_height = max(factor, math.floor(height / scale / factor) * factor)
        new_width = max(factor, math.floor(width / scale / factor) * factor)
    elif new_height * new_width < min_pixels:
        scale = math.sqrt(min_pixels / (height * width))
        new_height, new_width = math.ceil(height * scale / factor) * factor, math.ceil(width * scale / factor) * factor
    return new_height, new_width


def smart_resize_video(
    num_frames: int, height: int, width: int, factor: int, temporal_factor: int, min_pixels: int, max_pixels: int
) -> tuple[int, int]:
    """The (height, width) a Qwen3-VL-style processor resizes a video's frames to: as :func:`smart_resize`, but the
    pixel limits bound all frames together (frame count rounded to ``temporal_factor`` x height x width), and
    frames smaller than ``factor`` are first scaled up to it."""
    if num_frames < temporal_factor:
        raise ValueError(f"a video needs at least {temporal_factor} frames here; got {num_frames}")
    if height < factor or width < factor:
        scale = max(factor / height, factor / width)
        height, width = int(height * scale), int(width * scale)
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"frames of {height} x {width} have an aspect ratio over {MAX_ASPECT_RATIO}")
    new_height, new_width = round(height / factor) * factor, round(width / factor) * factor
    frames = round(num_frames / temporal_factor) * temporal_factor
    if frames * new_height * new_width > max_pixels:
        scale = math.sqrt(num_frames * height * width / max_pixels)
        new_height = max(factor, math.floor(height / scale / factor) * factor)
        new_width = max(factor, math.floor(width / scale / factor) * factor)
    elif frames * new_height * new_width < min_pixels:
        scale = math.sqrt(min_pixels / (num_frames * height * width))
        new_height, new_width = math.ceil(height * scale / factor) * factor, math.ceil(width * scale / factor) * factor
    return new_height, new_width


def patchify(video: torch.Tensor, patch_size: int, temporal_patch_size: int, merge_size: int) -> VideoPatches:
    """video: (T, C, H, W) pixel values, H and W multiples of ``patch_size * merge_size`` -> :class:`VideoPatches`
    (T padded to a multiple of ``temporal_patch_size`` by repeating the last frame)."""
    if pad := -video.shape[0] % temporal_patch_size:
        video = torch.cat([video, video[-1:].expand(pad, -1, -1, -1)])
    frames, channels, height, width = video.shape
    grid_t, grid_h, grid_w = frames // temporal_patch_size, height // patch_size, width // patch_size
    patches = video.reshape(
        grid_t,
        temporal_patch_size,
        channels,
        grid_h // merge_size,
        merge_size,
        patch_size,
        grid_w // merge_size,
        merge_size,
        patch_size,
    )
    # (t, rows of blocks, cols of blocks, row in block, col in block) first, then the patch's own pixels.
    patches = patches.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size)
    return VideoPatches(flat, torch.tensor([grid_t, grid_h, grid_w]))


@dataclass(frozen=True)
class PatchFramePreprocessor:
    """A Qwen2-VL-style video processor's steps in PyTorch: smart resize (bicubic, antialiased), rescale and
    normalize (fused as transformers fuses them), pad and patchify.

    Attributes:
        min_pixels, max_pixels: the pixel-count limits of a resized frame (``budget="frame"``, Qwen2.5-VL) or of
            all the video's frames together (``budget="video"``, Qwen3-VL).
        patch_size, temporal_patch_size, merge_size: the vision tower's.
        mean, std: per-channel normalization in 0..1 units.
        rescale_factor: 1/255 for uint8 input.
        resample: ``"bicubic"``, ``"bilinear"`` or ``"nearest"``.
    """

    min_pixels: int
    max_pixels: int
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    rescale_factor: float = 1 / 255
    resample: str = "bicubic"
    budget: str = "frame"

    @classmethod
    def from_dict(cls, settings: dict[str, Any], budget: str = "frame") -> "PatchFramePreprocessor":
        """From a video processor config (the keys of ``video_preprocessor_config.json``)."""
        size = settings.get("size") or {}
        min_pixels = settings.get("min_pixels") or size.get("shortest_edge")
        max_pixels = settings.get("max_pixels") or size.get("longest_edge")
        if not min_pixels or not max_pixels:
            raise ValueError(
                f"the video processor settings need min/max pixels ('size': shortest_edge and "
                f"longest_edge); got {size!r}"
            )
        resample = settings.get("resample", 3)
        if resample not in _RESAMPLE_MODES:
            raise ValueError(f"unsupported resample {resample!r}; supported: {sorted(_RESAMPLE_MODES)}")
        return cls(
            min_pixels=int(min_pixels),
            max_pixels=int(max_pixels),
            patch_size=int(settings.get("patch_size", 14)),
            temporal_patch_size=int(settings.get("temporal_patch_size", 2)),
            merge_size=int(settings.get("merge_size", 2)),
            mean=tuple(settings.get("image_mean", (0.48145466, 0.4578275, 0.40821073))),
            std=tuple(settings.get("image_std", (0.26862954, 0.26130258, 0.27577711))),
            rescale_factor=float(settings.get("rescale_factor", 1 / 255)),
            resample=_RESAMPLE_MODES[resample],
            budget=budget,
        )

    def output_size(self, num_frames: int, height: int, width: int) -> tuple[int, int]:
        """(height, width) of the resized frames for ``num_frames`` frames of ``height`` x ``width``."""
        factor = self.patch_size * self.merge_size
        if self.budget == "video":
            return smart_resize_video(
                num_frames, height, width, factor, self.temporal_patch_size, self.min_pixels, self.max_pixels
            )
        return smart_resize(height, width, factor, self.min_pixels, self.max_pixels)

    def __call__(self, frames: np.ndarray, device: Device = None) -> VideoPatches:
        """frames: (T, H, W, 3) uint8 -> :class:`VideoPatches` on ``device`` (default CPU), computed there."""
        video = torch.from_numpy(np.ascontiguousarray(check_frames(frames)))
        video = video.to(device or "cpu", non_blocking=True).permute(0, 3, 1, 2)
        video = resize_frames(video, self.output_size(video.shape[0], *video.shape[-2:]), self.resample)
        mean = torch.tensor(self.mean, device=video.device) * (1.0 / self.rescale_factor)
        std = torch.tensor(self.std, device=video.device) * (1.0 / self.rescale_factor)
        pixels = (video.float() - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        return patchify(pixels, self.patch_size, self.temporal_patch_size, self.merge_size)


def load_patch_preprocessor(model: str, budget: str = "frame", **hub_kwargs: Any) -> Any:
    """The patch preprocessing of checkpoint ``model`` (hub id or folder): the checkpoint's own transformers video
    processor when it can be built (it needs torchvision), else :class:`PatchFramePreprocessor` with its settings
    (``budget``: how its pixel limits apply, see :class:`PatchFramePreprocessor`)."""
    return load_checkpoint_preprocessor(
        model,
        functools.partial(PatchFramePreprocessor.from_dict, budget=budget),
        TransformersPatchPreprocessor,
        **hub_kwargs,
    )


class TransformersPatchPreprocessor:
    """Adapts a transformers Qwen2-VL-style video processor to give :class:`VideoPatches`."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, frames: np.ndarray, device: Device = None) -> VideoPatches:
        options: dict[str, Any] = {} if device is None else {"device": str(device)}
        # The frames are already sampled: the processor must not sample them again (Qwen3-VL's does by default).
        output = self.processor(videos=[check_frames(frames)], return_tensors="pt", do_sample_frames=False, **options)
        return VideoPatches(output["pixel_values_videos"], output["video_grid_thw"][0])
