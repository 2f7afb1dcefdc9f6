#!/usr/bin/env python3
"""Developer profiling of the matrix-free path's rounds (selection/chunked.py) on a GPU.

    python scripts/profile_rounds.py [--sizes 147456,589824] [--candidates 2048,4096,8192,16384] [--limit-gib 80]

For each size and candidate count: the whole selection's time, the first-pick pass, the rounds (how many, picks
per round, time in the round greedy and in the update passes), and the floor of the design from the measured
fp16 GEMM rate. Random fp16 tokens (as bench-select), D = 4096, keep 15%. Not a test; see notes/selection-perf.md.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from divprune_video.selection import chunked
from divprune_video.selection.duplicates import first_occurrences


def gemm_rate(device: torch.device) -> float:
    """Measured dense fp16 GEMM FLOP/s (8192^3, fp32 output as the selector uses)."""
    a = torch.randn(8192, 8192, device=device, dtype=torch.float16)
    torch.mm(a, a.t(), out_dtype=torch.float32)
    torch.cuda.synchronize()
    begin = time.perf_counter()
    for _ in range(10):
        torch.mm(a, a.t(), out_dtype=torch.float32)
    torch.cuda.synchronize()
    return 10 * 2 * 8192**3 / (time.perf_counter() - begin)


def make_tokens(kind: str, size: int, dim: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(size)
    if kind == "random":
        return torch.randn(size, dim, generator=generator)
    if kind == "clustered":
        centers = torch.randn(512, dim, generator=generator)
        which = torch.randint(512, (size,), generator=generator)
        return centers[which] + 0.3 * torch.randn(size, dim, generator=generator)
    frames = torch.randn(64, 144, dim, generator=generator)
    order = torch.randint(64, (size // 144,), generator=generator)
    return frames[order].reshape(-1, dim)


def profile(tokens: torch.Tensor, count: int, candidates: int) -> dict:
    timings: dict = {"round": [], "update": [], "picks": []}
    original_round, lower = chunked._round_function, chunked._lower_minima
    run_round = original_round(True)

    def timed_round(dist, start, tau, before, limit):
        torch.cuda.synchronize()
        begin = time.perf_counter()
        out = run_round(dist, start, tau, before, limit)
        torch.cuda.synchronize()
        timings["round"].append(time.perf_counter() - begin)
        timings["picks"].append(len(out))
        return out

    def timed_update(*args):
        torch.cuda.synchronize()
        begin = time.perf_counter()
        lower(*args)
        torch.cuda.synchronize()
        timings["update"].append(time.perf_counter() - begin)

    fused = chunked._fused_cosine(tokens, "cosine", first_occurrences(tokens))  # over the distinct tokens
    fused.first_pick_scores()  # compile
    torch.cuda.synchronize()
    begin = time.perf_counter()
    fused.first_pick_scores()
    torch.cuda.synchronize()
    timings["first"] = time.perf_counter() - begin
    chunked._round_function, chunked._lower_minima = (lambda _tokens: timed_round), timed_update
    try:
        picks = chunked.select_in_rounds(tokens, count, "cosine", candidates=candidates, use_triton=True)
    finally:
        chunked._round_function, chunked._lower_minima = original_round, lower
    torch.cuda.synchronize()
    begin = time.perf_counter()
    again = chunked.select_in_rounds(tokens, count, "cosine", candidates=candidates, use_triton=True)
    torch.cuda.synchronize()
    timings["total"] = time.perf_counter() - begin
    timings["same"] = bool(torch.equal(picks, again))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="147456,589824")
    parser.add_argument("--candidates", default="2048,4096,8192,16384")
    parser.add_argument("--dim", type=int, default=4096)
    parser.add_argument("--limit-gib", type=float, default=80.0)
    parser.add_argument(
        "--kind",
        default="random",
        choices=["random", "clustered", "static"],
        help="random normal tokens; 512 clusters; or a video of 144-token frames that repeat 64 distinct frames "
        "(exact duplicates: the fused passes run over the distinct tokens)",
    )
    args = parser.parse_args()
    device = torch.device("cuda")
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, args.limit_gib * 2**30 / total))
    rate = gemm_rate(device)
    print(
        f"# {torch.cuda.get_device_name()}, fp16 GEMM {rate / 1e12:.0f} TFLOP/s, limit {args.limit_gib} GiB, "
        f"{args.kind} tokens"
    )
    print(
        "| N | candidates | total s | first-pick s | rounds | picks/round (median) | round greedy s | updates s |"
        " peak GiB | floor s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        tokens = make_tokens(args.kind, size, args.dim).to(device, torch.float16)
        count = round(0.15 * size)
        floor = (size * size * args.dim + 2 * size * count * args.dim) / rate  # lower triangle + round updates
        for candidates in (int(c) for c in args.candidates.split(",")):
            torch.cuda.reset_peak_memory_stats()
            t = profile(tokens, count, candidates)
            peak = torch.cuda.max_memory_allocated() / 2**30
            print(
                f"| {size:,} | {candidates:,} | {t['total']:.3f} | {t['first']:.3f} | {len(t['picks'])} | "
                f"{statistics.median(t['picks']):.0f} | {sum(t['round']):.3f} | {sum(t['update']):.3f} | "
                f"{peak:.1f} | {floor:.3f} |",
                flush=True,
            )
        del tokens
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
