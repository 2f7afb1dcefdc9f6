"""Exact duplicates among tokens, so that every selection path treats them the same way.

Identical tokens are one point: their distance is exactly 0 and their distances to any other token are equal.
Floating point gives neither: ``1 - (g_ij * r_i) * r_j`` leaves identical cosine tokens about 1e-7 apart (of
either sign), and a BLAS may round the same inner product differently at different positions of the matrix. The
greedy then breaks ties between copies by rounding noise, differently on each path, instead of by the lowest
index. A static video is the common case: every frame's tokens repeat exactly.

So each path finds the first occurrence of every token (:func:`first_occurrences`, exact: a 64-bit fingerprint of
each token's bytes, then a check of the tokens that share one) and reads all distances of a token from its first
occurrence (:func:`share_duplicate_distances`), with 0 between copies.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import torch

# Fingerprints are computed over blocks of rows, so that the (rows, words) int64 temporary stays near 128 MiB.
_FINGERPRINT_BLOCK_WORDS = 1 << 24


def _words(tokens: torch.Tensor) -> torch.Tensor:
    """(..., N, W) integer view of each token's bytes: the widest integer type that tiles a row."""
    tokens = tokens.contiguous()
    row_bytes = tokens.shape[-1] * tokens.element_size()
    for dtype in (torch.int64, torch.int32, torch.int16):
        if row_bytes % dtype.itemsize == 0 and tokens.element_size() <= dtype.itemsize:
            return tokens.view(dtype)
    return tokens.view(torch.uint8)


@functools.lru_cache(maxsize=16)
def _weights(num_words: int, device: torch.device) -> torch.Tensor:
    """(W,) fixed random odd int64 multipliers on ``device``: a single changed word always changes the
    fingerprint. Cached, so that no copy to the device waits on the host."""
    generator = torch.Generator().manual_seed(0x5EED)
    weights = torch.randint(-(2**62), 2**62, (num_words,), generator=generator, dtype=torch.int64) | 1
    return weights.to(device)


