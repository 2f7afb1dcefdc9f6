"""``divprune-video bench-model``: time to first token and peak memory of a model family's 7B, unpruned and pruned.

The family's real 7B architecture (``--model-type``: LLaVA-NeXT-Video-7B, LLaVA-OneVision-7B, ...) built from its
configuration with random weights (nothing is downloaded; the compute does not depend on the weight values),
float16 on CUDA. For each frame count: plain transformers unpruned (the first row: frames preprocessed on the CPU,
as the video processors do by default, then ``generate(pixel_values_videos=...)``), this project's unpruned path,
then each keep ratio at each prune layer, all in one process, with the selector's share of the time to first token.

Time to first token = encode (preprocessing, vision tower, pooling, projector) + selection + prefill (the LLM's
first forward pass, producing the first token's logits). Extra peak memory = the peak allocated during
``generate(max_new_tokens=1)`` above what was allocated before it (weights and visual tokens).

``--tiny`` runs the same on the family's tiny test model on the CPU in seconds (a smoke test, not a measurement);
it is the default on a machine without a CUDA device (unless ``--device`` is given).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from ..harness import add_common_options, command_line, device_name, write_json
from .bench_decoding import (
    AGREEMENT_PROMPTS,
    DecodeRow,
    SharedRow,
    agreement,
    format_decoding,
    format_shared,
    measure_compiled,
    measure_path,
    measure_shared,
    prompts_after_video,
)
from .context import ContextLengthError
from .presets import build_model

logger = logging.getLogger(__name__)
#: The text token id used inside a video's span (timestamps) in prompts built without a tokenizer.
TEXT_ID = 200


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..cli import int_list

    parser = subparsers.add_parser(
        "bench-model",
        help="GPU: time to first token and peak memory of a family's 7B, plain transformers vs pruned (random "
        "weights; without CUDA: the tiny model on the CPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-type",
        default="llava_next_video",
        help="the model family's transformers model_type (default llava_next_video; "
        "see divprune_video.models.available_adapters())",
    )
    parser.add_argument(
        "--frames", type=int_list, default=None, help="comma-separated frame counts (default 32,64; tiny: 2,4)"
    )
    parser.add_argument("--keep", default="0.5,0.25,0.15", help="comma-separated keep ratios (default 0.5,0.25,0.15)")
    parser.add_argument(
        "--prune-layers", type=int_list, default=[0, 2], help="comma-separated prune layers (default 0,2)"
    )
    parser.add_argument("--method", default="divprune", help="selection method (default divprune)")
    parser.add_argument("--text-tokens", type=int, default=80, help="text tokens around the video (default 80)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the family's tiny test model on the CPU (smoke test; "
        "the default when there is no CUDA device and no --device)",
    )
    add_common_options(
        parser,
        device_help="default: cuda (cpu with --tiny or without CUDA)",
        repeats=None,
        repeats_help="timed runs per row, median (default 3; tiny 1)",
    )
    parser.add_argument("--attn", default="sdpa", help="attention implementation (default sdpa)")
    parser.add_argument(
        "--frame-size",
        type=int,
        default=None,
        help="side of the square frames (default: the vision tower's input size, 448 for families of any resolution)",
    )
    parser.add_argument(
        "--pixels",
        choices=("keep", "default"),
        default="keep",
        help="families of any resolution (Qwen): keep the frames' size (default) or apply the "
        "processor's default pixel limits",
    )
    parser.add_argument(
        "--decode-tokens",
        type=int,
        default=16,
        help="new tokens per answer in the decoding tables (default 16; 0 skips them): ms per new "
        "token of generate() and of the static decoder, their greedy-token agreement, and a "
        "later question's time to first token on a shared video prefill",
    )
    parser.add_argument(
        "--compiled",
        action="store_true",
        help="also time transformers' own static cache + torch.compile decoding (CUDA; compiles "
        "first, which takes a while)",
    )
    parser.set_defaults(func=run)


@dataclass
class Row:
    """One measured configuration (times in milliseconds, memory in MiB; None where not measured).

    ``path``: ``"plain"`` (plain transformers, unpruned) or ``"ours"``; ``prune_layer`` None: unpruned."""

    frames: int
    path: str
    visual_tokens: int
    prune_layer: Optional[int]
    keep_ratio: float
    kept: int
    encode_ms: float
    select_ms: float
    prefill_ms: float
    peak_mib: Optional[float]

    @property
    def ttft_ms(self) -> float:
        return self.encode_ms + self.select_ms + self.prefill_ms


def run(args: argparse.Namespace) -> int:
    from ..cli import cpu_smoke_test_default
    from .base import PruningConfig
    from .registry import model_family

    cpu_smoke_test_default(args, "bench-model")
    family = model_family(args.model_type)
    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench-model needs a CUDA device (or --tiny for a CPU smoke test)", file=sys.stderr)
        return 2
    frame_counts = args.frames or ([2, 4] if args.tiny else [32, 64])
    keep_ratios = [float(value) for value in args.keep.split(",")]
    prune_layers = args.prune_layers
    repeats = args.repeats or (1 if args.tiny else 3)
    for keep_ratio, layer in [(ratio, layer) for ratio in keep_ratios for layer in prune_layers]:
        PruningConfig(keep_ratio=keep_ratio, method=args.method, prune_layer=layer)  # validate before building
    model, preprocessor = build_model(args.model_type, device, args.attn, tiny=args.tiny)
    stock = family.adapter(model, frame_preprocessor=preprocessor, fast_vision=False)  # leaves the model as built
    size = args.frame_size or native_frame_size(model.config)
    plain = {}
    for frames in frame_counts:
        _size_frames(stock, preprocessor, size, frames, args.pixels)
        plain[frames] = _measure_plain(stock, frames, size, args.text_tokens, repeats)
    adapter = family.adapter(model, frame_preprocessor=preprocessor)
    print(_header(args, device, adapter, family, size))
    rows: list[Row] = []
    decode_rows: list[DecodeRow] = []
    shared_rows: list[SharedRow] = []
    for frames in frame_counts:
        rows.append(plain[frames])
        _size_frames(adapter, preprocessor, size, frames, args.pixels)
        video, encode_ms = _encode(adapter, frames, size, repeats)
        ids, mask = prompt_ids(adapter.placeholder_ids(video, TEXT_ID), args.text_tokens)
        configs = [PruningConfig(method="none")] + [
            PruningConfig(keep_ratio=ratio, method=args.method, prune_layer=layer)
            for layer in prune_layers
            for ratio in keep_ratios
        ]
        measured = []
        for pruning in configs:
            try:
                select_ms, prefill_ms, peak = _measure(adapter, video, ids, mask, pruning, repeats)
            except ContextLengthError as error:  # e.g. 256 frames unpruned: recorded, and the other rows go on
                print(f"# {frames} frames, {_setting(pruning)}: not run: {error}", flush=True)
                continue
            measured.append(pruning)
            rows.append(
                Row(
                    frames,
                    "ours",
                    video.num_tokens,
                    pruning.prune_layer if pruning.enabled else None,
                    pruning.keep_ratio if pruning.enabled else 1.0,
                    pruning.num_keep(video.num_tokens),
                    encode_ms,
                    select_ms,
                    prefill_ms,
                    peak,
                )
            )
            logger.info("measured %s", rows[-1])
        if args.decode_tokens > 0:
            decoded = [configs[0]] + [
                PruningConfig(keep_ratio=min(keep_ratios), method=args.method, prune_layer=layer)
                for layer in prune_layers
            ]
            decoded = [pruning for pruning in decoded if pruning in measured]
            ttft = {(row.prune_layer, row.keep_ratio): row.ttft_ms for row in rows if row.frames == frames}
            _measure_decoding(
                args, adapter, video, ids, decoded, encode_ms, ttft, repeats, frames, decode_rows, shared_rows
            )
    print(format_table(rows))
    if decode_rows:
        print("\n" + format_decoding(decode_rows))
        print("\n" + format_shared(shared_rows))
    write_json(
        args.json_path,
        [{"table": "ttft", **dataclasses.asdict(row), "ttft_ms": row.ttft_ms} for row in rows]
        + [{"table": "decoding", **dataclasses.asdict(row)} for row in decode_rows]
        + [{"table": "shared prefill", **dataclasses.asdict(row)} for row in shared_rows],
    )
    return 0


def _measure_decoding(
    args: argparse.Namespace,
    adapter: Any,
    video: Any,
    ids: torch.Tensor,
    configs: list[Any],
    encode_ms: float,
    ttft: dict[Any, float],
    repeats: int,
    frames: int,
    decode_rows: list[DecodeRow],
    shared_rows: list[SharedRow],
) -> None:
    """The decoding rows of ``configs`` (see :mod:`.bench_decoding`), appended to ``decode_rows`` and
    ``shared_rows``."""
    tokens, cuda = args.decode_tokens, adapter.device.type == "cuda"
    mask = torch.ones_like(ids)
    prompts = prompts_after_video(ids, AGREEMENT_PROMPTS if cuda else 2, max(1, args.text_tokens // 2))
    for pruning in configs:
        setting = _setting(pruning)
        for mode in ("generate", "static"):
            per_token, answer_ms, sequences = measure_path(adapter, video, ids, mask, pruning, tokens, repeats, mode)
            agree, note = (
                ("-", "reference") if mode == "generate" else agreement(adapter, video, prompts, pruning, tokens, mode)
            )
            label = (
                "generate(), dynamic cache"
                if mode == "generate"
                else ("static cache + CUDA graphs" if cuda else "static cache (eager on the CPU)")
            )
            decode_rows.append(DecodeRow(frames, setting, label, per_token, encode_ms + answer_ms, agree, note))
            logger.info("measured %s", decode_rows[-1])
        if args.compiled and cuda and pruning.enabled and pruning.prune_layer == 0:
            try:
                length = ids.shape[1] - video.num_tokens + pruning.num_keep(video.num_tokens)
                per_token, compile_seconds = measure_compiled(adapter, length, tokens, repeats)
                decode_rows.append(
                    DecodeRow(
                        frames,
                        setting,
                        "transformers static cache + torch.compile (text model alone)",
                        per_token,
                        None,
                        "-",
                        f"first two calls (compiling): {compile_seconds:.0f} s",
                    )
                )
            except Exception as error:  # a reference only: say why it is missing, keep the other rows
                decode_rows.append(
                    DecodeRow(
                        frames,
                        setting,
                        "transformers static cache + torch.compile",
                        None,
                        None,
                        "-",
                        f"not measured: {type(error).__name__}: {error}"[:200],
                    )
                )
        second_ms, context_mib, agree = measure_shared(adapter, video, prompts, pruning, repeats, tokens)
        key = (pruning.prune_layer if pruning.enabled else None, pruning.keep_ratio if pruning.enabled else 1.0)
        shared_rows.append(SharedRow(frames, setting, ttft[key], second_ms, context_mib, agree))
        adapter.decoding = "auto"


def _header(args: argparse.Namespace, device: torch.device, adapter: Any, family: Any, size: int) -> str:
    import transformers

    name = device_name(device)
    model = "tiny test model" if args.tiny else f"{family.default_checkpoint} architecture"
    command = command_line()
    pixels = "kept at that size" if args.pixels == "keep" else "at the processor's default pixel limits"
    return (
        f"# bench-model: {model}, random weights, {adapter.model.dtype}, {args.attn} attention, {name}\n"
        f"# torch {torch.__version__}, transformers {transformers.__version__}; {size}x{size} frames ({pixels} "
        f"where the family takes any resolution); {args.text_tokens} text tokens; median of "
        f"{args.repeats or (1 if args.tiny else 3)} runs\n"
        f"# plain: frames preprocessed on the CPU, then the stock generate() on them; its encode column is "
        f"preprocessing + vision tower, its prefill the rest of the first forward pass\n"
        f"# command: {command}\n"
    )


def native_frame_size(config: Any) -> int:
    """The vision tower's input side (336 for LLaVA-NeXT-Video, 384 for LLaVA-OneVision), else 448 (families that
    take any resolution)."""
    return int(getattr(config.vision_config, "image_size", 448))


def _size_frames(adapter: Any, default: Any, size: int, num_frames: int, pixels: str) -> None:
    """Frames of ``size`` x ``size`` stay that size (``pixels="keep"``, families of any resolution), or go through
    the family's default preprocessing (``"default"``, and every family with one input size)."""
    sized = adapter.sized_frame_preprocessor(size, size, num_frames) if pixels == "keep" else None
    adapter.frame_preprocessor = sized or default


