"""Fused GPU kernels (Triton). They pick exactly what :mod:`.greedy` picks on the same distances.

The full path's kernels. Why fused: each greedy step reads one row of N distances and does one arg-max. Plain
PyTorch spends two to three kernel launches per step, and is launch-bound (notes/selection-perf.md); here one
program per batch row runs *all* steps, holding the running minimum of every token in registers, so a step costs
one row load plus one block-wide reduction. A long row is split over several programs
(:func:`_greedy_rounds_kernel`), which exchange their best keys through global memory and agree on several picks
per exchange: the exchange, not the arithmetic, is what a step costs there. That kernel also exists in CUDA C
(``rounds.cu``, loaded by :mod:`._cuda`), which :func:`step_loop` runs where it can be built: its round's picks run
in one warp, which Triton cannot express.

The matrix-free path's kernels (:mod:`.chunked`): a GEMM whose epilogue turns its tile into cosine distances and
folds their minima into per-token minima, so no tile of distances is ever written (the two passes over all N tokens
are then bound by the tensor cores, not by memory traffic), and a one-program greedy over a round's candidates.

Exactness: the cosine distance is recomputed from the Gram row with the same float32 operations, in the same
order, as :func:`~.distance.cosine_from_gram` (floating-point contraction into FMA is switched off), and arg-max
ties resolve to the lowest index through a packed 64-bit key: ``(order-preserving score bits << 32) | (index XOR
(2^31 - 1))``; a single max-reduction of the keys gives the largest score and, among equals, the lowest index.
"""

from __future__ import annotations

import struct
from typing import Callable, Literal

import torch
import triton
import triton.language as tl

from .devices import device_properties
from .distance import cosine_from_gram, formula_distance, gram, inverse_norms
from .duplicates import PendingDuplicates, find_duplicates, merge_duplicates
from .greedy import first_pick_scores

#: Rows up to this many tokens keep their running minima in registers; longer rows stream them through memory.
MAX_REGISTER_TOKENS = 16384
STREAM_CHUNK = 4096


@triton.jit
def _score_keys(score, index):
    """Order-preserving int64 keys: larger score first, then lower index. -0.0 counts as +0.0."""
    bits = score.to(tl.int32, bitcast=True)
    bits = tl.where(score == 0.0, 0, bits)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return (bits.to(tl.int64) << 32) | (index ^ 0x7FFFFFFF).to(tl.int64)


@triton.jit
def _index_of(key):
    return ((key & 0x7FFFFFFF) ^ 0x7FFFFFFF).to(tl.int32)


@triton.jit
def _column_norms(norms, cols, in_range, FROM_GRAM: tl.constexpr):
    if FROM_GRAM:
        values = tl.load(norms + cols, mask=in_range, other=1.0)
    else:
        values = tl.zeros(cols.shape, tl.float32)
    return values


@triton.jit
def _row_distances(src_ptr, row_offset, cols, in_range, inv_norm_ptr, pick, inv_cols, FROM_GRAM: tl.constexpr):
    row = tl.load(src_ptr + row_offset + cols, mask=in_range, other=0.0)
    if FROM_GRAM:
        inv_pick = tl.load(inv_norm_ptr + pick)
        row = 1.0 - (row * inv_pick) * inv_cols
    return row


@triton.jit
def _valid(valid_ptr, index, in_range, HAS_MASK: tl.constexpr):
    if HAS_MASK:
        flags = tl.load(valid_ptr + index, mask=in_range, other=0) != 0
    else:
        flags = in_range
    return flags


@triton.jit
def _first_scores_kernel(
    gram_ptr,
    inv_norm_ptr,
    valid_ptr,
    col_min_ptr,
    row_part_ptr,
    N,
    stride_batch,
    num_col_blocks,
    BLOCK_I: tl.constexpr,
    BLOCK_J: tl.constexpr,
    HAS_MASK: tl.constexpr,
):
    """For one block of columns: col_min[b, j] = min over valid rows i != j of d(i, j), and, for every row i,
    row_part[b, block, i] = min over the block's valid columns j != i of d(i, j).

    The row minima are reduced over blocks afterwards; a token's first-pick score is min(col_min, row_min).
    Without HAS_MASK every token is valid and ``valid_ptr`` is not read.
    """
    batch = tl.program_id(1)
    block = tl.program_id(0)
    cols = block * BLOCK_J + tl.arange(0, BLOCK_J)
    col_in = cols < N
    base = batch.to(tl.int64) * stride_batch
    inv_cols = tl.load(inv_norm_ptr + batch * N + cols, mask=col_in, other=1.0)
    col_valid = _valid(valid_ptr + batch * N, cols, col_in, HAS_MASK)
    row_part = row_part_ptr + (batch.to(tl.int64) * num_col_blocks + block) * N
    col_min = tl.full([BLOCK_J], float("inf"), tl.float32)
    for start in range(0, N, BLOCK_I):
        rows = start + tl.arange(0, BLOCK_I)
        row_in = rows < N
        row_valid = _valid(valid_ptr + batch * N, rows, row_in, HAS_MASK)
        inv_rows = tl.load(inv_norm_ptr + batch * N + rows, mask=row_in, other=1.0)
        offsets = base + rows.to(tl.int64)[:, None] * N + cols[None, :]
        g = tl.load(gram_ptr + offsets, mask=row_in[:, None] & col_in[None, :], other=0.0)
        d = 1.0 - (g * inv_rows[:, None]) * inv_cols[None, :]
        skip = (rows[:, None] == cols[None, :]) | ~row_valid[:, None] | ~col_valid[None, :]
        d = tl.where(skip, float("inf"), d)
        col_min = tl.minimum(col_min, tl.min(d, axis=0))
        tl.store(row_part + rows, tl.min(d, axis=1), mask=row_in)
    tl.store(col_min_ptr + batch * N + cols, col_min, mask=col_in)


