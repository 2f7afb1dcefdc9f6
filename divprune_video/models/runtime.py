"""Family-neutral runtime choices of every adapter: device, dtype, attention implementation, reproducible attention
and synchronized timing."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Optional, Union

import torch

_DTYPES = {
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float32": torch.float32,
    "fp32": torch.float32,
}
DeviceLike = Union[str, torch.device, None]


def resolve_device(device: DeviceLike) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def resolve_dtype(dtype: Optional[Any], device: torch.device) -> torch.dtype:
    """``None`` -> float16 on CUDA, float32 elsewhere; strings like ``"bf16"`` are accepted."""
    if dtype is None:
        return torch.float16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, str):
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)} or a torch.dtype; got {dtype!r}")
        return _DTYPES[dtype]
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype or a string; got {type(dtype).__name__}")
    return dtype


def default_attention(device: torch.device) -> str:
    """flash-attention 2 on CUDA when installed, else PyTorch's scaled-dot-product attention."""
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            pass
    return "sdpa"


@contextlib.contextmanager
def reproducible_attention(device: torch.device) -> Iterator[None]:
    """Keep PyTorch's scaled-dot-product attention off its cuDNN kernels while active (CUDA only).

    cuDNN's attention kernels are not run-to-run deterministic (identical greedy ``generate()`` calls can give
    different logits and tokens); the flash, memory-efficient and math kernels are run-to-run identical (check:
    ``scripts/check_reproducible.py``; how it was found: notes/design-history.md#divprune_videomodelsruntime).
    PyTorch switches the backends process-wide and restores them on exit.
    """
    if device.type != "cuda":
        yield
        return
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        yield


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA only), so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synchronize_stream(device: torch.device) -> None:
    """Wait for the work queued on the calling thread's current stream of ``device`` (CUDA only): its own work,
    not other streams' (the streaming memory updates on a stream of its own meanwhile)."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()