def _frames(size: int, num_frames: int) -> np.ndarray:
    return np.random.default_rng(num_frames).integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)


def _encode(adapter: Any, num_frames: int, size: int, repeats: int) -> tuple[Any, float]:
    frames = _frames(size, num_frames)
    adapter.encode_frames(frames)  # warm-up
    encodings = [adapter.encode_frames(frames) for _ in range(repeats)]
    return encodings[-1], 1e3 * statistics.median(video.seconds for video in encodings)


def _to_device(pixels: Any, device: torch.device, dtype: torch.dtype) -> Any:
    """Pixel values (a tensor, or a dataclass of tensors such as VideoPatches) moved to ``device``; float tensors
    cast to ``dtype``."""
    if isinstance(pixels, torch.Tensor):
        return pixels.to(device, dtype) if pixels.is_floating_point() else pixels.to(device)
    return dataclasses.replace(
        pixels,
        **{field.name: _to_device(getattr(pixels, field.name), device, dtype) for field in dataclasses.fields(pixels)},
    )


def _setting(pruning: Any) -> str:
    """A row's setting in words: "divprune 15%, layer 0" or "unpruned"."""
    if not pruning.enabled:
        return "unpruned"
    return f"{pruning.method} {pruning.keep_ratio:.0%}, layer {pruning.prune_layer}"


