#!/usr/bin/env python3
"""Developer profiling of the selector on a GPU: device ceilings, per-phase times, kernel variants.

    python scripts/profile_selection.py [--sizes 4608,36864] [--dim 4096]

Prints a table per size: validation+norms, Gram, first-pick scores, step loop (per num_warps), and the whole
divprune() call, with the floor each phase has from the measured ceilings. Not a test; see notes/selection-perf.md.
"""

from __future__ import annotations

import argparse

import torch
import triton
import triton.language as tl
import triton.testing

from divprune_video import divprune
from divprune_video.selection import _triton
from divprune_video.selection._validate import check_finite
from divprune_video.selection.distance import gram, inverse_norms


@triton.jit
def _probe_kernel(src_ptr, out_ptr, N, count, BLOCK_N: tl.constexpr, DEPENDENT: tl.constexpr):
    """The step loop's skeleton: load a row, min-update, packed-key max. DEPENDENT=False loads row ``step`` instead
    of the picked row, so the load address no longer waits on the reduction: the gap is the exposed latency."""
    offs = tl.arange(0, BLOCK_N)
    in_range = offs < N
    min_dist = tl.full([BLOCK_N], float("inf"), tl.float32)
    pick = 0
    for step in range(1, count):
        row_index = pick if DEPENDENT else step
        row = tl.load(src_ptr + row_index.to(tl.int64) * N + offs, mask=in_range, other=0.0)
        min_dist = tl.where(offs == pick, float("-inf"), tl.minimum(min_dist, row))
        pick = _triton._index_of(tl.max(_triton._score_keys(min_dist, offs), axis=0))
        tl.store(out_ptr + step, pick)


def bench(fn, rep_ms: float = 200) -> float:
    return triton.testing.do_bench(fn, warmup=25, rep=rep_ms, return_mode="median")


def ceilings() -> tuple[float, float]:
    src = torch.randn(2**28, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = bench(lambda: dst.copy_(src))
    bandwidth = 2 * src.numel() * 4 / copy_ms / 1e9  # TB/s, read + write
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    gemm_ms = bench(lambda: a @ a)
    tflops = 2 * 8192**3 / gemm_ms / 1e9
    src = dst = a = None  # free them before empty_cache (not del: the lambdas above read the names)
    torch.cuda.empty_cache()
    return bandwidth, tflops


def profile(num_tokens: int, dim: int, bandwidth: float, tflops: float) -> None:
    tokens = torch.randn(num_tokens, dim, device="cuda", dtype=torch.float16)
    k = round(0.15 * num_tokens)
    batch = tokens.unsqueeze(0)
    valid = torch.ones(1, num_tokens, dtype=torch.bool, device="cuda")
    inv = inverse_norms(batch).contiguous()
    g = gram(batch, batch).contiguous()
    scores = _triton.cosine_first_scores(g, inv, valid)
    rows = [
        (
            "check_finite + inverse norms",
            bench(lambda: (check_finite(tokens), inverse_norms(tokens))),
            2 * num_tokens * dim / bandwidth / 1e9,
        ),
        (
            "Gram (fp16 in, fp32 out)",
            bench(lambda: gram(batch, batch)),
            max(2 * num_tokens**2 * dim / tflops / 1e9, 4 * num_tokens**2 / bandwidth / 1e9),
        ),
        (
            "first-pick scores",
            bench(lambda: _triton.cosine_first_scores(g, inv, valid)),
            4 * num_tokens**2 / bandwidth / 1e9,
        ),
    ]
    for block_j, tile, warps in ((32, 4096, 4), (64, 4096, 4), (64, 8192, 8), (128, 8192, 8), (256, 8192, 8)):
        same = torch.equal(_triton.cosine_first_scores(g, inv, valid, block_j, tile, warps), scores)
        ms = bench(
            lambda block_j=block_j, tile=tile, warps=warps: _triton.cosine_first_scores(
                g, inv, valid, block_j, tile, warps
            )
        )
        rows.append((f"first-pick scores block_j={block_j} tile={tile} warps={warps} same={same}", ms, None))
    reference = _triton.greedy_triton(g, inv, scores, [k])
    # (tokens per program, warps, candidates per program, rows per update load)
    shapes = ((512, 4, 3, 8), (512, 4, 2, 8), (512, 4, 6, 8), (1024, 4, 6, 8), (1024, 8, 3, 8), (2048, 8, 3, 4))
    shapes += ((4096, 16, 3, 4), (2048, 8, 1, 4))
    for block, warps, top, group in shapes:
        programs = triton.cdiv(num_tokens, block)
        if programs > torch.cuda.get_device_properties(0).multi_processor_count or programs * top > 64:
            continue
        try:
            picks = _triton.greedy_triton_cooperative(g, inv, scores, k, block, warps, top, group)
            same = torch.equal(picks, reference)
            ms = bench(
                lambda block=block, warps=warps, top=top, group=group: _triton.greedy_triton_cooperative(
                    g, inv, scores, k, block, warps, top, group
                )
            )
            label = f"cooperative {programs}x{block}, {warps} warps, {top} candidates each, update {group} rows"
            rows.append((f"{label} ({1e3 * ms / k:.2f} us/pick, same={same})", ms, None))
        except Exception as error:
            rows.append(
                (f"cooperative {block}/{warps}/{top}: {type(error).__name__}: {error}"[:200], float("nan"), None)
            )
    out = torch.empty(k, dtype=torch.int32, device="cuda")
    if num_tokens <= 16384:
        block = triton.next_power_of_2(num_tokens)
        for dependent in (True, False):
            ms = bench(
                lambda dependent=dependent: _probe_kernel[(1,)](
                    g, out, num_tokens, k, BLOCK_N=block, DEPENDENT=dependent, num_warps=16
                )
            )
            rows.append((f"probe: dependent={dependent} ({1e3 * ms / k:.2f} us/step)", ms, None))
    for warps in (8, 16, 32):
        try:
            picks = _triton.greedy_triton(g, inv, scores, [k], num_warps=warps)
            same = torch.equal(picks, reference)
            ms = bench(lambda warps=warps: _triton.greedy_triton(g, inv, scores, [k], num_warps=warps))
            rows.append((f"step loop, {warps} warps ({1e3 * ms / k:.2f} us/step, same={same})", ms, None))
        except Exception as error:  # a variant that does not compile is reported, not fatal
            rows.append((f"step loop, {warps} warps: {type(error).__name__}", float("nan"), None))
    rows.append(("divprune() total", bench(lambda: divprune(tokens, num_keep=k)), None))
    print(f"\nN={num_tokens:,} D={dim} k={k} fp16 (default launch: {_triton._launch_shape(num_tokens)})")
    print("| phase | ms | floor ms |\n|---|---:|---:|")
    for name, ms, floor in rows:
        print(f"| {name} | {ms:.3f} | {'' if floor is None else f'{floor:.3f}'} |")
    g = tokens = None  # free them (not del: the lambdas above read the names)
    torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="4608,36864")
    parser.add_argument("--dim", type=int, default=4096)
    args = parser.parse_args()
    print(torch.cuda.get_device_name(), "torch", torch.__version__, "triton", triton.__version__)
    bandwidth, tflops = ceilings()
    print(f"ceilings: copy {bandwidth:.2f} TB/s (read+write), fp16 GEMM {tflops:.0f} TFLOP/s")
    for size in args.sizes.split(","):
        profile(int(size), args.dim, bandwidth, tflops)


if __name__ == "__main__":
    main()