@triton.jit
def _greedy_kernel(
    src_ptr,
    inv_norm_ptr,
    first_ptr,
    counts_ptr,
    out_ptr,
    scratch_ptr,
    N,
    stride_batch,
    stride_out,
    FROM_GRAM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    NUM_CHUNKS: tl.constexpr,
):
    """One program per batch row runs every greedy step.

    src is the (B, N, N) distance matrix, or with FROM_GRAM the Gram matrix plus inverse norms. first holds the
    first pick's scores (-inf for invalid tokens). With NUM_CHUNKS == 1 the running minima live in registers
    (N <= BLOCK_N); otherwise they stream through ``scratch`` (B, N) in NUM_CHUNKS chunks of BLOCK_N.
    """
    batch = tl.program_id(0)
    count = tl.load(counts_ptr + batch)
    base = batch.to(tl.int64) * stride_batch
    norms = inv_norm_ptr + batch * N
    offs = tl.arange(0, BLOCK_N)
    if NUM_CHUNKS == 1:
        in_range = offs < N
        first = tl.load(first_ptr + batch * N + offs, mask=in_range, other=float("-inf"))
        pick = _index_of(tl.max(_score_keys(first, offs), axis=0))
        tl.store(out_ptr + batch * stride_out, pick)
        inv_cols = _column_norms(norms, offs, in_range, FROM_GRAM)
        min_dist = tl.where(first > float("-inf"), float("inf"), float("-inf"))
        for step in range(1, count):
            row = _row_distances(
                src_ptr, base + pick.to(tl.int64) * N, offs, in_range, norms, pick, inv_cols, FROM_GRAM
            )
            min_dist = tl.minimum(min_dist, row)
            min_dist = tl.where(offs == pick, float("-inf"), min_dist)
            pick = _index_of(tl.max(_score_keys(min_dist, offs), axis=0))
            tl.store(out_ptr + batch * stride_out + step, pick)
    else:
        scratch = scratch_ptr + batch.to(tl.int64) * N
        best = tl.full([BLOCK_N], -(2**62), tl.int64)
        for chunk in tl.static_range(NUM_CHUNKS):
            cols = chunk * BLOCK_N + offs
            first = tl.load(first_ptr + batch * N + cols, mask=cols < N, other=float("-inf"))
            best = tl.maximum(best, _score_keys(first, cols))
            tl.store(scratch + cols, tl.where(first > float("-inf"), float("inf"), float("-inf")), mask=cols < N)
        pick = _index_of(tl.max(best, axis=0))
        tl.store(out_ptr + batch * stride_out, pick)
        for step in range(1, count):
            tl.debug_barrier()
            best = tl.full([BLOCK_N], -(2**62), tl.int64)
            row_offset = base + pick.to(tl.int64) * N
            for chunk in tl.static_range(NUM_CHUNKS):
                cols = chunk * BLOCK_N + offs
                in_range = cols < N
                inv_cols = _column_norms(norms, cols, in_range, FROM_GRAM)
                row = _row_distances(src_ptr, row_offset, cols, in_range, norms, pick, inv_cols, FROM_GRAM)
                min_dist = tl.minimum(tl.load(scratch + cols, mask=in_range, other=float("-inf")), row)
                min_dist = tl.where(cols == pick, float("-inf"), min_dist)
                tl.store(scratch + cols, min_dist, mask=in_range)
                best = tl.maximum(best, _score_keys(min_dist, cols))
            pick = _index_of(tl.max(best, axis=0))
            tl.store(out_ptr + batch * stride_out + step, pick)