def _measure_plain(stock: Any, num_frames: int, size: int, num_text: int, repeats: int) -> Row:
    """Plain transformers, unpruned: the frames preprocessed on the CPU, then the stock model's
    ``generate(max_new_tokens=1)`` given the video as its processor hands it over (its vision tower timed inside it
    by hooks).

    ``stock``: an adapter built with ``fast_vision=False`` over the model, used for the prompt's length and the
    model's input names (:meth:`~divprune_video.models.adapter.TransformersVideoAdapter.plain_inputs`)."""
    from .runtime import synchronize

    model, device = stock.model, stock.device
    frames = _frames(size, num_frames)
    video = stock.encode_frames(frames)
    ids, mask = prompt_ids(stock.placeholder_ids(video, TEXT_ID), num_text)
    ids, mask = ids.to(device), mask.to(device)
    tower = stock.vision_tower
    marks: list[float] = []

    def mark(*_: Any) -> None:
        synchronize(device)
        marks.append(time.perf_counter())

    handles = [tower.register_forward_pre_hook(mark), tower.register_forward_hook(mark)]
    prepare, tower_time, total, peaks = [], [], [], []
    try:
        for repeat in range(repeats + 1):  # the first run warms up
            marks.clear()
            synchronize(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            baseline = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
            start = time.perf_counter()
            pixels = _to_device(stock.frame_preprocessor(frames), device, model.dtype)
            synchronize(device)
            prepared = time.perf_counter()
            with torch.inference_mode():
                model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=1,
                    do_sample=False,
                    **stock.plain_inputs(pixels, ids, video),
                )
            synchronize(device)
            if repeat:
                prepare.append(prepared - start)
                tower_time.append(marks[-1] - marks[0])
                total.append(time.perf_counter() - prepared)
                if device.type == "cuda":
                    peaks.append((torch.cuda.max_memory_allocated(device) - baseline) / 2**20)
    finally:
        for handle in handles:
            handle.remove()
    encode_ms = 1e3 * (statistics.median(prepare) + statistics.median(tower_time))
    prefill_ms = 1e3 * (statistics.median(total) - statistics.median(tower_time))
    return Row(
        num_frames,
        "plain",
        video.num_tokens,
        None,
        1.0,
        video.num_tokens,
        encode_ms,
        0.0,
        prefill_ms,
        max(peaks) if peaks else None,
    )


