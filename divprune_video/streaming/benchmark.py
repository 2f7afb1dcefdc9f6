"""``divprune-video bench-stream``: streaming video QA on the LLaVA-NeXT-Video-7B architecture (random weights).

For each token budget, a :class:`~divprune_video.StreamingVideoQA` ingests synthetic 336 x 336 frames (moving
shapes, or noise) stamped one second apart ("1 fps sampling") as fast as it can, one frame at a time through the
vision tower, and reports:

* frames/s ingested (after the memory is full; the times 1 fps real time that is);
* per-frame encode ms (preprocessing, vision tower, pooling, projector) and memory-update ms (the time ``ingest``
  spends on the update), median and p95 (where a family encodes frames in pairs, each frame of a pair gets half of
  the pair's times);
* the update's share of encode + update, and the memory's share of the per-frame time (the median time from one
  ``ingest``'s end to the next's): the part of it beyond that of the same frames into the FIFO memory
  ``"recent"`` (measured just before, over up to 300 frames). On CUDA the DivPrune selection runs on a stream of
  its own while the next frame is encoded, so it is not in the update ms; the share beyond FIFO is what it costs
  the stream. ``--serial`` waits for each selection before the next frame (as before that change), for
  comparison;
* answer latency from the full memory: time to first token (snapshot + prefill, ``max_new_tokens=1``) and a
  16-token answer;
* GPU memory allocated, sampled every ``--sample-every`` frames, and the maximum allocated, to show that memory
  stays flat however long the stream runs (``--frames`` for the largest budget, ``--other-frames`` for the rest).

The model is built from its configuration with random weights exactly as ``bench-model`` builds it (nothing is
downloaded; the compute does not depend on the weight values), float16 on CUDA. Timings synchronize the GPU around
each stage. ``--tiny`` runs the same on the tiny test model on the CPU in seconds (a smoke test, not a
measurement); it is the default on a machine without a CUDA device (unless ``--device`` is given).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..harness import add_common_options, command_line, device_name, markdown_table, write_json
from .memory import MEMORIES

logger = logging.getLogger(__name__)

#: Distinct synthetic frames cycled through (the cost of a frame does not depend on its content).
FRAME_POOL = 120


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..cli import int_list

    parser = subparsers.add_parser(
        "bench-stream",
        help="GPU: streaming video QA throughput, memory-update cost, answer latency, flat memory (a family's 7B, "
        "random weights; without CUDA: the tiny model on the CPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model-type",
        default="llava_next_video",
        help="the model family's transformers model_type (default llava_next_video)",
    )
    parser.add_argument(
        "--budgets",
        type=int_list,
        default=None,
        help="comma-separated token budgets (default 1024,2048,4096; tiny: 32,64,128)",
    )
    parser.add_argument(
        "--frames", type=int, default=None, help="frames ingested at the largest budget (default 10000; tiny 300)"
    )
    parser.add_argument(
        "--other-frames", type=int, default=None, help="frames ingested at the other budgets (default 2000; tiny 100)"
    )
    parser.add_argument(
        "--sample-every", type=int, default=None, help="frames between GPU memory samples (default 1000; tiny 50)"
    )
    parser.add_argument(
        "--frame-kind",
        choices=("shapes", "noise"),
        default="shapes",
        help="synthetic frames: moving shapes (default) or uniform noise",
    )
    parser.add_argument(
        "--frame-size", type=int, default=None, help="frame side in pixels (default: the model's input size, 336)"
    )
    parser.add_argument(
        "--method",
        default="divprune",
        choices=MEMORIES.names(),
        help="memory policy (default divprune; any registered memory)",
    )
    parser.add_argument(
        "--update",
        default="auto",
        choices=("auto", "cached", "recompute"),
        help="DivPrune memory update (default auto: recompute on CUDA, cached on CPU)",
    )
    parser.add_argument(
        "--serial",
        action="store_true",
        help="wait for each frame's memory update before encoding the next (default: on CUDA the DivPrune "
        "selection runs during the next frame's encode)",
    )
    parser.add_argument("--answer-tokens", type=int, default=16, help="length of the timed answer (default 16)")
    parser.add_argument("--text-tokens", type=int, default=40, help="question tokens around the video (default 40)")
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the tiny test model on the CPU (smoke test; the default when there is no CUDA device and no --device)",
    )
    add_common_options(
        parser,
        device_help="default: cuda (cpu with --tiny or without CUDA)",
        repeats=None,
        repeats_help="timed answers per budget, median (default 3; tiny 1)",
    )
    parser.add_argument("--attn", default="sdpa", help="attention implementation (default sdpa)")
    parser.set_defaults(func=run)


@dataclass
class BudgetResult:
    """One budget's measurements (milliseconds, MiB; None where not measured, e.g. memory on the CPU)."""

    budget: int
    frames: int
    update_path: str
    frames_per_second: float
    encode_ms: tuple[float, float]  # median, p95
    update_ms: tuple[float, float]
    update_share: float
    ttft_ms: float
    answer_ms: float
    answer_tokens: int
    memory_tokens: int
    memory_samples: list[tuple[int, float, float]] = field(default_factory=list)  # (frame, allocated, max) MiB
    serial: bool = False  # each update's selection was waited for before the next frame
    frame_ms: float = float("nan")  # median per-frame time (one ingest's end to the next's)
    baseline_ms: float = float("nan")  # the same for the same frames into the FIFO memory

    @property
    def memory_share(self) -> float:
        """The share of the (median) per-frame time beyond the baseline's (the same frames into the FIFO
        memory)."""
        return (self.frame_ms - self.baseline_ms) / self.frame_ms

    @property
    def allocated_range(self) -> Optional[tuple[float, float]]:
        if not self.memory_samples:
            return None
        values = [allocated for _, allocated, _ in self.memory_samples]
        return min(values), max(values)

    @property
    def max_allocated(self) -> Optional[float]:
        return max((peak for _, _, peak in self.memory_samples), default=None)


