"""``divprune-video demo``: the main job on an embedded default.

For now: DivPrune on synthetic video-like tokens (32 frames x 144 tokens, three scenes), compared with uniform and
random selection on the Max-Min objective, with the time the selection took. No download, no GPU needed.
"""

from __future__ import annotations

import argparse
import time

import torch


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run DivPrune on an embedded default and print what it kept and how fast",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=32, help="number of frames (default 32)")
    parser.add_argument("--tokens-per-frame", type=int, default=144, help="visual tokens per frame (default 144)")
    parser.add_argument("--dim", type=int, default=1024, help="token dimension (default 1024)")
    parser.add_argument("--keep-ratio", type=float, default=0.15, help="fraction of tokens to keep (default 0.15)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .selection import get_selector, min_pairwise_distance, plan_selection
    from .testing import synthetic_video_tokens

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokens, scenes = synthetic_video_tokens(args.frames, args.tokens_per_frame, args.dim, seed=args.seed)
    tokens = tokens.to(device=device, dtype=torch.float16 if device.startswith("cuda") else torch.float32)
    num_tokens = tokens.shape[0]
    num_keep = max(1, round(args.keep_ratio * num_tokens))
    plan = plan_selection(tokens)
    print(
        f"DivPrune demo: {args.frames} frames x {args.tokens_per_frame} tokens = {num_tokens} synthetic visual "
        f"tokens of dimension {args.dim} ({tokens.dtype}, {device}), three scenes; keep {num_keep} "
        f"({args.keep_ratio:.0%})"
    )
    rows = []
    for method in ("divprune", "uniform", "random"):
        selector = get_selector(method)
        selector.select(tokens, num_keep)  # warm-up (kernel compilation, allocator)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        kept = selector.select(tokens, num_keep)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed_ms = 1e3 * (time.perf_counter() - start)
        per_scene = torch.bincount(scenes[kept.cpu()], minlength=int(scenes.max()) + 1).tolist()
        rows.append((method, min_pairwise_distance(tokens, kept), elapsed_ms, per_scene))
    print(f"\n{'method':<10} {'min pairwise cos dist':>22} {'time ms':>9}   kept per scene")
    for method, objective, elapsed_ms, per_scene in rows:
        print(f"{method:<10} {objective:>22.4f} {elapsed_ms:>9.2f}   {per_scene}")
    kept = get_selector("divprune").select(tokens, num_keep).cpu()
    per_frame = torch.bincount(kept // args.tokens_per_frame, minlength=args.frames).tolist()
    print(f"\nDivPrune ({plan.path} path, {plan.backend} backend) kept per frame: {per_frame}")
    return 0
