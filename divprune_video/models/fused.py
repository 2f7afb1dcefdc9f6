"""A fused QuickGELU for the CLIP vision tower on CUDA, bit-identical to transformers' eager one.

CLIP's MLP activation, ``x * sigmoid(1.702 * x)``, runs eagerly as three elementwise kernels over the (T * 577,
4096) output of ``fc1``, each a full memory pass over that large tensor (measured share of the vision tower:
notes/design-history.md#divprune_videomodelsfused). :class:`FusedQuickGELU` does the same arithmetic in one pass,
rounding after each operation exactly as PyTorch's kernels do (each op computes in float32 and rounds to the
tensor's dtype; ``exp`` is CUDA's ``expf``, the division is IEEE), so its output equals the eager output bit for
bit: the GPU test compares all 65,536 float16 and bfloat16 values. Anything else (CPU tensors, float32, autograd,
Triton missing) takes the eager formula.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

import torch
from torch import nn

logger = logging.getLogger(__name__)

_FUSED_DTYPES = (torch.float16, torch.bfloat16)
_BLOCK = 2048


try:  # Triton is optional (the "gpu" extra); without it everything takes the eager formula.
    import triton
    import triton.language as tl
    from triton.language.extra import libdevice
except ImportError:  # pragma: no cover - depends on the environment
    triton = None


if triton is not None:

    @triton.jit
    def _quick_gelu_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr, CUDA_EXP: tl.constexpr):
        offsets = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        in_range = offsets < n
        x = tl.load(x_ptr + offsets, mask=in_range, other=0.0)
        xf = x.to(tl.float32)
        dtype = y_ptr.dtype.element_ty
        # Round after every operation, as PyTorch's three eager kernels do.
        scaled = (xf * 1.702).to(dtype).to(tl.float32)
        one = tl.full(scaled.shape, 1.0, tl.float32)
        if CUDA_EXP:  # CUDA's expf, as PyTorch's sigmoid calls it
            exp = libdevice.exp(-scaled)
        else:  # Triton's CPU interpreter has no libdevice
            exp = tl.exp(-scaled)
        gate = tl.div_rn(one, one + exp).to(dtype).to(tl.float32)
        tl.store(y_ptr + offsets, (xf * gate).to(dtype), mask=in_range)


def _kernel() -> Optional[Any]:
    """The Triton kernel, or None when Triton cannot be imported."""
    return None if triton is None else _quick_gelu_kernel


def _interpreted() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``, used by the tests)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_quick_gelu_kernel, InterpretedFunction)


def quick_gelu_reference(x: torch.Tensor) -> torch.Tensor:
    """transformers' ``QuickGELUActivation``: ``x * sigmoid(1.702 * x)``, elementwise, any shape."""
    return x * torch.sigmoid(1.702 * x)


def quick_gelu(x: torch.Tensor) -> torch.Tensor:
    """``x * sigmoid(1.702 * x)`` for a tensor of any shape; one fused Triton pass for float16/bfloat16 CUDA
    tensors outside autograd (bit-identical to :func:`quick_gelu_reference`), the eager formula otherwise."""
    kernel = _kernel()
    if kernel is None or not x.is_cuda or x.dtype not in _FUSED_DTYPES or (torch.is_grad_enabled() and x.requires_grad):
        return quick_gelu_reference(x)
    x = x.contiguous()
    out = torch.empty_like(x)
    count = x.numel()
    if count:
        kernel[(-(-count // _BLOCK),)](x, out, count, BLOCK=_BLOCK, CUDA_EXP=True, num_warps=4, enable_fp_fusion=False)
    return out


class FusedQuickGELU(nn.Module):
    """Drop-in replacement for transformers' ``QuickGELUActivation`` (see :func:`quick_gelu`)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (the name transformers uses)
        return quick_gelu(input)


def fuse_quick_gelu(module: nn.Module) -> int:
    """Replace every transformers ``QuickGELUActivation`` inside ``module`` by :class:`FusedQuickGELU`, in place.

    Returns how many were replaced (0 when Triton is not installed: nothing changes then). The outputs stay
    bit-identical; only the number of memory passes changes.
    """
    if _kernel() is None:
        logger.info("triton is not installed: the vision tower keeps its eager QuickGELU")
        return 0
    replaced = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child).__name__ == "QuickGELUActivation":
                setattr(parent, name, FusedQuickGELU())
                replaced += 1
    return replaced