def _fingerprints(words: torch.Tensor) -> torch.Tensor:
    """(..., N) int64: sum of word * weight, wrapping. Integer sums are exact in any order, so identical tokens get
    identical fingerprints wherever they sit (different tokens rarely share one; callers check)."""
    weights = _weights(words.shape[-1], words.device)
    rows = max(1, _FINGERPRINT_BLOCK_WORDS // words.shape[-1])
    if words.shape[-2] <= rows:
        return (words * weights).sum(-1)
    return torch.cat([(block * weights).sum(-1) for block in words.split(rows, dim=-2)], dim=-1)


@dataclass
class PendingDuplicates:
    """The tokens' fingerprints, sorted on their device, before the host has looked at them: made by
    :func:`find_duplicates` without waiting for the device, so that the selectors read the answer
    (:meth:`resolve`) after the host sync their input checks make anyway."""

    words: torch.Tensor  # (..., N, W) integer view of the tokens
    order: torch.Tensor  # (..., N) positions in fingerprint order (ascending among equal fingerprints)
    repeats: torch.Tensor  # (..., N - 1) bool: each sorted token is a copy of the one before
    any_repeats: Optional[bool] = None  # repeats.any(), once a caller has brought it to the host

    def resolve(self) -> Optional[torch.Tensor]:
        """:func:`first_occurrences` of the tokens (one host sync, none where ``any_repeats`` is known and False)."""
        if not (bool(self.repeats.any()) if self.any_repeats is None else self.any_repeats):
            return None
        first = self.fingerprint_firsts()
        if bool(self.mismatches(first)):
            return _first_occurrences_exact(self.words)  # two different tokens share a fingerprint
        return first

    def fingerprint_firsts(self) -> torch.Tensor:
        """(..., N) int64: each token's first occurrence among the tokens with its fingerprint, without a host
        sync. Exact unless two different tokens share a fingerprint (:meth:`mismatches`)."""
        # Within a run of copies the run's first slot holds the first occurrence; cummax carries each run start's
        # slot along its run.
        order = self.order
        slots = torch.arange(order.shape[-1], device=order.device).expand_as(order)
        run_start = torch.cat([torch.ones_like(self.repeats[..., :1]), ~self.repeats], dim=-1)
        start_slot = torch.where(run_start, slots, 0).cummax(dim=-1).values
        return torch.empty_like(order).scatter_(-1, order, order.gather(-1, start_slot))

    def mismatches(self, first: torch.Tensor) -> torch.Tensor:
        """() bool on the device, without a host sync: some token differs from the token ``first`` names for it
        (two different tokens share a fingerprint, so ``first`` from :meth:`fingerprint_firsts` is wrong)."""
        return (self.words != self.words.gather(-2, first.unsqueeze(-1).expand_as(self.words))).any()


def find_duplicates(tokens: torch.Tensor, valid: Optional[torch.Tensor] = None) -> PendingDuplicates:
    """Queue the search for exact duplicates among ``tokens`` ((N, D) or (B, N, D); rows of a batch apart):
    one fingerprint per token and one sort, without a host sync. :meth:`PendingDuplicates.resolve` answers.

    valid: (B, N) bool, the tokens to search among (default all): padding (often all zeros, so all equal) is
    never a duplicate, and is its own first occurrence."""
    words = _words(tokens)
    keys = _fingerprints(words)
    if valid is not None:  # the lowest bit tells valid tokens (0) from padding (1): no padding shares a valid key
        keys = (keys & ~1) | (~valid.reshape(keys.shape)).long()
    keys, order = keys.sort(dim=-1, stable=True)
    repeats = keys[..., 1:] == keys[..., :-1]
    if valid is not None:
        repeats &= (keys[..., 1:] & 1) == 0
    return PendingDuplicates(words, order, repeats)


def first_occurrences(tokens: torch.Tensor) -> Optional[torch.Tensor]:
    """For each token, the position of the first token bitwise equal to it (itself when none comes before).

    tokens: (N, D) or (B, N, D) (rows of a batch are separate). Returns (N,) or (B, N) int64 on the tokens'
    device, or None when no two tokens (of one row) are equal: the common case, found with one sort of N
    fingerprints and one host sync.
    """
    return find_duplicates(tokens).resolve()


def _first_occurrences_exact(words: torch.Tensor) -> Optional[torch.Tensor]:
    """:func:`first_occurrences` by sorting whole tokens (slower; only after a fingerprint collision)."""
    rows = words.reshape(-1, *words.shape[-2:])
    firsts = []
    for row in rows:
        _, group = torch.unique(row, dim=0, return_inverse=True)
        positions = torch.arange(row.shape[0], device=row.device)
        first_of_group = torch.full_like(positions, row.shape[0]).scatter_reduce_(0, group, positions, "amin")
        firsts.append(first_of_group[group])
    first = torch.stack(firsts).reshape(words.shape[:-1])
    positions = torch.arange(words.shape[-2], device=words.device)
    return None if bool((first == positions).all()) else first


def share_duplicate_distances(rows: torch.Tensor, row_first: torch.Tensor, col_first: torch.Tensor) -> torch.Tensor:
    """Distances in which every token reads its values from its first occurrence, and copies are at exactly 0.

    rows: (..., R, C) distances from the tokens at positions ``row_first`` (their first occurrences) to the C
    tokens; row_first: (..., R) and col_first: (..., M) first occurrences (:func:`first_occurrences`, positions in
    0..C-1). Returns a new (..., R, M) tensor ``out[r, m] = rows[r, col_first[m]]``, 0 where ``row_first[r] ==
    col_first[m]``.
    """
    index = col_first.unsqueeze(-2).expand(*rows.shape[:-1], col_first.shape[-1])
    shared = rows.gather(-1, index)
    return shared.masked_fill_(row_first.unsqueeze(-1) == col_first.unsqueeze(-2), 0.0)


def merge_duplicates(dist: torch.Tensor, first: Optional[torch.Tensor]) -> torch.Tensor:
    """A full (..., N, N) distance matrix with exact duplicates resolved (:func:`share_duplicate_distances`);
    ``dist`` itself when ``first`` is None (no duplicates). first: (..., N) from :func:`first_occurrences`."""
    if first is None:
        return dist
    rows = dist.gather(-2, first.unsqueeze(-1).expand_as(dist))
    return share_duplicate_distances(rows, first, first)