def run(args: argparse.Namespace) -> int:
    from ..cli import cpu_smoke_test_default

    cpu_smoke_test_default(args, "bench-stream")
    threads = torch.get_num_threads()
    if args.tiny:
        torch.set_num_threads(1)  # the tiny model's operations are too small to share among threads
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> int:
    from ..models.benchmark import native_frame_size
    from ..models.presets import reference_adapter

    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench-stream needs a CUDA device (or --tiny for a CPU smoke test)", file=sys.stderr)
        return 2
    budgets = sorted(args.budgets or ([32, 64, 128] if args.tiny else [1024, 2048, 4096]))
    frames_largest = args.frames or (300 if args.tiny else 10_000)
    frames_other = args.other_frames or (100 if args.tiny else 2_000)
    sample_every = args.sample_every or (50 if args.tiny else 1_000)
    repeats = args.repeats or (1 if args.tiny else 3)
    if min(budgets) < 1 or min(frames_largest, frames_other, sample_every, repeats, args.answer_tokens) < 1:
        print("budgets, frame counts, --sample-every, --repeats and --answer-tokens must be >= 1", file=sys.stderr)
        return 2
    adapter = reference_adapter(args.model_type, device, args.attn, tiny=args.tiny)
    size = args.frame_size or native_frame_size(adapter.config)
    pool = synthetic_frames(args.frame_kind, size)
    print(_header(args, device, adapter, size), flush=True)
    results = []
    for budget in budgets:
        count = frames_largest if budget == budgets[-1] else frames_other
        results.append(measure_budget(adapter, budget, count, pool, args, sample_every, repeats))
        logger.info("measured %s", results[-1])
        print(f"# budget {budget}: done ({count} frames)", file=sys.stderr, flush=True)
    print(format_table(results))
    print(format_memory_series(results))
    write_json(args.json_path, [asdict(row) | {"memory_share": row.memory_share} for row in results])
    return 0


def synthetic_frames(kind: str, size: int, count: int = FRAME_POOL) -> np.ndarray:
    """(count, size, size, 3) uint8 frames: moving shapes (:func:`~divprune_video.testing.moving_shapes_video`)
    or uniform noise."""
    if kind == "noise":
        return np.random.default_rng(0).integers(0, 256, (count, size, size, 3), dtype=np.uint8)
    from ..testing import moving_shapes_video

    return moving_shapes_video(count, size, size, seed=0)


#: Frames of the baseline stream (the same frames into the FIFO memory "recent") per budget.
BASELINE_FRAMES = 300


@dataclass
class IngestRun:
    """One stream of frames ingested: the records, the frames/s once the memory was full (first: the index of the
    first frame timed) and the GPU memory samples (frame, allocated MiB, max allocated MiB)."""

    records: list[Any]
    frames_per_second: float
    first: int
    samples: list[tuple[int, float, float]]
    frame_ms: float  # median per-frame time (from one ingest's end to the next's), robust to the host's stalls


