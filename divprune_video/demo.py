"""``divprune-video demo``: video question answering with DivPrune on an embedded default.

By default: a generated sample video (coloured shapes moving over a dark background, written to a temporary MP4
when PyAV is installed, else kept in memory) and the embedded tiny LLaVA-NeXT-Video, a random-weight model built
on the spot (no download). Its answers are gibberish: the point is the mechanics (which visual tokens reach the
LLM) and the cost (tokens, per-stage timings, unpruned vs pruned). ``--model ID_OR_PATH`` switches to a real
checkpoint of any supported family (e.g. llava-hf/LLaVA-NeXT-Video-7B-hf,
llava-hf/llava-onevision-qwen2-7b-ov-hf; ``--model tiny`` is the embedded one) and ``--video`` to your own video.

It prints the answer, how many visual tokens were kept (per frame) and the timings, and writes a PNG that lays
the kept tokens over the sampled frames (dropped tokens dimmed): divprune_demo.png in the system's temporary folder,
or --output. Bad arguments are refused before any model is built or video read.

``--tokens-only`` runs the selector alone on synthetic video-like tokens instead (no model): DivPrune vs uniform
and random on the Max-Min objective, with the selection time.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from .cli import argument_error, decoder_layers, device_problem, model_config, model_problem, resolved_model

DEFAULT_QUESTION = "What is happening in this video?"
#: Brightness of the dropped tokens in the overlay.
DIMMED = 0.35
GIBBERISH_NOTICE = (
    "Note: the embedded tiny model has random weights; its answers are gibberish. The point is "
    "the mechanics (which tokens reach the LLM) and the cost. Its timings are mostly fixed "
    "overheads; the savings show with a real model on a GPU (--model, divprune-video bench-model)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="answer a question about a sample video with DivPrune (embedded tiny model by default)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        default=None,
        metavar="tiny|ID|PATH",
        help="a checkpoint of a supported family (LLaVA-NeXT-Video, LLaVA-OneVision / LLaVA-Video; "
        "hub id or folder); default, or tiny: the embedded tiny random-weight LLaVA-NeXT-Video",
    )
    parser.add_argument("--video", default=None, help="a video file (default: a generated sample video)")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--frames", type=int, default=32, help="frames sampled from the video (default 32)")
    parser.add_argument(
        "--keep-ratio", type=float, default=0.15, help="fraction of tokens to keep, in (0, 1] (default 0.15)"
    )
    parser.add_argument(
        "--method",
        default="divprune",
        help="divprune, uniform, random, attention (needs --prune-layer >= 1), none (default divprune)",
    )
    parser.add_argument(
        "--prune-layer",
        type=int,
        default=0,
        help="0: before the LLM; K: after decoder layer K, below the model's layer count (default 0)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=24, help="answer length (default 24)")
    parser.add_argument(
        "--output",
        default=None,
        help="the PNG of kept tokens, in an existing folder (default: "
        "divprune_demo.png in the system's temporary folder)",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tokens-only", action="store_true", help="run the selector alone on synthetic tokens (no model, no video)"
    )
    parser.add_argument("--tokens-per-frame", type=int, default=144, help="--tokens-only: tokens per frame")
    parser.add_argument("--dim", type=int, default=1024, help="--tokens-only: token dimension (default 1024)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problem = check_arguments(args)
    if problem:
        return argument_error(problem)
    if args.tokens_only:
        return run_tokens_only(args)
    return run_video_qa(args)


def check_arguments(args: argparse.Namespace) -> Optional[str]:
    """The first bad argument, found before any work (for video QA the model's config is read, the model is not
    built), or None."""
    if args.frames < 1:
        return f"--frames must be at least 1; got {args.frames}"
    if not 0 < args.keep_ratio <= 1:
        return f"--keep-ratio must be in (0, 1]; got {args.keep_ratio:g}"
    if args.tokens_only and min(args.tokens_per_frame, args.dim) < 1:
        return f"--tokens-per-frame and --dim must be at least 1; got {args.tokens_per_frame} and {args.dim}"
    if args.max_new_tokens < 1:
        return f"--max-new-tokens must be at least 1; got {args.max_new_tokens}"
    return device_problem(args.device) or (None if args.tokens_only else _video_qa_problem(args))


def _video_qa_problem(args: argparse.Namespace) -> Optional[str]:
    from .models import NO_PRUNING
    from .selection import available_methods

    if args.video is not None and "://" not in args.video and not os.path.exists(args.video):
        return f"--video: no such file: {args.video}"
    output = output_path(args)
    if output.is_dir():
        return f"--output {args.output} is a folder; give the path of a .png file"
    if not output.parent.is_dir():
        return f"--output {args.output}: no such folder: {output.parent}"
    methods = [NO_PRUNING, *available_methods()]
    if args.method not in methods:
        return f"--method must be one of {', '.join(methods)}; got {args.method!r}"
    if args.method == "attention" and args.prune_layer == 0:
        return (
            "--method attention ranks tokens by the attention they get inside the LLM, so it needs "
            "--prune-layer 1 or more (FastV uses 2)"
        )
    return model_problem(args.model) or _prune_layer_problem(args)


def _prune_layer_problem(args: argparse.Namespace) -> Optional[str]:
    """--prune-layer against the model's decoder layers, read from its config (the model is not built)."""
    if args.prune_layer < 0:
        return f"--prune-layer must be 0 (before the LLM) or more; got {args.prune_layer}"
    try:
        layers = decoder_layers(model_config(resolved_model(args.model)))
    except ValueError as error:
        return str(error)
    if args.prune_layer >= layers:
        return f"--prune-layer {args.prune_layer} is beyond the model's {layers} decoder layers (0 to {layers - 1})"
    return None


