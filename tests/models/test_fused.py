"""The fused QuickGELU: bit-identical to transformers' eager activation (exhaustively on the GPU), eager fallback
elsewhere, and the adapter's vision tower unchanged by the swap."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from divprune_video.models.fused import FusedQuickGELU, fuse_quick_gelu, quick_gelu, quick_gelu_reference
from tests.triton_support import needs_recent_interpreter

ROOT = Path(__file__).resolve().parents[2]


def all_values(dtype: torch.dtype) -> torch.Tensor:
    """Every 16-bit pattern of ``dtype`` (65,536 values, NaNs and infinities included)."""
    return torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(dtype)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit, except that any NaN equals any NaN."""
    both_nan = torch.isnan(a) & torch.isnan(b)
    return bool(((a.view(torch.int16) == b.view(torch.int16)) | both_nan).all())


def test_reference_is_transformers_quick_gelu():
    from transformers.activations import QuickGELUActivation

    x = torch.randn(1000)
    assert torch.equal(quick_gelu_reference(x), QuickGELUActivation()(x))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cpu_takes_the_eager_formula(dtype):
    x = all_values(torch.float16).float().clamp(-60000, 60000).to(dtype)
    assert torch.equal(quick_gelu(x).nan_to_num(), quick_gelu_reference(x).nan_to_num())
    assert FusedQuickGELU()(x).dtype == dtype


def test_fusing_the_tiny_vision_tower_changes_nothing(adapter):
    pytest.importorskip("triton")
    vision = adapter.model.model.vision_tower
    layers = adapter.config.vision_config.num_hidden_layers
    assert sum(isinstance(m, FusedQuickGELU) for m in vision.modules()) == layers  # the adapter already fused
    pixels = torch.randn(2, 3, adapter.config.vision_config.image_size, adapter.config.vision_config.image_size)
    with torch.inference_mode():
        fused = vision(pixels).last_hidden_state
    from transformers.activations import QuickGELUActivation

    for module in vision.modules():
        for name, child in list(module.named_children()):
            if isinstance(child, FusedQuickGELU):
                setattr(module, name, QuickGELUActivation())
    with torch.inference_mode():
        eager = vision(pixels).last_hidden_state
    assert torch.equal(fused, eager)
    assert fuse_quick_gelu(vision) == layers


def test_kernel_under_the_triton_interpreter():
    needs_recent_interpreter()
    pytest.importorskip("triton")
    result = subprocess.run(
        [sys.executable, "-m", "tests.models.fused_interpreter_case"],
        cwd=ROOT,
        env=dict(os.environ, TRITON_INTERPRET="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fused quick_gelu under the interpreter: float16 ok" in result.stdout


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_bit_identical_to_eager_on_every_value(dtype):
    pytest.importorskip("triton")
    x = all_values(dtype).cuda()
    fused, eager = quick_gelu(x), quick_gelu_reference(x)
    assert same_bits(fused, eager)
    big = torch.randn(3, 577, 4096 + 7, device="cuda", dtype=dtype) * 4  # odd size: the last block is partial
    assert same_bits(quick_gelu(big), quick_gelu_reference(big))
