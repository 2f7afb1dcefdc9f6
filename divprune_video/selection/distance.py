"""Pairwise distances in float32 (float64 for float64 input), shared by every selection path.

Every path (pure PyTorch, fused GPU kernel, chunked) computes a distance with the *same* formula, so that two
paths fed the same Gram matrix produce bit-identical distances:

* cosine: ``d_ij = 1 - (g_ij * r_i) * r_j`` with ``g = x x^T`` and ``r = 1 / ||x||``;
* l2, l1: ``||x_i - x_j||_p`` from the differences (``torch.cdist`` without its Gram shortcut, which loses
  accuracy to cancellation for close tokens).

Exact duplicates are then resolved (:mod:`.duplicates`): identical tokens are at distance exactly 0 and share their
distances to every other token, for every metric.

Half-precision tokens on CUDA are multiplied on the tensor cores with float32 accumulation and float32 output
(their products are exact in float32); nothing is ever rounded back to half.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch

from ._validate import describe_token
from .duplicates import first_occurrences, merge_duplicates


@contextlib.contextmanager
def ieee_float32_matmul() -> Iterator[None]:
    """Temporarily forbid TF32/bf16 shortcuts in float32 matrix products (users often enable them globally)."""
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype distances are computed and compared in: float64 for float64 tokens, float32 otherwise."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def gram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inner products ``a @ b^T`` in float32 (float64 for float64 input).

    a: (..., N, D), b: (..., M, D) of the same float dtype. Returns (..., N, M).
    """
    out_dtype = compute_dtype(a.dtype)
    if a.is_cuda and a.dtype in (torch.float16, torch.bfloat16):
        # Tensor-core product, float32 accumulation and float32 result.
        if a.dim() == 2:
            return torch.mm(a, b.transpose(-1, -2), out_dtype=torch.float32)
        return torch.bmm(a, b.transpose(-1, -2), out_dtype=torch.float32)
    with ieee_float32_matmul():
        return torch.matmul(a.to(out_dtype), b.to(out_dtype).transpose(-1, -2))


def inverse_norms(tokens: torch.Tensor) -> torch.Tensor:
    """``1 / ||x||`` per token in the compute dtype. tokens: (..., N, D) -> (..., N)."""
    norms = torch.linalg.vector_norm(tokens, dim=-1, dtype=compute_dtype(tokens.dtype))
    return 1.0 / norms


def check_nonzero_norms(inv_norms: torch.Tensor, mask: torch.Tensor | None = None) -> None:
    """Cosine distance is undefined for an all-zero token: raise naming the first one.

    inv_norms: (N,) or (B, N); mask: same shape, bool, True for the tokens to check.
    """
    bad = ~torch.isfinite(inv_norms)
    if mask is not None:
        bad = bad & mask
    if bool(bad.any()):
        raise ValueError(
            f"{describe_token(torch.nonzero(bad)[0].tolist())} has zero norm: cosine distance is undefined for it"
            " (use metric='l2' or drop the token)"
        )


def cosine_from_gram(g: torch.Tensor, inv_rows: torch.Tensor, inv_cols: torch.Tensor) -> torch.Tensor:
    """``1 - (g_ij * r_i) * r_j``, computed **in place** in ``g`` (no N x N temporaries) and returned.

    g: (..., N, M), inv_rows: (..., N), inv_cols: (..., M). ``-x + 1`` rounds exactly as ``1 - x``.
    """
    return g.mul_(inv_rows.unsqueeze(-1)).mul_(inv_cols.unsqueeze(-2)).neg_().add_(1.0)


def minkowski(a: torch.Tensor, b: torch.Tensor, metric: str) -> torch.Tensor:
    """L2 or L1 distances from differences (never the Gram shortcut, which cancels catastrophically for close
    tokens). a: (..., N, D), b: (..., M, D) -> (..., N, M) in the compute dtype; bit-symmetric for a is b."""
    dtype = compute_dtype(a.dtype)
    p = 2.0 if metric == "l2" else 1.0
    return torch.cdist(a.to(dtype), b.to(dtype), p=p, compute_mode="donot_use_mm_for_euclid_dist")


def pairwise_distance(
    tokens: torch.Tensor, metric: str = "cosine", inv_norms: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """All pairwise distances. tokens: (N, D) or (B, N, D) float -> (N, N) or (B, N, N) in the compute dtype.

    Identical tokens (bitwise equal) are at distance exactly 0 and have equal distances to every other token.
    ``inv_norms`` ((N,) or (B, N), cosine only) reuses already computed inverse norms. Zero-norm tokens give NaN
    cosine distances; the selectors check for them before calling this.
    """
    return merge_duplicates(formula_distance(tokens, metric, inv_norms), first_occurrences(tokens))


def formula_distance(
    tokens: torch.Tensor, metric: str = "cosine", inv_norms: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """:func:`pairwise_distance` before exact duplicates are resolved: the formulas alone, under which identical
    cosine tokens come out about 1e-7 apart. For paths that find the duplicates themselves."""
    if metric == "cosine":
        inv = inverse_norms(tokens) if inv_norms is None else inv_norms.reshape(tokens.shape[:-1])
        return cosine_from_gram(gram(tokens, tokens), inv, inv)
    if metric in ("l2", "l1"):
        return minkowski(tokens, tokens, metric)
    raise ValueError(f"metric must be 'cosine', 'l2' or 'l1'; got {metric!r}")