def prompt_ids(video_ids: torch.Tensor, num_text: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, L) ids: half of ``num_text`` random text ids, the video's ids (:meth:`placeholder_ids`), the other half
    (text ids drawn away from special ones); and the (1, L) attention mask."""
    generator = torch.Generator().manual_seed(0)
    text = torch.randint(100, 300, (num_text,), generator=generator)
    ids = torch.cat([text[: num_text // 2], video_ids.cpu(), text[num_text // 2 :]])
    return ids.unsqueeze(0), torch.ones(1, ids.numel(), dtype=torch.long)


def _measure(
    adapter: Any, video: Any, ids: torch.Tensor, mask: torch.Tensor, pruning: Any, repeats: int
) -> tuple[float, float, Optional[float]]:
    cuda = adapter.device.type == "cuda"
    adapter.generate_from_ids(ids, mask, [video], pruning, max_new_tokens=1, do_sample=False)  # warm-up
    selects, prefills, peaks = [], [], []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(adapter.device)
            torch.cuda.reset_peak_memory_stats(adapter.device)
            baseline = torch.cuda.memory_allocated(adapter.device)
        result = adapter.generate_from_ids(ids, mask, [video], pruning, max_new_tokens=1, do_sample=False)
        selects.append(1e3 * result.timings["select"])
        prefills.append(1e3 * result.timings["prefill"])
        if cuda:
            peaks.append((torch.cuda.max_memory_allocated(adapter.device) - baseline) / 2**20)
    return statistics.median(selects), statistics.median(prefills), (max(peaks) if peaks else None)


def format_table(rows: list[Row]) -> str:
    """A markdown table; ratios are against the plain-transformers row and this project's unpruned row of the same
    frame count ("select + prefill": the LLM side of the time to first token)."""
    header = (
        "| frames | path | visual tokens | prune layer | keep | kept | encode ms | select ms | prefill ms "
        "| TTFT ms | TTFT vs plain | TTFT vs unpruned | select + prefill vs unpruned | select share of TTFT "
        "| extra peak MiB | peak vs unpruned |"
    )
    lines = [header, "|" + "---:|" * 16]
    plain = {row.frames: row for row in rows if row.path == "plain"}
    baselines = {row.frames: row for row in rows if row.path == "ours" and row.prune_layer is None}
    for row in rows:
        base, reference = baselines.get(row.frames), plain.get(row.frames)
        vs_plain = f"{row.ttft_ms / reference.ttft_ms:.2f}x" if reference else "-"
        ratio = f"{row.ttft_ms / base.ttft_ms:.2f}x" if base and row.path == "ours" else "-"
        llm_ratio = f"{(row.select_ms + row.prefill_ms) / base.prefill_ms:.2f}x" if base and row.path == "ours" else "-"
        peak = "-" if row.peak_mib is None else f"{row.peak_mib:,.0f}"
        peak_ratio = (
            f"{row.peak_mib / base.peak_mib:.2f}x" if base and row.peak_mib is not None and base.peak_mib else "-"
        )
        layer = "-" if row.prune_layer is None else str(row.prune_layer)
        path = "plain transformers" if row.path == "plain" else "divprune-video"
        lines.append(
            f"| {row.frames} | {path} | {row.visual_tokens:,} | {layer} | {row.keep_ratio:.0%} | {row.kept:,} "
            f"| {row.encode_ms:.1f} | {row.select_ms:.1f} | {row.prefill_ms:.1f} | {row.ttft_ms:.1f} | {vs_plain} "
            f"| {ratio} | {llm_ratio} | {row.select_ms / row.ttft_ms:.1%} | {peak} | {peak_ratio} |"
        )
    return "\n".join(lines)