def ingest_stream(
    qa: Any, pool: np.ndarray, num_frames: int, *, serial: bool = False, sample_every: Optional[int] = None
) -> IngestRun:
    """Ingest ``num_frames`` frames of ``pool`` ((P, H, W, 3) uint8, cycled) one by one, as fast as they go.
    ``serial``: wait for each memory update's selection before the next frame (its time added to the record's
    update time); ``sample_every``: frames between GPU memory samples (CUDA)."""
    device = qa.adapter.device
    cuda = device.type == "cuda"
    records = []
    samples: list[tuple[int, float, float]] = []
    budget = qa.token_budget
    steady_from: Optional[int] = None  # the first frame after the memory filled (and the first selection ran)
    steady_start = time.perf_counter()
    ends = []
    with torch.inference_mode():
        for index in range(num_frames):
            record = qa.ingest(pool[index % len(pool)], timestamp=float(index))
            if serial:
                start = time.perf_counter()
                with qa._memory_lock:
                    qa.memory.wait()
                record = dataclasses.replace(record, update_seconds=record.update_seconds + time.perf_counter() - start)
            records.append(record)
            ends.append(time.perf_counter())
            if steady_from is None and record.memory_tokens + record.num_tokens > budget:
                steady_from = min(index + 2, num_frames - 1)
            if index == steady_from:
                steady_start = time.perf_counter()
            if cuda and sample_every and (index + 1) % sample_every == 0:
                samples.append(
                    (
                        index + 1,
                        torch.cuda.memory_allocated(device) / 2**20,
                        torch.cuda.max_memory_allocated(device) / 2**20,
                    )
                )
        with qa._memory_lock:
            qa.memory.wait()  # the last frame's selection
    elapsed = time.perf_counter() - steady_start
    first = steady_from if steady_from is not None and steady_from < num_frames - 1 else 0
    frames_per_second = (num_frames - first) / elapsed if elapsed > 0 else float("nan")
    intervals = np.diff(ends[first:]) if num_frames - first > 1 else np.array([elapsed])
    return IngestRun(records, frames_per_second, first, samples, 1e3 * float(np.median(intervals)))


def measure_budget(
    adapter: Any,
    budget: int,
    num_frames: int,
    pool: np.ndarray,
    args: argparse.Namespace,
    sample_every: int,
    repeats: int,
) -> BudgetResult:
    """Ingest ``num_frames`` frames (cycling through ``pool``: (P, H, W, 3) uint8) at one budget, then time answers
    from the full memory; before it, the baseline: the same frames into the FIFO memory."""
    from . import StreamingVideoQA

    baseline = ingest_stream(
        StreamingVideoQA(adapter, token_budget=budget, sample_fps=1.0, method="recent"),
        pool,
        min(num_frames, BASELINE_FRAMES),
    )
    qa = StreamingVideoQA(adapter, token_budget=budget, sample_fps=1.0, method=args.method, update=args.update)
    if adapter.device.type == "cuda":
        torch.cuda.synchronize(adapter.device)
        torch.cuda.reset_peak_memory_stats(adapter.device)
    run = ingest_stream(qa, pool, num_frames, serial=args.serial, sample_every=sample_every)
    encode, update, timed = frame_times(run.records)
    steady = slice(run.first, max(run.first + 1, timed))
    ttft_ms, answer_ms = _answer_latency(qa, adapter, args, repeats)
    encode_steady, update_steady = encode[steady], update[steady]
    share = float(update_steady.sum() / max(1e-12, encode_steady.sum() + update_steady.sum()))
    path = getattr(qa.memory, "resolved_update", "-") if args.method == "divprune" else args.method
    return BudgetResult(
        budget=budget,
        frames=num_frames,
        update_path=path,
        frames_per_second=run.frames_per_second,
        encode_ms=_median_p95(encode_steady),
        update_ms=_median_p95(update_steady),
        update_share=share,
        ttft_ms=ttft_ms,
        answer_ms=answer_ms,
        answer_tokens=args.answer_tokens,
        memory_tokens=qa.num_memory_tokens,
        memory_samples=run.samples,
        serial=args.serial,
        frame_ms=run.frame_ms,
        baseline_ms=baseline.frame_ms,
    )


