"""``divprune-video bench-video``: the decoding backends side by side on generated H.264 videos (720p by default).

Videos: a 1-minute 1280x720 (``--height``) 30 fps H.264 file (libx264 veryfast, CRF 23, a keyframe every 2 s
(``--gop`` frames; x264's own default is 250), 2 B-frames between references, a scrolling textured picture with
grain, ~2.5 Mbit/s, like camera or web video) is encoded once; longer videos repeat its packets with shifted
timestamps (no re-encoding), so a 10-minute file costs seconds to make.
Every frame shows its number within the minute (see :func:`divprune_video.testing.index_coded_frame`), so each
measurement also checks that the backend returned the right frames.

Each measurement runs in a fresh process: ``load_video(path, N, backend=...)`` (open, index, seek, decode, RGB)
is timed as the median of ``--repeats`` runs (wall clock, and CPU time of all the process's threads, which other
load on a shared machine does not inflate), and peak memory is the process's peak resident memory during the
first run above its resident memory before it (Linux: VmHWM after resetting it through /proc/self/clear_refs).
Sequential decoding is frames/s over the first ``--seq-frames`` frames including the RGB conversion. Generated
videos stay in a temporary folder (or ``--workdir``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

FPS = 30
SEGMENT_SECONDS = 60


@dataclass
class BenchVideo:
    path: str
    minutes: float
    num_frames: int
    size_mib: float
    segment_frames: int  # frame codes repeat with this period (the encoded segment's length)


@dataclass
class LoadRow:
    video_minutes: float
    backend: str
    num_frames: int
    seconds: float
    first_seconds: float
    cpu_seconds: float
    peak_mib: float
    exact: bool
    error: str = ""


@dataclass
class SequentialRow:
    backend: str
    frames: int
    fps: float
    error: str = ""


def repeat_video(segment: Path, target: Path, times: int) -> Path:
    """Write ``segment`` ``times`` times in a row into ``target`` by copying packets with shifted timestamps (the
    segment must start with a keyframe and have closed GOPs, as libx264's output does)."""
    import av

    with av.open(str(segment)) as source, av.open(str(target), "w") as output:
        stream_in = source.streams.video[0]
        stream_out = output.add_stream_from_template(stream_in)
        packets = [(p.pts, p.dts, p.duration, bytes(p), p.is_keyframe) for p in source.demux(stream_in) if p.size]
        span = max(pts + duration for pts, _, duration, _, _ in packets) - min(pts for pts, *_ in packets)
        for copy in range(times):
            for pts, dts, duration, data, keyframe in packets:
                packet = av.Packet(data)
                packet.pts, packet.dts, packet.duration = pts + copy * span, dts + copy * span, duration
                packet.is_keyframe, packet.time_base, packet.stream = keyframe, stream_in.time_base, stream_out
                output.mux(packet)
    return target


def make_videos(
    folder: Path,
    minutes: Sequence[int],
    *,
    width: int = 1280,
    height: int = 720,
    segment_seconds: int = SEGMENT_SECONDS,
    gop: int = 2 * FPS,
    progress: Callable[[str], None] = lambda line: None,
) -> list[BenchVideo]:
    """The benchmark's videos in ``folder``: one per entry of ``minutes``, each that many repeats of one encoded
    ``segment_seconds`` segment (a minute by default) with a keyframe every ``gop`` frames."""
    from ..testing import write_index_coded_video

    suffix = "" if gop == 2 * FPS else f"_gop{gop}"
    segment = folder / f"bench_{height}p_{segment_seconds}s{suffix}.mp4"
    if not segment.exists():
        progress(f"encoding a {segment_seconds} s {width}x{height} H.264 video (libx264 veryfast) ...")
        began = time.perf_counter()
        write_index_coded_video(
            segment,
            segment_seconds * FPS,
            fps=FPS,
            height=height,
            width=width,
            gop=gop,
            bframes=2,
            crf=23,
            preset="veryfast",
            texture=True,
        )
        progress(f"  done in {time.perf_counter() - began:.0f} s")
    videos = []
    for count in minutes:
        path = segment if count == 1 else folder / f"bench_{height}p_{count}x{segment_seconds}s{suffix}.mp4"
        if not path.exists():
            repeat_video(segment, path, count)
        frames = count * segment_seconds * FPS
        videos.append(
            BenchVideo(
                str(path), count * segment_seconds / 60, frames, path.stat().st_size / 2**20, segment_seconds * FPS
            )
        )
    return videos


def _status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_memory() -> None:
    """Make the kernel's peak resident memory (VmHWM) start again from the current resident memory."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _measure_load(path: str, backend: str, num_frames: int, repeats: int, period: int) -> dict:
    """In a child process: time load_video and check the frames' codes."""
    import warnings

    from ..testing import read_frame_index
    from .loader import load_video

    warnings.simplefilter("ignore")
    _reset_peak_memory()
    baseline = _status_mib("VmRSS")
    began, cpu_began = time.perf_counter(), time.process_time()
    clip = load_video(path, num_frames, backend=backend)
    times, cpu_times = [time.perf_counter() - began], [time.process_time() - cpu_began]
    peak = _status_mib("VmHWM") - baseline
    for _ in range(repeats - 1):
        began, cpu_began = time.perf_counter(), time.process_time()
        load_video(path, num_frames, backend=backend)
        times.append(time.perf_counter() - began)
        cpu_times.append(time.process_time() - cpu_began)
    codes = [read_frame_index(frame) for frame in clip.frames]
    exact = len(clip) == num_frames and codes == (clip.indices % period).tolist()
    return {
        "seconds": statistics.median(times),
        "first_seconds": times[0],
        "cpu_seconds": statistics.median(cpu_times),
        "peak_mib": peak,
        "exact": exact,
    }


def _measure_sequential(path: str, backend: str, frames: int) -> dict:
    from .backends import open_reader
    from .sources import resolve_source

    with open_reader(resolve_source(path), backend) as reader:
        began, count = time.perf_counter(), 0
        for _ in reader.iter_frames():
            count += 1
            if count >= frames:
                break
        return {"frames": count, "fps": count / (time.perf_counter() - began)}


def _child_main(connection, function: Callable[..., dict], args: tuple) -> None:
    try:
        connection.send(function(*args))
    except Exception as error:  # reported in the table, not fatal to the run
        connection.send({"error": f"{type(error).__name__}: {error}"})
    finally:
        connection.close()


def _in_child(function: Callable[..., dict], *args: object, timeout: float = 900.0) -> dict:
    """Run ``function(*args)`` in a fresh process (clean peak memory, no warm decoder); errors, crashes and runs
    longer than ``timeout`` seconds come back as ``{"error": ...}``."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(sender, function, args), daemon=True)
    process.start()
    sender.close()
    try:
        if receiver.poll(timeout):
            return receiver.recv()
        return {"error": f"no result within {timeout:.0f} s"}
    except EOFError:
        return {"error": f"the measuring process died (exit code {process.exitcode})"}
    finally:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join(timeout=5)


def run_benchmark(
    videos: Sequence[BenchVideo],
    backends: Sequence[str],
    frame_counts: Sequence[int],
    *,
    repeats: int = 3,
    sequential_frames: int = 900,
    progress: Callable[[str], None] = lambda line: None,
) -> tuple[list[LoadRow], list[SequentialRow]]:
    loads, sequential = [], []
    for video in videos:
        for num_frames in frame_counts:
            for backend in backends:
                result = _in_child(_measure_load, video.path, backend, num_frames, repeats, video.segment_frames)
                nan = float("nan")
                row = LoadRow(
                    video.minutes,
                    backend,
                    num_frames,
                    result.get("seconds", nan),
                    result.get("first_seconds", nan),
                    result.get("cpu_seconds", nan),
                    result.get("peak_mib", nan),
                    bool(result.get("exact", False)),
                    result.get("error", ""),
                )
                loads.append(row)
                progress(format_load_row(row))
    for backend in backends:
        result = _in_child(_measure_sequential, videos[0].path, backend, sequential_frames)
        row = SequentialRow(
            backend, int(result.get("frames", 0)), result.get("fps", float("nan")), result.get("error", "")
        )
        sequential.append(row)
        progress(format_sequential_row(row))
    return loads, sequential


LOAD_HEADER = (
    "| video | backend | frames | time (s, median) | first run (s) | CPU time (s, all threads) | "
    "peak memory (MiB) | right frames |\n|---|---|---:|---:|---:|---:|---:|---|"
)
SEQUENTIAL_HEADER = "| backend | sequential decode (frames/s, {resolution}RGB) |\n|---|---:|"


def format_load_row(row: LoadRow) -> str:
    if row.error:
        return f"| {row.video_minutes:g} min | {row.backend} | {row.num_frames} | failed: {row.error} | | | | |"
    return (
        f"| {row.video_minutes:g} min | {row.backend} | {row.num_frames} | {row.seconds:.2f} | "
        f"{row.first_seconds:.2f} | {row.cpu_seconds:.2f} | {row.peak_mib:.0f} | {'yes' if row.exact else 'NO'} |"
    )


def format_sequential_row(row: SequentialRow) -> str:
    return f"| {row.backend} | failed: {row.error} |" if row.error else f"| {row.backend} | {row.fps:.0f} |"


def format_tables(
    loads: Sequence[LoadRow], sequential: Sequence[SequentialRow], *, resolution: Optional[str] = None
) -> str:
    """The two Markdown tables; ``resolution`` (e.g. "1280x720") labels the decode rate with what was measured."""
    header = SEQUENTIAL_HEADER.format(resolution=f"{resolution}, " if resolution else "")
    return "\n".join([LOAD_HEADER, *map(format_load_row, loads), "", header, *map(format_sequential_row, sequential)])


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..cli import int_list, positive_int
    from ..harness import add_common_options

    parser = subparsers.add_parser(
        "bench-video",
        help="compare the video decoding backends on generated H.264 videos (1280x720 unless --height)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", default="1,10", help="video lengths in whole minutes (default 1,10)")
    parser.add_argument("--frames", type=int_list, default=[32, 64], help="uniform frame counts (default 32,64)")
    parser.add_argument("--backends", default=None, help="comma-separated backends (default: every installed one)")
    add_common_options(parser, device=False, repeats=3)
    parser.add_argument("--seq-frames", type=int, default=900, help="frames for the sequential decode rate")
    parser.add_argument("--height", type=int, default=720, help="frame height (default 720; width = 16/9 of it)")
    parser.add_argument(
        "--gop",
        type=positive_int,
        default=2 * FPS,
        help=f"frames between keyframes (default {2 * FPS}: 2 s; x264's default is 250)",
    )
    parser.add_argument("--workdir", default=None, help="keep the generated videos here (default: a temp dir)")
    parser.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from .backends import available_backends

    backends = args.backends.split(",") if args.backends else available_backends()
    minutes = [int(m) for m in args.minutes.split(",") if m]
    frame_counts = args.frames
    width = (args.height * 16 // 9) // 2 * 2
    resolution = f"{width}x{args.height}"
    print(
        f"bench-video: {resolution} {FPS} fps H.264 videos; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, backends {', '.join(backends)}; load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    temporary: Optional[tempfile.TemporaryDirectory] = None
    if args.workdir:
        folder = Path(args.workdir)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        temporary = tempfile.TemporaryDirectory(prefix="divprune-bench-video-")
        folder = Path(temporary.name)
    try:
        videos = make_videos(
            folder,
            minutes,
            width=width,
            height=args.height,
            gop=args.gop,
            progress=lambda line: print(line, flush=True),
        )
        for video in videos:
            print(
                f"{video.minutes:g} min at {resolution}: {video.num_frames} frames, {video.size_mib:.0f} MiB",
                flush=True,
            )
        print(LOAD_HEADER, flush=True)
        loads, sequential = run_benchmark(
            videos,
            backends,
            frame_counts,
            repeats=args.repeats,
            sequential_frames=args.seq_frames,
            progress=lambda line: print(line, flush=True),
        )
    finally:
        if temporary is not None:
            temporary.cleanup()
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
    print(format_tables(loads, sequential, resolution=resolution))
    from ..harness import write_json

    # One list of rows, as every speed command writes (bench-model's "table" key names the table of each row).
    write_json(
        args.json_path,
        [{"table": "videos", **asdict(video)} for video in videos]
        + [{"table": "loads", **asdict(row)} for row in loads]
        + [{"table": "sequential", **asdict(row)} for row in sequential],
    )
    return 0
