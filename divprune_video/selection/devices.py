"""Where the selector runs: cached CUDA device properties, free memory (to choose between the full and the chunked
path), and whether the Triton kernels can run on given tokens. Its own module so that the selector's entry points
(:mod:`.divprune_selector`) and the Triton kernels (:mod:`._triton`) both use it without importing each other."""

from __future__ import annotations

import functools
from typing import Any, Optional

import torch


def device_index(device: torch.device) -> int:
    """The CUDA device's index (the current device for a plain ``cuda``)."""
    return torch.cuda.current_device() if device.index is None else device.index


def _process_fraction(device: torch.device) -> float:
    """The share of the CUDA device this process may use (``torch.cuda.set_per_process_memory_fraction``)."""
    fraction = getattr(torch.cuda, "get_per_process_memory_fraction", None)  # not in every torch release
    return 1.0 if fraction is None else float(fraction(device_index(device)))


def total_bytes(device: torch.device) -> Optional[int]:
    """The CUDA device's memory this process may use (its per-process fraction of the total); None off CUDA."""
    if device.type != "cuda":
        return None
    return int(_process_fraction(device) * device_properties(device).total_memory)


@functools.lru_cache(maxsize=None)
def _cached_properties(index: int) -> Any:
    return torch.cuda.get_device_properties(index)


def device_properties(device: torch.device) -> Any:
    """``torch.cuda.get_device_properties`` for a CUDA device, cached (the call is not free)."""
    return _cached_properties(device_index(device))


def free_bytes(device: torch.device) -> Optional[int]:
    """Bytes this process may still allocate on ``device``: on CUDA the device's free memory plus this process's
    cached blocks, within its limit (``torch.cuda.set_per_process_memory_fraction``); on the CPU the available
    memory; None where unknown."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated = torch.cuda.memory_allocated(device)
        within_limit = int(_process_fraction(device) * total) - allocated
        return int(min(free + torch.cuda.memory_reserved(device) - allocated, within_limit))
    if device.type == "cpu":
        try:
            with open("/proc/meminfo") as meminfo:
                for line in meminfo:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def triton_unusable_reason(tokens: torch.Tensor) -> Optional[str]:
    if not tokens.is_cuda:
        return f"the tokens are on {tokens.device}, and the Triton kernel needs CUDA"
    if tokens.dtype not in (torch.float16, torch.bfloat16, torch.float32):
        return f"the Triton kernel takes float16, bfloat16 or float32 tokens, not {tokens.dtype}"
    try:
        import triton  # noqa: F401
    except ImportError:
        return "triton is not installed (pip install 'divprune-video[gpu]')"
    return None


def triton_usable(tokens: torch.Tensor) -> bool:
    return triton_unusable_reason(tokens) is None