def frame_times(records: Sequence[Any]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-frame encode and update seconds of a stream's ingest records
    (:class:`~divprune_video.streaming.qa.IngestRecord`, one per frame, in order).

    Where the model encodes frames in groups (Qwen-VL's frame pairs), the record of the frame that completes a group
    carries the group's times and the frames held before it carry none; here each frame of the group gets an equal
    share, so that medians compare with families that encode frames one by one. Returns (encode, update, timed):
    two (len(records),) arrays and the number of leading frames whose group is complete (a last group still held
    has no times yet)."""
    encode = np.zeros(len(records))
    update = np.zeros(len(records))
    held: list[int] = []
    timed = 0
    for index, record in enumerate(records):
        held.append(index)
        if record.num_tokens == 0:  # held until its group completes
            continue
        encode[held] = record.encode_seconds / len(held)
        update[held] = record.update_seconds / len(held)
        held, timed = [], index + 1
    return encode, update, timed


def _answer_latency(qa: Any, adapter: Any, args: argparse.Namespace, repeats: int) -> tuple[float, float]:
    """Median ms of (snapshot + generate 1 token) and (snapshot + generate ``--answer-tokens`` tokens), on prompt
    ids of random text around the memory's tokens (the benchmark model has no tokenizer)."""
    from ..models import PruningConfig
    from ..models.benchmark import TEXT_ID, prompt_ids

    unpruned = PruningConfig(method="none")

    def timed(new_tokens: int) -> float:
        if adapter.device.type == "cuda":
            torch.cuda.synchronize(adapter.device)
        start = time.perf_counter()
        video, _ = qa.encoded_memory()
        ids, mask = prompt_ids(adapter.placeholder_ids(video, TEXT_ID), args.text_tokens)
        adapter.generate_from_ids(
            ids, mask, [video], unpruned, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False
        )
        if adapter.device.type == "cuda":
            torch.cuda.synchronize(adapter.device)
        return 1e3 * (time.perf_counter() - start)

    timed(1), timed(args.answer_tokens)  # warm-up at this memory size
    ttft = statistics.median(timed(1) for _ in range(repeats))
    answer = statistics.median(timed(args.answer_tokens) for _ in range(repeats))
    return ttft, answer


def _median_p95(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return float("nan"), float("nan")
    return 1e3 * float(np.median(values)), 1e3 * float(np.percentile(values, 95))


def _header(args: argparse.Namespace, device: torch.device, adapter: Any, size: int) -> str:
    import transformers

    name = device_name(device)
    model = "tiny test model" if args.tiny else f"{args.model_type} 7B architecture"
    command = command_line()
    return (
        f"# bench-stream: {model}, random weights, {adapter.model.dtype}, {args.attn} attention, {name}\n"
        f"# torch {torch.__version__}, transformers {transformers.__version__}; {args.frame_kind} frames "
        f"{size}x{size} at 1 fps sampling, ingested one by one as fast as possible; method {args.method}\n"
        f"# command: {command}\n"
    )


def format_table(results: list[BudgetResult]) -> str:
    """A markdown table, one row per budget (per-frame times over the frames after the memory first filled)."""
    answer = f"{results[0].answer_tokens}-token answer ms" if results else "answer ms"
    header = [
        "budget",
        "frames",
        "update path",
        "frames/s",
        "x real time at 1 fps",
        "encode ms p50 / p95",
        "update ms p50 / p95",
        "update / (encode + update)",
        "per-frame ms p50",
        "per-frame ms p50, FIFO memory",
        "share of per-frame time beyond FIFO",
        "TTFT ms",
        answer,
        "GPU MiB allocated (min - max)",
        "max allocated MiB",
    ]
    cells = []
    for row in results:
        allocated = row.allocated_range
        cells.append(
            [
                f"{row.budget:,}",
                f"{row.frames:,}",
                row.update_path,
                f"{row.frames_per_second:.1f}",
                f"{row.frames_per_second:.0f}x",
                f"{row.encode_ms[0]:.2f} / {row.encode_ms[1]:.2f}",
                f"{row.update_ms[0]:.2f} / {row.update_ms[1]:.2f}" + (" (serial)" if row.serial else ""),
                f"{row.update_share:.1%}",
                f"{row.frame_ms:.2f}",
                f"{row.baseline_ms:.2f}",
                f"{row.memory_share:.1%}",
                f"{row.ttft_ms:.1f}",
                f"{row.answer_ms:.1f}",
                "-" if allocated is None else f"{allocated[0]:,.0f} - {allocated[1]:,.0f}",
                "-" if row.max_allocated is None else f"{row.max_allocated:,.0f}",
            ]
        )
    return markdown_table(header, cells)


def format_memory_series(results: list[BudgetResult]) -> str:
    """GPU memory allocated at every sample, per budget (empty on the CPU)."""
    lines = []
    for row in results:
        if row.memory_samples:
            series = ", ".join(f"{frame:,}: {allocated:,.1f}" for frame, allocated, _ in row.memory_samples)
            lines.append(f"# budget {row.budget}: MiB allocated after frame {series}")
    return "\n".join(lines)