def output_path(args: argparse.Namespace) -> Path:
    """Where the PNG goes: ``--output``, else divprune_demo.png in the system's temporary folder (never the
    repository)."""
    if args.output:
        return Path(args.output).expanduser()
    return Path(tempfile.gettempdir()) / "divprune_demo.png"


# -- video QA ----------------------------------------------------------------------------------------------------


def run_video_qa(args: argparse.Namespace) -> int:
    from .pipeline import VideoQAPipeline

    with tempfile.TemporaryDirectory(prefix="divprune-demo-") as workdir:
        video = args.video or sample_video(Path(workdir) / "sample.mp4", seed=args.seed)
        model = resolved_model(args.model)
        if model is None:
            from .testing import save_tiny_llava_next_video

            model = str(save_tiny_llava_next_video(Path(workdir) / "tiny-llava-next-video", seed=args.seed))
            print(GIBBERISH_NOTICE)
        pipeline = VideoQAPipeline(
            model,
            keep_ratio=args.keep_ratio,
            method=args.method,
            prune_layer=args.prune_layer,
            num_frames=args.frames,
            device=args.device,
            seed=args.seed,
        )
        frames, decode_seconds = pipeline.load_frames(video)
        encoded = pipeline.encode(frames)
        generation = {"max_new_tokens": args.max_new_tokens, "do_sample": False}
        unpruned = VideoQAPipeline(pipeline.adapter, method="none")(encoded, args.question, **generation)
        result = pipeline(encoded, args.question, **generation)
    result.timings.update(decode=decode_seconds, encode=encoded.seconds)
    unpruned.timings.update(decode=decode_seconds, encode=encoded.seconds)
    source = args.video or "generated sample video (coloured shapes)"
    print(
        f"\nvideo: {source}; {encoded.num_frames} frames x {encoded.tokens_per_frame} tokens "
        f"({encoded.grid[0]}x{encoded.grid[1]}) = {encoded.num_tokens} visual tokens"
    )
    print(f"question: {args.question}")
    print(
        f"\n{args.method} kept {result.num_kept} of {result.num_visual_tokens} visual tokens "
        f"({result.num_kept / result.num_visual_tokens:.0%}) at prune layer {args.prune_layer}"
    )
    print(f"kept per frame: {result.kept_per_frame()}")
    print(f"answer ({args.method}): {result.answer!r}")
    print(f"answer (unpruned): {unpruned.answer!r}")
    print("\n" + format_timings({"unpruned": unpruned.timings, args.method: result.timings}))
    output = output_path(args)
    overlay_kept_tokens(frames, result.kept_indices, encoded.grid).save(output)
    print(f"\nwrote {output.resolve()}: the sampled frames with the kept tokens bright and the dropped ones dimmed")
    return 0


