"""Argument checks shared by the selectors: every message names the argument and what was expected."""

from __future__ import annotations

import math
import numbers
from typing import Literal, Optional, Sequence, Union

import torch

METRICS = ("cosine", "l2", "l1")
#: A distance between tokens (see :func:`~divprune_video.selection.distance.pairwise_distance`).
Metric = Literal["cosine", "l2", "l1"]
#: Token dtypes the selectors compute with. Narrower floats (float8) have no matrix product or cdist on most
#: devices, and would fail deep inside a path with an unrelated message.
TOKEN_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(repr(m) for m in METRICS)}; got {metric!r}")
    return metric


def describe_token(position: list[int]) -> str:
    """'token i' for an (N,) position, 'token i of batch row b' for a (B, N) one."""
    return f"token {position[-1]}" + (f" of batch row {position[0]}" if len(position) > 1 else "")


def check_tokens(tokens: torch.Tensor, *, rank: int) -> None:
    """Raise if ``tokens`` is not a non-empty tensor of the given rank (2: (N, D), 3: (B, N, D)) with a dtype of
    :data:`TOKEN_DTYPES` and values (not on the meta device)."""
    shape = "(N, D)" if rank == 2 else "(B, N, D)"
    if not isinstance(tokens, torch.Tensor):
        raise TypeError(f"tokens must be a torch.Tensor of shape {shape}; got {type(tokens).__name__}")
    if tokens.dim() != rank:
        raise ValueError(f"tokens must have shape {shape} (rank {rank}); got shape {tuple(tokens.shape)}")
    if not tokens.is_floating_point():
        raise TypeError(f"tokens must have a floating-point dtype; got {tokens.dtype}")
    if tokens.dtype not in TOKEN_DTYPES:
        raise TypeError(
            f"tokens have dtype {tokens.dtype}; selection takes float16, bfloat16, float32 or float64 "
            "tokens (convert them, e.g. tokens.float())"
        )
    if tokens.is_meta:
        raise TypeError(
            "tokens are on the meta device, which holds shapes but no values; selection needs the "
            "values: move them to the cpu or cuda first"
        )
    if tokens.numel() == 0:
        raise ValueError(f"tokens is empty: got shape {tuple(tokens.shape)}; need N >= 1 tokens of D >= 1 features")


def check_finite(tokens: torch.Tensor, mask: Optional[torch.Tensor] = None) -> None:
    """Raise naming the first token with a NaN or Inf. tokens: (N, D) or (B, N, D); mask: (B, N) bool, True for
    the tokens to check (padding may hold anything)."""
    finite = torch.isfinite(tokens).all(dim=-1)
    if mask is not None:
        finite = finite | ~mask
    if not bool(finite.all()):
        where = describe_token(torch.nonzero(~finite)[0].tolist())
        raise ValueError(f"tokens contain NaN or Inf (first at {where}); selection needs finite values")


def check_mask(mask: Optional[torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """Return a bool (B, N) validity mask on the tokens' device (all True when ``mask`` is None)."""
    batch, num_tokens = tokens.shape[:2]
    if mask is None:
        return torch.ones(batch, num_tokens, dtype=torch.bool, device=tokens.device)
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a bool torch.Tensor of shape (B, N); got {type(mask).__name__}")
    if tuple(mask.shape) != (batch, num_tokens):
        raise ValueError(f"mask must have shape (B, N) = {(batch, num_tokens)}; got {tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must have dtype torch.bool; got {mask.dtype}")
    mask = mask.to(tokens.device)
    empty_rows = (~mask.any(dim=1)).nonzero().flatten().tolist()
    if empty_rows:
        raise ValueError(f"mask marks no valid token in batch row(s) {empty_rows}; every row needs at least one")
    return mask


def resolve_num_keep(num_tokens: int, keep_ratio: Optional[float], num_keep: Optional[int]) -> int:
    """The number of tokens to keep out of ``num_tokens``.

    Exactly one of ``keep_ratio`` (a float in (0, 1]; count = max(1, round(keep_ratio * N))) or
    ``num_keep`` (an int in 1..N) must be given.
    """
    if (keep_ratio is None) == (num_keep is None):
        raise ValueError(
            f"pass exactly one of keep_ratio or num_keep; got keep_ratio={keep_ratio!r}, num_keep={num_keep!r}"
        )
    if keep_ratio is not None:
        return max(1, int(round(check_keep_ratio(keep_ratio) * num_tokens)))
    if isinstance(num_keep, bool) or not isinstance(num_keep, numbers.Integral):
        raise TypeError(f"num_keep must be an int in 1..N; got {num_keep!r}")
    if not 1 <= num_keep <= num_tokens:
        raise ValueError(f"num_keep must be in 1..N = 1..{num_tokens}; got {num_keep}")
    return int(num_keep)


def resolve_batch_num_keep(
    valid_counts: Sequence[int],
    keep_ratio: Optional[float],
    num_keep: Union[int, Sequence[int], None],
) -> list[int]:
    """Per-row keep counts for a batch; ``num_keep`` may be one int or one int per row."""
    if num_keep is not None and not isinstance(num_keep, numbers.Integral):
        counts = list(num_keep)
        if len(counts) != len(valid_counts):
            raise ValueError(f"num_keep has {len(counts)} entries but the batch has {len(valid_counts)} rows")
        return [resolve_num_keep(n, keep_ratio, k) for n, k in zip(valid_counts, counts)]
    return [resolve_num_keep(n, keep_ratio, num_keep) for n in valid_counts]


def check_keep_ratio(keep_ratio: object) -> float:
    """The one check of a keep ratio (selector, pruning config, benchmark variants): a real number in (0, 1].
    Raises TypeError for a non-number (a bool included), ValueError naming the value outside (0, 1] or NaN."""
    if isinstance(keep_ratio, bool) or not isinstance(keep_ratio, numbers.Real):
        raise TypeError(f"keep_ratio must be a float in (0, 1]; got {keep_ratio!r}")
    if not math.isfinite(keep_ratio) or not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {keep_ratio!r}")
    return float(keep_ratio)