@triton.jit
def _key_score(key):
    """The running minimum packed into ``key`` (:func:`_score_keys`; -0.0 comes back as +0.0)."""
    bits = (key >> 32).to(tl.int32)
    bits = bits ^ ((bits >> 31) & 0x7FFFFFFF)
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _published(slots, mask):
    """The keys in exchange ``slots`` once every one is written: spins while any still holds the sentinel -2^63
    (L1-bypassing loads). Masked lanes read -2^63 + 1, below every real key.

    The loaded tensor is smaller than the program, so several threads hold copies of each key, and each copy is
    loaded at its own time; Triton's reductions assume the copies are equal, so the loop can end on some copies
    while others still hold a sentinel. The keys are therefore loaded once more after the loop and a barrier: by
    then every slot has been seen written, so every copy is final. Without this, 8 warps with 6 candidates per
    program gave wrong picks in 7 of 90 H200 runs (notes/selection-perf.md)."""
    keys = tl.load(slots, mask=mask, other=-(2**63) + 1, volatile=True)
    while tl.min(keys, axis=0) == -(2**63):
        keys = tl.load(slots, mask=mask, other=-(2**63) + 1, volatile=True)
    tl.debug_barrier()
    return tl.load(slots, mask=mask, other=-(2**63) + 1, volatile=True)


@triton.jit
def _greedy_rounds_kernel(
    src_ptr,
    inv_norm_ptr,
    first_ptr,
    out_ptr,
    keys_ptr,
    picked_ptr,
    N,
    count,
    no_finite_key,
    FROM_GRAM: tl.constexpr,
    BLOCK_N: tl.constexpr,
    NUM_PROGRAMS: tl.constexpr,
    TOP: tl.constexpr,
    SLOTS: tl.constexpr,
    PEERS: tl.constexpr,
    GROUP: tl.constexpr,
):
    """The step loop for one long row, its columns split over NUM_PROGRAMS programs that hold their running
    minima in registers and agree on several picks per exchange (the grid must fit on the GPU at once).

    A round: every program publishes its TOP best keys (``keys[round, program * TOP + t]``) and its next one
    (``keys[round, NUM_PROGRAMS * TOP + program]``), then waits for all of them (slots still holding the sentinel
    -2^63 are not written yet). tau, the largest of the programs' (TOP + 1)-th keys, bounds every token that is not
    a candidate, and running minima only fall; so while the best candidate's key beats tau it is the greedy's next
    pick over *all* tokens. Every program runs those picks among the candidates alone, from their distances
    gathered once per round, and gets the same picks; then it folds the rows of all the round's picks into its own
    minima. Every round makes at least one pick (the best key overall is a candidate); round 0 makes exactly one,
    from the first-pick scores. ``no_finite_key`` is the largest key of a -inf score: tau is at least that, so
    tokens already picked or invalid are never candidates.

    A candidate's distances are computed with the same float32 operations as the update's (and the single-program
    kernel's), and keys break ties by the lowest index: the picks are those of :func:`_greedy_kernel`.

    SLOTS is NUM_PROGRAMS * TOP and PEERS NUM_PROGRAMS, each rounded up to a power of two (at least 16); ``picked``
    (NUM_PROGRAMS, SLOTS) int32 scratch holds each program's copy of the round's picks for the update, which loads
    GROUP rows at a time.
    """
    program = tl.program_id(0)
    cols = program * BLOCK_N + tl.arange(0, BLOCK_N)
    in_range = cols < N
    first = tl.load(first_ptr + cols, mask=in_range, other=float("-inf"))
    inv_cols = _column_norms(inv_norm_ptr, cols, in_range, FROM_GRAM)
    min_dist = tl.where(first > float("-inf"), float("inf"), float("-inf"))
    scores = first
    slots = tl.arange(0, SLOTS)
    real = slots < NUM_PROGRAMS * TOP
    peers = tl.arange(0, PEERS)
    scratch = picked_ptr + program * SLOTS
    step = program * 0  # a tensor even where count is specialized to a constant
    rnd = program * 0
    while step < count:
        # Publish this program's TOP best keys and its next one (tau's share).
        keys = _score_keys(scores, cols)
        shared = keys_ptr + rnd.to(tl.int64) * (NUM_PROGRAMS * (TOP + 1))
        for t in tl.static_range(TOP + 1):
            best = tl.max(keys, axis=0)
            if t < TOP:
                tl.store(shared + program * TOP + t, best)
            else:
                tl.store(shared + NUM_PROGRAMS * TOP + program, best)
            keys = tl.where(keys == best, -(2**63) + 1, keys)
        exchanged = _published(shared + slots, real)
        bounds = _published(shared + NUM_PROGRAMS * TOP + peers, peers < NUM_PROGRAMS)
        tau = tl.maximum(tl.max(bounds, axis=0), no_finite_key)
        live = exchanged > tau
        cand = tl.where(live, _index_of(exchanged), 0)
        # The candidates run along dim 0 as tokens whose minima fall ([C, 1]) and along dim 1 as picks ([1, C]):
        # taking a pick's row is then a reduction along dim 1, with no change of layout inside the loop.
        cand_j = tl.expand_dims(cand, 1)
        cand_i = tl.expand_dims(cand, 0)
        live_j = tl.expand_dims(live, 1)
        live_i = tl.expand_dims(live, 0)
        value = tl.expand_dims(tl.where(live, _key_score(exchanged), float("-inf")), 1)
        # dist[j, i]: the distance from candidate i (as a pick) to candidate j, as the update computes it.
        inv_j = _column_norms(inv_norm_ptr, cand_j, live_j, FROM_GRAM)
        dist = _row_distances(
            src_ptr, cand_i.to(tl.int64) * N, cand_j, live_j & live_i, inv_norm_ptr, cand_i, inv_j, FROM_GRAM
        )
        limit = tl.where(rnd == 0, 1, count - step)
        key = tl.max(tl.where(live, exchanged, -(2**63) + 1), axis=0)
        taken = step * 0
        while (key > tau) & (taken < limit):
            pick = _index_of(key)
            if program == 0:
                tl.store(out_ptr + step + taken, pick)
            tl.store(scratch + taken, pick)
            row = tl.max(tl.where(live_i & (cand_i == pick), dist, float("-inf")), axis=1)
            hit = live_j & (cand_j == pick)
            value = tl.where(hit, float("-inf"), tl.minimum(value, tl.expand_dims(row, 1)))
            live_j = live_j & ~hit
            key = tl.max(tl.max(tl.where(live_j, _score_keys(value, cand_j), -(2**63) + 1), axis=1), axis=0)
            taken += 1
        tl.debug_barrier()
        # Fold the round's rows into this program's running minima, GROUP rows per load.
        for start in range(0, taken, GROUP):
            group = start + tl.arange(0, GROUP)
            group_in = group < taken
            picks = tl.load(scratch + group, mask=group_in, other=0)[:, None]
            rows = _row_distances(
                src_ptr,
                picks.to(tl.int64) * N,
                cols[None, :],
                group_in[:, None] & in_range[None, :],
                inv_norm_ptr,
                picks,
                inv_cols[None, :],
                FROM_GRAM,
            )
            rows = tl.where(group_in[:, None], rows, float("inf"))
            rows = tl.where(group_in[:, None] & (cols[None, :] == picks), float("-inf"), rows)
            min_dist = tl.minimum(min_dist, tl.min(rows, axis=0))
        tl.debug_barrier()
        scores = min_dist
        step += taken
        rnd += 1