def sample_video(path: Path, num_frames: int = 96, fps: int = 24, *, seed: int = 0) -> Any:
    """A generated sample video (:func:`~divprune_video.testing.moving_shapes_video`): written to ``path`` as MP4
    when PyAV can, else returned as (T, H, W, 3) frames in memory."""
    from .testing import moving_shapes_video

    frames = moving_shapes_video(num_frames, 192, 256, seed=seed)
    try:
        import av
    except ImportError:
        return frames
    try:
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("mpeg4", rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            for frame in frames:
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            container.mux(stream.encode(None))
    except (av.error.FFmpegError, OSError, ValueError):
        return frames
    return path


def format_timings(timings: dict[str, dict[str, float]]) -> str:
    """A small table of per-stage milliseconds, one column per run."""
    stages = ["decode", "encode", "select", "prefill", "generate"]
    names = list(timings)
    lines = [f"{'ms':<22}" + "".join(f"{name:>12}" for name in names)]
    for stage in stages:
        lines.append(f"{stage:<22}" + "".join(f"{1e3 * timings[name][stage]:>12.1f}" for name in names))
    first = {name: sum(timings[name][stage] for stage in stages[:4]) for name in names}
    lines.append(f"{'time to first token':<22}" + "".join(f"{1e3 * first[name]:>12.1f}" for name in names))
    return "\n".join(lines)


def overlay_kept_tokens(
    frames: np.ndarray, kept_indices: torch.Tensor, grid: Sequence[int], *, tile: int = 144, columns: int = 8
) -> Any:
    """A PIL image of the frames in a grid, each the centre square the model sees, with the kept visual tokens
    outlined and the dropped ones dimmed.

    frames: (T, H, W, 3) uint8; kept_indices: (k,) indices into the T * rows * cols visual tokens (frame-major);
    grid: (rows, cols) tokens per frame.
    """
    from PIL import Image, ImageDraw

    num_frames, rows, cols = frames.shape[0], int(grid[0]), int(grid[1])
    kept = np.zeros(num_frames * rows * cols, dtype=bool)
    kept[np.asarray(kept_indices, dtype=np.int64)] = True
    kept = kept.reshape(num_frames, rows, cols)
    columns = min(columns, num_frames)
    canvas = Image.new("RGB", (columns * (tile + 4) + 4, math.ceil(num_frames / columns) * (tile + 4) + 4), "white")
    for index, frame in enumerate(frames):
        side = min(frame.shape[:2])
        top, left = (frame.shape[0] - side) // 2, (frame.shape[1] - side) // 2
        square = np.asarray(Image.fromarray(frame[top : top + side, left : left + side]).resize((tile, tile)))
        cell_h, cell_w = tile / rows, tile / cols
        mask = np.repeat(np.repeat(kept[index], math.ceil(cell_h), 0), math.ceil(cell_w), 1)[:tile, :tile]
        shaded = np.where(mask[..., None], square, (square * DIMMED).astype(np.uint8))
        image = Image.fromarray(shaded)
        draw = ImageDraw.Draw(image)
        for row, col in zip(*np.nonzero(kept[index])):
            draw.rectangle(
                [col * cell_w, row * cell_h, (col + 1) * cell_w - 1, (row + 1) * cell_h - 1], outline=(80, 255, 120)
            )
        canvas.paste(image, (4 + (index % columns) * (tile + 4), 4 + (index // columns) * (tile + 4)))
    return canvas


# -- selection only ----------------------------------------------------------------------------------------------


def run_tokens_only(args: argparse.Namespace) -> int:
    """DivPrune on synthetic video-like tokens (three scenes), compared with uniform and random selection on the
    Max-Min objective, with the time the selection took. No model, no download, no GPU needed."""
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
        elapsed_ms, kept = _timed_select(selector, tokens, num_keep, device)
        per_scene = torch.bincount(scenes[kept.cpu()], minlength=int(scenes.max()) + 1).tolist()
        rows.append((method, min_pairwise_distance(tokens, kept), elapsed_ms, per_scene))
    print(f"\n{'method':<10} {'min pairwise cos dist':>22} {'time ms':>9}   kept per scene")
    for method, objective, elapsed_ms, per_scene in rows:
        print(f"{method:<10} {objective:>22.4f} {elapsed_ms:>9.2f}   {per_scene}")
    kept = get_selector("divprune").select(tokens, num_keep).cpu()
    per_frame = torch.bincount(kept // args.tokens_per_frame, minlength=args.frames).tolist()
    print(f"\nDivPrune ({plan.path} path, {plan.backend} backend) kept per frame: {per_frame}")
    return 0


def _timed_select(selector: Any, tokens: torch.Tensor, num_keep: int, device: str) -> tuple[float, torch.Tensor]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    kept = selector.select(tokens, num_keep)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 1e3 * (time.perf_counter() - start), kept
