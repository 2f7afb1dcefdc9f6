#!/usr/bin/env python3
"""Developer profiling of a family's video encode on a GPU (its 7B architecture, random weights), stage by stage.

    python scripts/profile_encode.py --model-type llava_onevision [--frames 32]

Times frame preprocessing (CPU then copy, or on the GPU), the stock ``get_video_features`` (transformers' own path),
the adapter's ``encode_frames``, the vision tower alone, and a torch.profiler table of the stock path's GPU kernels;
prints how far the adapter's tokens are from the stock ones. Not a test; see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from divprune_video.models.benchmark import _to_device
from divprune_video.models.presets import reference_adapter


def timed(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall milliseconds of ``fn`` with the GPU synchronized around each call (after one warm-up)."""
    fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


def kernel_table(fn: Callable[[], object], rows: int = 25) -> str:
    """The GPU kernels of one call of ``fn``, by total time."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=70)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="llava_onevision")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--source-size", default="448x448", help="HxW of the decoded frames (default 448x448)")
    args = parser.parse_args()
    device = torch.device("cuda")
    stock = reference_adapter(args.model_type, device, fast_vision=False)
    model = stock.model
    height, width = (int(value) for value in args.source_size.split("x"))
    stock.frame_preprocessor = stock.sized_frame_preprocessor(height, width, args.frames) or stock.frame_preprocessor
    print(
        f"# {torch.cuda.get_device_name(device)}; {args.model_type}; vision attention: "
        f"{model.config.vision_config._attn_implementation}; torch {torch.__version__}; {args.frames} frames "
        f"{height}x{width}"
    )
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8)
    pixels = _to_device(stock.frame_preprocessor(frames, device=device), device, model.dtype)
    with torch.inference_mode():
        # Stock first: a fast adapter may replace modules of the shared model in place.
        rows = [
            (
                "preprocess on the CPU + copy",
                timed(lambda: _to_device(stock.frame_preprocessor(frames), device, model.dtype)),
            ),
            ("preprocess on the GPU", timed(lambda: stock.frame_preprocessor(frames, device=device))),
            ("stock video_tokens (transformers' path)", timed(lambda: stock.video_tokens(pixels))),
            ("stock encode_frames", timed(lambda: stock.encode_frames(frames))),
        ]
        theirs = stock.video_tokens(pixels).features
        stock_kernels = kernel_table(lambda: stock.video_tokens(pixels))
        adapter = type(stock)(model, frame_preprocessor=stock.frame_preprocessor)
        rows += [
            ("fast video_tokens", timed(lambda: adapter.video_tokens(pixels))),
            ("fast encode_frames (preprocessing included)", timed(lambda: adapter.encode_frames(frames))),
        ]
        ours = adapter.video_tokens(pixels).features
        error = float((ours.float() - theirs.float()).norm() / theirs.float().norm())
        print("| stage | ms |\n|---|---:|")
        for name, ms in rows:
            print(f"| {name} | {ms:.1f} |")
        print(f"\nfast vs stock tokens: relative error {error:.2e}, {ours.shape[0]} tokens")
        print("\n# stock video_tokens, GPU kernels by total time")
        print(stock_kernels)
        print("\n# fast video_tokens, GPU kernels by total time")
        print(kernel_table(lambda: adapter.video_tokens(pixels)))


if __name__ == "__main__":
    main()