#: Rows of at most this many tokens run in one program (the cooperative exchange costs more than it saves).
SINGLE_PROGRAM_MAX = 2048
#: Programs the cooperative kernel aims for; candidates each offers per round. Measured on an H200 at N = 4,608,
#: 4,240 and 36,864 (notes/selection-perf.md): 9 programs of 512 tokens and 3 candidates each (27 in all) were
#: the fastest at N = 4,608 of the 1-16 warp, 1-6 candidate and 3-36 program shapes tried.
COOPERATIVE_PROGRAMS = 9
COOPERATIVE_TOP = 3


def cooperative_shape(num_tokens: int, sm_count: int) -> tuple[int, int, int, int] | None:
    """(tokens per program, warps, candidates per program, rows per update load) for the cooperative kernel, or
    None where one program per row is better (short rows) or the programs would not all be resident at once."""
    if num_tokens <= SINGLE_PROGRAM_MAX:
        return None
    block = min(max(512, triton.next_power_of_2(triton.cdiv(num_tokens, COOPERATIVE_PROGRAMS))), 8192)
    if triton.cdiv(num_tokens, block) > sm_count:
        return None
    warps = 4 if block <= 512 else 8 if block <= 2048 else 16
    group = max(1, min(8, 32 * 32 * warps // block))  # the update's (group, block) tile: <= 32 values per thread
    return block, warps, COOPERATIVE_TOP, group


def _launch_shape(num_tokens: int) -> tuple[int, int, int]:
    """(BLOCK_N, NUM_CHUNKS, num_warps) for a row of ``num_tokens``."""
    if num_tokens <= MAX_REGISTER_TOKENS:
        block = max(triton.next_power_of_2(num_tokens), 128)
        warps = 4 if block <= 1024 else 8 if block <= 4096 else 16
        return block, 1, warps
    return STREAM_CHUNK, triton.cdiv(num_tokens, STREAM_CHUNK), 16


def greedy_triton(
    src: torch.Tensor,
    inv_norms: torch.Tensor | None,
    first_scores: torch.Tensor,
    counts: list[int],
    num_warps: int | None = None,
) -> torch.Tensor:
    """Run the fused step loop. src: (B, N, N) float32 distances, or the Gram matrix when ``inv_norms`` (B, N) is
    given (cosine). first_scores: (B, N) float32. ``num_warps`` overrides the tuned default (for profiling).
    Returns (B, max(counts)) int64 picks, -1 padded."""
    batch, num_tokens = first_scores.shape
    device = src.device
    src = src.contiguous()
    picks = torch.full((batch, max(counts)), -1, dtype=torch.int64, device=device)
    if len(set(counts)) == 1:  # a fill kernel, not a copy from the host: a CUDA graph can capture it
        counts_t = torch.full((batch,), counts[0], dtype=torch.int32, device=device)
    else:
        counts_t = torch.tensor(counts, dtype=torch.int32, device=device)
    block, chunks, warps = _launch_shape(num_tokens)
    warps = num_warps or warps
    scratch = torch.empty((batch, num_tokens) if chunks > 1 else (1,), dtype=torch.float32, device=device)
    from_gram = inv_norms is not None
    _greedy_kernel[(batch,)](
        src,
        inv_norms if from_gram else first_scores,
        first_scores.contiguous(),
        counts_t,
        picks,
        scratch,
        num_tokens,
        num_tokens * num_tokens,
        picks.stride(0),
        FROM_GRAM=from_gram,
        BLOCK_N=block,
        NUM_CHUNKS=chunks,
        num_warps=warps,
        enable_fp_fusion=False,
    )
    return picks


def greedy_triton_cooperative(
    src: torch.Tensor,
    inv_norms: torch.Tensor | None,
    first_scores: torch.Tensor,
    count: int,
    block: int = 512,
    num_warps: int = 4,
    top: int = 3,
    group: int = 8,
) -> torch.Tensor:
    """The step loop over several cooperating programs, several picks per exchange (:func:`_greedy_rounds_kernel`),
    for one long row (B = 1).

    src: (1, N, N) float32 distances, or the Gram matrix with ``inv_norms`` (1, N); first_scores: (1, N).
    ``block`` tokens per program, ``top`` candidates each program offers per round, ``group`` rows per load of the
    update. On CPU (Triton's interpreter runs programs one after another) only one program can run.
    Returns (1, count) int64 picks, the same as :func:`greedy_triton`'s.
    """
    num_tokens = first_scores.shape[-1]
    for name, value in (("block", block), ("group", group)):
        if value < 1 or value & (value - 1):
            raise ValueError(f"{name} must be a power of two (a Triton block size); got {value}")
    programs = triton.cdiv(num_tokens, block)
    if src.is_cuda:
        sm_count = device_properties(src.device).multi_processor_count
        if programs > sm_count:
            raise ValueError(f"{programs} programs of {block} tokens do not fit at once on {sm_count} SMs")
    elif programs > 1:
        raise ValueError(f"{programs} cooperating programs cannot run one after another; use block >= {num_tokens}")
    slots = max(triton.next_power_of_2(programs * top), 16)
    picks = torch.empty(1, count, dtype=torch.int64, device=src.device)
    keys = torch.full((count, programs * (top + 1)), -(2**63), dtype=torch.int64, device=src.device)
    picked = torch.empty(programs, slots, dtype=torch.int32, device=src.device)
    from_gram = inv_norms is not None
    _greedy_rounds_kernel[(programs,)](
        src.contiguous(),
        inv_norms if from_gram else first_scores,
        first_scores.contiguous(),
        picks,
        keys,
        picked,
        num_tokens,
        count,
        outside_key(float("-inf"), 0),
        FROM_GRAM=from_gram,
        BLOCK_N=block,
        NUM_PROGRAMS=programs,
        TOP=top,
        SLOTS=slots,
        PEERS=max(triton.next_power_of_2(programs), 16),
        GROUP=group,
        num_warps=num_warps,
        enable_fp_fusion=False,
    )
    return picks


def cosine_first_scores(
    g: torch.Tensor,
    inv_norms: torch.Tensor,
    valid: torch.Tensor | None,
    block_j: int | None = None,
    tile: int | None = None,
    num_warps: int = 4,
) -> torch.Tensor:
    """:func:`~.greedy.first_pick_scores` for cosine, read straight from the Gram matrix (B, N, N) in one pass.

    Same values as the pure path: min is exact, so the order of the reductions does not matter. ``block_j``
    (columns per program), ``tile`` (elements per loaded tile) and ``num_warps`` are launch parameters.
    ``valid`` (B, N) bool, or None when every token is valid.
    """
    batch, num_tokens = inv_norms.shape
    block_j = block_j or (32 if num_tokens <= 8192 else 64)
    tile = tile or (8192 if num_tokens <= 8192 else 4096)  # N = 4,608 on an H200: 53 us against 65 us at 4,096
    num_blocks = triton.cdiv(num_tokens, block_j)
    col_min = torch.empty(batch, num_tokens, dtype=torch.float32, device=g.device)
    row_part = torch.empty(batch, num_blocks, num_tokens, dtype=torch.float32, device=g.device)
    _first_scores_kernel[(num_blocks, batch)](
        g,
        inv_norms,
        col_min if valid is None else valid.to(torch.int8),
        col_min,
        row_part,
        num_tokens,
        num_tokens * num_tokens,
        num_blocks,
        BLOCK_I=tile // block_j,
        BLOCK_J=block_j,
        HAS_MASK=valid is not None,
        num_warps=num_warps,
        enable_fp_fusion=False,
    )
    scores = torch.minimum(col_min, row_part.amin(dim=1), out=col_min)
    return scores if valid is None else scores.masked_fill_(~valid, float("-inf"))


@triton.jit
def _cosine_min_kernel(
    tokens_ptr,
    rows_ptr,
    inv_norm_ptr,
    row_min_ptr,
    col_min_ptr,
    M,
    N,
    D,
    max_offset,
    SYMMETRIC: tl.constexpr,
    IEEE: tl.constexpr,
    BLOCK: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """Minima of cosine distances between the (M) row tokens and all (N) tokens, never storing the distances.

    Each program multiplies one BLOCK x BLOCK tile of the Gram matrix on the tensor cores, turns it into distances
    with the same float32 operations as :func:`~.distance.cosine_from_gram`, and folds the tile's minima into
    ``col_min`` (and ``row_min``) with atomic minima: ``min`` is exact, so the order in which tiles land does not
    matter.

    SYMMETRIC (first-pick scores): the rows are all N tokens; only tiles on or below the diagonal run (d_ij is
    d_ji), each feeding its row minima to its rows and its column minima to its columns; the diagonal is excluded.
    Otherwise the rows are the tokens ``rows_ptr[0..M)`` and only ``col_min`` is written.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    if pid_n - pid_m <= max_offset:  # SYMMETRIC: max_offset 0, the lower triangle of tiles; else every tile
        offs = tl.arange(0, BLOCK)
        rm = pid_m * BLOCK + offs
        rn = pid_n * BLOCK + offs
        row_in = rm < M
        col_in = rn < N
        if SYMMETRIC:
            row_ids = rm
        else:
            row_ids = tl.load(rows_ptr + rm, mask=row_in, other=0)
        # Both operands are tiles of the same row-major tokens: the B tile is read as (BLOCK_K, BLOCK), still in
        # contiguous runs along D. Padding rows, columns and the tail of D load zeros and are skipped below.
        ks = tl.arange(0, BLOCK_K)
        a_ptrs = tokens_ptr + row_ids.to(tl.int64)[:, None] * D + ks[None, :]
        b_ptrs = tokens_ptr + rn.to(tl.int64)[None, :] * D + ks[:, None]
        acc = tl.zeros((BLOCK, BLOCK), tl.float32)
        for k in range(0, D, BLOCK_K):
            k_in = (k + ks) < D
            a = tl.load(a_ptrs + k, mask=row_in[:, None] & k_in[None, :], other=0.0)
            b = tl.load(b_ptrs + k, mask=k_in[:, None] & col_in[None, :], other=0.0)
            if IEEE:
                acc += tl.dot(a, b, input_precision="ieee")
            else:
                acc += tl.dot(a, b)
        inv_rows = tl.load(inv_norm_ptr + row_ids, mask=row_in, other=1.0)
        inv_cols = tl.load(inv_norm_ptr + rn, mask=col_in, other=1.0)
        # The float32 operations of cosine_from_gram in its order (no FMA contraction: enable_fp_fusion=False), so a
        # distance rounds as the PyTorch paths round it from the same Gram value; only the Gram value's own
        # accumulation order differs from cuBLAS's (a float32 near-tie may go either way, as between GEMM kernels).
        d = 1.0 - (acc * inv_rows[:, None]) * inv_cols[None, :]
        skip = ~row_in[:, None] | ~col_in[None, :]
        if SYMMETRIC:
            skip = skip | (rm[:, None] == rn[None, :])
            tl.atomic_min(row_min_ptr + rm, tl.min(tl.where(skip, float("inf"), d), axis=1), mask=row_in)
        tl.atomic_min(col_min_ptr + rn, tl.min(tl.where(skip, float("inf"), d), axis=0), mask=col_in)


@triton.jit
def _round_kernel(dist_ptr, start_ptr, out_ptr, count_ptr, outside, M, limit, BLOCK: tl.constexpr):
    """The greedy among M candidates (:func:`~.chunked.greedy_round`) in one program: the candidates' running
    minima stay in registers; the first pick is unconditional, each next one is taken while its key (running
    minimum, then lower index) beats ``outside``, the key of the best token left out (:func:`outside_key`). At most
    ``limit`` picks. Writes the picks to ``out`` and their number to ``count``."""
    offs = tl.arange(0, BLOCK)
    in_range = offs < M
    min_dist = tl.load(start_ptr + offs, mask=in_range, other=float("-inf"))
    key = tl.max(_score_keys(min_dist, offs), axis=0)
    step = 0
    go = step < limit
    while go:
        pick = _index_of(key)
        tl.store(out_ptr + step, pick)
        row = tl.load(dist_ptr + pick.to(tl.int64) * M + offs, mask=in_range, other=0.0)
        min_dist = tl.minimum(min_dist, row)
        min_dist = tl.where(offs == pick, float("-inf"), min_dist)
        key = tl.max(_score_keys(min_dist, offs), axis=0)
        step += 1
        go = (step < limit) & (key > outside)
    tl.store(count_ptr, step)


#: Tile edge and depth of :func:`_cosine_min_kernel` (tokens per tile side, elements of D per step).
MIN_TILE, MIN_TILE_K = 128, 64


class FusedCosine:
    """The two passes of the matrix-free path over all N tokens (cosine, CUDA), as fused GEMM + minimum kernels.

    tokens: (N, D) float16, bfloat16 or float32 on CUDA, without exact duplicates (the caller checks: the kernels
    compute every distance from its formula, where copies must read 0).
    """

    def __init__(self, tokens: torch.Tensor) -> None:
        self.tokens = tokens.contiguous()
        self.inv = inverse_norms(self.tokens).float().contiguous()
        self.num_tokens, self.dim = self.tokens.shape

    def _launch(self, rows: torch.Tensor | None, row_min: torch.Tensor, col_min: torch.Tensor) -> None:
        num_rows = self.num_tokens if rows is None else rows.shape[0]
        grid = (triton.cdiv(num_rows, MIN_TILE), triton.cdiv(self.num_tokens, MIN_TILE))
        _cosine_min_kernel[grid](
            self.tokens,
            col_min if rows is None else rows,
            self.inv,
            row_min,
            col_min,
            num_rows,
            self.num_tokens,
            self.dim,
            0 if rows is None else grid[1],
            SYMMETRIC=rows is None,
            IEEE=self.tokens.dtype == torch.float32,
            BLOCK=MIN_TILE,
            BLOCK_K=MIN_TILE_K,
            num_warps=8,
            num_stages=3,
            enable_fp_fusion=False,
        )

    def first_pick_scores(self) -> torch.Tensor:
        """Each token's smallest distance to any other token, as :func:`~.greedy.first_pick_scores`. -> (N,)."""
        row_min = torch.full((self.num_tokens,), float("inf"), device=self.tokens.device)
        col_min = torch.full_like(row_min, float("inf"))
        self._launch(None, row_min, col_min)
        return torch.minimum(row_min, col_min, out=row_min)

    def column_minima(self, rows: torch.Tensor) -> torch.Tensor:
        """(N,) each token's smallest distance from the tokens at positions ``rows`` ((R,) int64)."""
        col_min = torch.full((self.num_tokens,), float("inf"), device=self.tokens.device)
        self._launch(rows.to(torch.int32).contiguous(), col_min, col_min)
        return col_min


def outside_key(tau: float, before: int) -> int:
    """The packed key of :func:`_score_keys` for a running minimum ``tau`` at candidate index ``before``: the best
    token left out of a round, placed among the candidates (one at an index below ``before`` beats it on a tie, one
    at ``before`` or above does not). ``tau`` is a float32 value."""
    bits = struct.unpack("<i", struct.pack("<f", tau))[0]
    bits = 0 if tau == 0.0 else bits  # -0.0 counts as +0.0
    bits ^= (bits >> 31) & 0x7FFFFFFF
    return (bits << 32) | (before ^ 0x7FFFFFFF)


def greedy_round_triton(dist: torch.Tensor, start: torch.Tensor, tau: float, before: int, limit: int) -> torch.Tensor:
    """:func:`~.chunked.greedy_round` in one Triton program (float32 on CUDA, at most MAX_REGISTER_TOKENS
    candidates; otherwise it runs the PyTorch loop). Returns (R,) int64 positions among the candidates."""
    num = start.shape[0]
    if num > MAX_REGISTER_TOKENS or dist.dtype != torch.float32:
        from .chunked import greedy_round

        return greedy_round(dist, start, tau, before, limit)
    out = torch.empty(min(limit, num), dtype=torch.int32, device=dist.device)
    count = torch.zeros(1, dtype=torch.int32, device=dist.device)
    block = max(triton.next_power_of_2(num), 128)
    warps = 4 if block <= 1024 else 8 if block <= 4096 else 16
    _round_kernel[(1,)](
        dist.contiguous(),
        start.contiguous(),
        out,
        count,
        outside_key(tau, before),
        num,
        min(limit, num),
        BLOCK=block,
        num_warps=warps,
        enable_fp_fusion=False,
    )
    return out[: int(count)].long()


def uses_gram(tokens: torch.Tensor, metric: str) -> bool:
    """Whether :func:`select_full_triton` works from the Gram matrix and inverse norms (cosine below float64)
    rather than from a distance matrix."""
    return metric == "cosine" and tokens.dtype != torch.float64


def select_full_triton(
    tokens: torch.Tensor,
    valid: torch.Tensor | None,
    counts: list[int],
    metric: str,
    inv_norms: torch.Tensor | None = None,
    gram_matrix: torch.Tensor | None = None,
    duplicates: PendingDuplicates | None = None,
    wait_for_checks: Callable[[], object] | None = None,
) -> torch.Tensor:
    """The full path on CUDA: (B, N, D) tokens -> (B, max(counts)) picks, as :mod:`.greedy` would pick them.

    ``valid``: (B, N) bool, or None when every token is valid. ``inv_norms`` (B, N): already computed inverse
    norms (cosine). ``gram_matrix`` (B, N, N): the tokens' Gram matrix if already computed (cosine).
    ``duplicates``: the search for exact duplicates if already queued (:func:`~.duplicates.find_duplicates`).
    ``wait_for_checks``: waits for the caller's queued input checks (raising for bad input) and hands their answer
    about duplicates to ``duplicates``; called after the first-pick scores of the Gram path are queued, so that
    the GPU computes them while the host waits (they are dropped if the tokens turn out to have duplicates).

    Tokens with exact duplicates run from the distance matrix with the duplicates resolved
    (:mod:`.duplicates`), as every other path does: the Gram kernels would see copies about 1e-7 apart.
    """
    early_scores = None
    if wait_for_checks is not None:
        if uses_gram(tokens, metric) and inv_norms is not None and gram_matrix is not None:
            early_scores = cosine_first_scores(gram_matrix.contiguous(), inv_norms.contiguous(), valid)
        wait_for_checks()
    first = (duplicates or find_duplicates(tokens, valid)).resolve()
    if uses_gram(tokens, metric) and first is None:
        inv = (inverse_norms(tokens) if inv_norms is None else inv_norms).contiguous()
        src = (gram(tokens, tokens) if gram_matrix is None else gram_matrix).contiguous()
        scores = cosine_first_scores(src, inv, valid) if early_scores is None else early_scores
    else:
        inv = None
        if uses_gram(tokens, metric) and gram_matrix is not None:
            norms = inverse_norms(tokens) if inv_norms is None else inv_norms
            src = resolved_cosine(gram_matrix, norms, first)
        else:
            src = merge_duplicates(formula_distance(tokens, metric, inv_norms), first).float().contiguous()
        scores = first_pick_scores(src, valid)
    return step_loop(src, inv, scores, counts)


def resolved_cosine(gram_matrix: torch.Tensor, inv_norms: torch.Tensor, first: torch.Tensor | None) -> torch.Tensor:
    """(B, N, N) float32 cosine distances from the Gram matrix (overwritten) and (B, N) inverse norms, with exact
    duplicates resolved (``first``: first occurrences, :mod:`.duplicates`): the full path's distances for tokens
    with copies, on the eager path and in its CUDA graph (:mod:`.graphs`) alike."""
    return merge_duplicates(cosine_from_gram(gram_matrix, inv_norms, inv_norms), first).float().contiguous()


StepKernel = Literal["auto", "cuda", "triton"]
STEP_KERNELS: tuple[str, ...] = ("auto", "cuda", "triton")


def step_loop(
    src: torch.Tensor,
    inv: torch.Tensor | None,
    scores: torch.Tensor,
    counts: list[int],
    kernel: StepKernel = "auto",
) -> torch.Tensor:
    """The greedy's steps on the GPU, in the launch shape that suits the rows: one program per row, or several
    cooperating programs per long row. src: (B, N, N) float32 distances, or the Gram matrix with ``inv`` (B, N)
    (cosine); scores: (B, N) first-pick scores. Returns (B, max(counts)) int64 picks, -1 padded. Launches only
    (no host sync), so it can be captured in a CUDA graph.

    ``kernel`` picks the long rows' cooperative kernel: ``"cuda"`` the CUDA C one (:mod:`._cuda`; raises where it
    cannot run), ``"triton"`` the Triton one, ``"auto"`` the CUDA C one where it can run, else Triton (with a
    warning the first time a compilation fails). Both pick the same tokens."""
    if kernel not in STEP_KERNELS:
        raise ValueError(f"kernel must be one of {STEP_KERNELS}; got {kernel!r}")
    batch, num_tokens = scores.shape
    # Triton's CPU interpreter runs programs one after another, so cooperating programs would wait forever there.
    shape = None
    if src.is_cuda:
        shape = cooperative_shape(num_tokens, device_properties(src.device).multi_processor_count)
    if shape is None or (batch > 1 and num_tokens <= MAX_REGISTER_TOKENS):
        if kernel == "cuda":
            raise ValueError(f"the CUDA C step loop runs on long rows of CUDA tokens (> {SINGLE_PROGRAM_MAX})")
        return greedy_triton(src, inv, scores, counts)
    # Long rows: one cooperative launch per row.
    if batch == 1:
        return _cooperative_row(src, inv, scores, counts[0], shape, kernel)
    picks = torch.full((batch, max(counts)), -1, dtype=torch.long, device=src.device)
    for row, count in enumerate(counts):
        row_inv = None if inv is None else inv[row : row + 1]
        row_picks = _cooperative_row(src[row : row + 1], row_inv, scores[row : row + 1], count, shape, kernel)
        picks[row, :count] = row_picks[0]
    return picks


def _cooperative_row(
    src: torch.Tensor,
    inv: torch.Tensor | None,
    scores: torch.Tensor,
    count: int,
    shape: tuple[int, int, int, int],
    kernel: StepKernel,
) -> torch.Tensor:
    """One long row's (1, count) picks from the CUDA C kernel or the Triton one (see :func:`step_loop`)."""
    from . import _cuda

    if kernel == "cuda":
        return _cuda.greedy_rounds_cuda(src, inv, scores, count)
    if kernel == "auto" and src.dtype == torch.float32 and _cuda.unavailable_reason(src.device) is None:
        launch = _cuda.launch_for(src.device, scores.shape[-1], count)
        if launch is not None:
            try:
                return _cuda.greedy_rounds_cuda(src, inv, scores, count, launch)
            except _cuda.CudaKernelError as error:
                _cuda.warn_fallback(error)
    return greedy_triton_cooperative(src, inv, scores, count, *shape)
