#!/usr/bin/env python3
"""Developer profiling of LLaVA-NeXT-Video-7B's time to first token on a GPU (random weights), stage by stage.

    python scripts/profile_model.py [--frames 32] [--keep 0.15]

Prints where the encode time goes (frame preprocessing on the CPU or the GPU, host-to-device copy, vision tower,
pooling + projector) and where the in-model selection time goes (the selector on the visual tokens against the
whole pruning step, and a torch.profiler table of the pruned generate call). Not a test; see BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import numpy as np
import torch

from divprune_video import divprune
from divprune_video.models.base import PruningConfig
from divprune_video.models.benchmark import TEXT_ID, prompt_ids
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


def timeline(fn: Callable[[], object], label: str) -> None:
    """Print the CPU ops and GPU kernels of one call of ``fn`` in start order, in microseconds from its start."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    events = sorted(prof.events(), key=lambda event: event.time_range.start)
    origin = events[0].time_range.start
    print(f"# timeline of {label}")
    for event in events:
        kind = "GPU" if event.device_type.name == "CUDA" else "cpu"
        if kind == "cpu" and event.cpu_parent is not None:
            continue  # top-level CPU ops only
        print(
            f"  {kind} {event.time_range.start - origin:9.1f} +{event.time_range.elapsed_us():8.1f} us  "
            f"{event.name[:90]}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--keep", type=float, default=0.15)
    args = parser.parse_args()
    device = torch.device("cuda")
    adapter = reference_adapter("llava_next_video", device)
    model = adapter.model
    vision = model.model.vision_tower
    print(
        f"# {torch.cuda.get_device_name(device)}; vision attention: {vision.config._attn_implementation}; "
        f"text attention: {model.config.text_config._attn_implementation}"
    )
    size = int(adapter.config.vision_config.image_size)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, size, size, 3), dtype=np.uint8)
    pixels_cpu = adapter.frame_preprocessor(frames)
    pixels = pixels_cpu.to(device, torch.float16)
    rows = [
        ("encode_frames (whole)", timed(lambda: adapter.encode_frames(frames))),
        ("preprocess on CPU", timed(lambda: adapter.frame_preprocessor(frames))),
        ("copy float32 pixels to GPU", timed(lambda: pixels_cpu.to(device, torch.float16))),
        ("copy uint8 frames to GPU", timed(lambda: torch.from_numpy(frames).to(device))),
        ("get_video_features (GPU)", timed(lambda: adapter.video_features(pixels.unsqueeze(0)))),
        ("vision tower, all hidden states", timed(lambda: vision(pixels, output_hidden_states=True))),
        ("vision tower, no hidden states", timed(lambda: vision(pixels))),
    ]
    features = vision(pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    rows.append(
        (
            "pooling + projector",
            timed(lambda: model.model.multi_modal_projector(model.model.vision_resampler(features))),
        )
    )
    encoder = next(module for name, module in vision.named_modules() if name.endswith("encoder"))
    layers = encoder.layers
    encoder.layers = torch.nn.ModuleList(list(layers)[:-1])
    rows.append(("vision tower, last layer skipped", timed(lambda: vision(pixels, output_hidden_states=True))))
    encoder.layers = layers
    flops = 2 * args.frames * 577 * sum(p.numel() for p in vision.parameters())
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} ms |")
    print(f"# vision tower ~{flops / 1e12:.1f} TFLOP of weight matmuls")

    video = adapter.encode_frames(frames)
    ids, mask = prompt_ids(adapter.placeholder_ids(video, TEXT_ID), 80)
    pruning = PruningConfig(keep_ratio=args.keep, method="divprune", prune_layer=0)
    tokens = video.features.contiguous()
    num_keep = pruning.num_keep(video.num_tokens)
    print(
        f"| divprune on the {tuple(tokens.shape)} {tokens.dtype} tokens | "
        f"{timed(lambda: divprune(tokens, num_keep=num_keep)):.3f} ms |"
    )
    timeline(lambda: divprune(tokens, num_keep=num_keep), "divprune")
    rows = []
    mask_row = (ids[0] == adapter.video_token_id).to(device)
    states = torch.cat(
        [
            torch.zeros(1, 40, tokens.shape[1], device=device, dtype=tokens.dtype),
            tokens.unsqueeze(0),
            torch.zeros(1, 40, tokens.shape[1], device=device, dtype=tokens.dtype),
        ],
        1,
    )
    positions = mask_row.nonzero().squeeze(1)
    from divprune_video.models.decoder_pruning import select_visual_tokens

    rows.append(("visual_mask.nonzero()", timed(lambda: mask_row.nonzero())))
    rows.append(("states[row, positions]", timed(lambda: states[0, positions])))
    rows.append(("select_visual_tokens", timed(lambda: select_visual_tokens(states[0, positions], pruning))))
    for name, ms in rows:
        print(f"| {name} | {ms:.3f} ms |")
    runs = []
    for _ in range(5):
        result = adapter.generate_from_ids(ids, mask, [video], pruning, max_new_tokens=1, do_sample=False)
        runs.append(result.timings)
    print(f"| in-model select | {1e3 * statistics.median(r['select'] for r in runs):.3f} ms |")
    print(f"| in-model prefill | {1e3 * statistics.median(r['prefill'] for r in runs):.3f} ms |")
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        adapter.generate_from_ids(ids, mask, [video], pruning, max_new_tokens=1, do_sample=False)
    print(prof.key_averages().table(sort_by="cpu_time_total", row_limit=40))
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        adapter.encode_frames(frames)
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25))


if __name__ == "__main__":
    main()
