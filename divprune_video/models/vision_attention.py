"""Faster vision towers for Qwen2-VL-style models (Qwen2.5-VL, Qwen3-VL): one attention call per chunk length
instead of one per chunk, and MLP widths the matrix kernels like.

Their vision blocks attend within chunks of the packed token sequence (``cu_seqlens``): Qwen2.5-VL's windowed
blocks within 112 px windows, its full-attention blocks and all of Qwen3-VL's within each frame pair. With
PyTorch's attention (sdpa, eager) transformers runs one attention call per chunk: for 32 frames of Qwen2.5-VL-7B at
448 px that is thousands of small calls per video, and the launches, not the arithmetic, set the time.

:class:`ChunkBatchedAttention` computes the same thing with one call per chunk length: the chunks of one length are
stacked as a batch (``(chunks, heads, length, head_dim)``), with no mask. Every frame pair has the same length, and a
window grid at most four (inner, right-edge, bottom-edge and corner windows), so a layer takes one to four calls.
Projections, rotary embedding and rounding points are the module's own and each chunk is computed as it would be
alone: the outputs equal the stock module's on the CPU (tested) and up to the attention kernel's choice of blocking
on a GPU.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The towers' rotary embedding: in float32, back to the input's dtype. x: (L, H, d); cos, sin: (L, d)."""
    cos, sin = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()
    x32 = x.float()
    return (x32 * cos + _rotate_half(x32) * sin).to(x.dtype)


def attend_in_chunks(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, lengths: list[int], scaling: float
) -> torch.Tensor:
    """Attention of every token to the tokens of its own chunk, one call per distinct chunk length.

    query, key, value: (L, H, d) packed chunk after chunk; lengths: the C chunk lengths (sum L). Returns (L, H, d).
    Chunks of one length are stacked as a batch with no mask, so each is computed exactly as it would be alone (a
    padded batch with a key mask would change the kernel's arithmetic); a window grid has at most four lengths
    (inner, right edge, bottom edge, corner windows).
    """
    total, heads, dim = query.shape
    if len(set(lengths)) == 1:
        count = len(lengths)
        stacked = [tensor.reshape(count, total // count, heads, dim).transpose(1, 2) for tensor in (query, key, value)]
        out = F.scaled_dot_product_attention(*stacked, scale=scaling)
        return out.transpose(1, 2).reshape(total, heads, dim)
    sizes = torch.tensor(lengths, device=query.device)
    starts = sizes.cumsum(0) - sizes
    out = torch.empty_like(query)
    for length in sorted(set(lengths)):
        chosen = starts[sizes == length]
        index = (chosen[:, None] + torch.arange(length, device=query.device)[None, :]).reshape(-1)
        stacked = [
            tensor[index].view(chosen.numel(), length, heads, dim).transpose(1, 2) for tensor in (query, key, value)
        ]
        part = F.scaled_dot_product_attention(*stacked, scale=scaling)
        out[index] = part.transpose(1, 2).reshape(-1, heads, dim)
    return out


class ChunkBatchedAttention(nn.Module):
    """Stands in for a Qwen2.5-VL / Qwen3-VL vision attention module (same parameters, shared with it), attending
    within the ``cu_seqlens`` chunks in one call (see the module text).

    Args:
        stock: the transformers module (``qkv``, ``proj``, ``num_heads``, ``scaling``).
    """

    def __init__(self, stock: nn.Module) -> None:
        super().__init__()
        self.qkv, self.proj = stock.qkv, stock.proj
        self.num_heads, self.scaling = stock.num_heads, stock.scaling

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        position_embeddings: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
        max_seqlen: Optional[int] = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        length = hidden_states.shape[0]
        query, key, value = self.qkv(hidden_states).reshape(length, 3, self.num_heads, -1).unbind(1)
        cos, sin = position_embeddings
        query, key = _rotary(query, cos, sin), _rotary(key, cos, sin)
        lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).tolist()
        out = attend_in_chunks(query, key, value, lengths, self.scaling)
        return self.proj(out.reshape(length, -1))


def batch_vision_attention(tower: nn.Module) -> int:
    """Replace the attention module of every block of a Qwen2-VL-style vision tower (``tower.blocks[i].attn``) by a
    :class:`ChunkBatchedAttention` over the same parameters, in place. Returns how many were replaced."""
    replaced = 0
    for block in tower.blocks:
        if not isinstance(block.attn, ChunkBatchedAttention):
            block.attn = ChunkBatchedAttention(block.attn)
            replaced += 1
    return replaced


#: The MLP's projections, by family: (input projections, output projection).
_MLP_PROJECTIONS = ((("gate_proj", "up_proj"), "down_proj"), (("linear_fc1",), "linear_fc2"))


def _widened(layer: nn.Linear, rows: int = 0, columns: int = 0) -> nn.Linear:
    """A copy of ``layer`` with ``rows`` more outputs and ``columns`` more inputs, all zero."""
    wider = nn.Linear(
        layer.in_features + columns,
        layer.out_features + rows,
        bias=layer.bias is not None,
        device=layer.weight.device,
        dtype=layer.weight.dtype,
    )
    with torch.no_grad():
        wider.weight.zero_()
        wider.weight[: layer.out_features, : layer.in_features] = layer.weight
        if layer.bias is not None:
            wider.bias.zero_()
            wider.bias[: layer.out_features] = layer.bias
    return wider


def pad_mlp_width(mlp: nn.Module, multiple: int = 128) -> int:
    """Widen a vision MLP's hidden layer to a multiple of ``multiple`` with zero weights, in place; returns the
    added width (0 when already a multiple, or when the module is not a known MLP).

    Qwen2.5-VL's 3,420 and Qwen3-VL's 4,304 hidden units leave the matrix library with slow kernels for the odd
    width (measurements: notes/design-history.md#divprune_videomodelsvision_attention). The added units
    get zero weights and zero bias, so their activations are ``act(0) (* 0) = 0`` for these models' SiLU and tanh
    GELU, and they add exact zeros to the output projection's sums: the outputs equal the unpadded ones up to the
    order in which the matrix kernel adds (tested against the stock module).
    """
    for inputs, output in _MLP_PROJECTIONS:
        if all(hasattr(mlp, name) for name in (*inputs, output)):
            break
    else:
        return 0
    width = getattr(mlp, output).in_features
    extra = -width % multiple
    if extra:
        for name in inputs:
            setattr(mlp, name, _widened(getattr(mlp, name), rows=extra))
        setattr(mlp, output, _widened(getattr(mlp, output), columns=extra))
    return extra
