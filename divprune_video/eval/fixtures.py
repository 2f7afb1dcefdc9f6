"""Small benchmark datasets in the real released layouts, written in code (no download), for tests and for checking
an integration end to end: MVBench (per-task JSON + video folders + a frame folder), Video-MME (parquet + ``data/``
videos + ``subtitle/`` .srt files) and MLVU (parquet with the options in the question text + videos).

Videos are tiny index-coded MPEG-4 files (frame i is a flat gray of level ``(17 * i) % 256``). Each writer returns
the questions it wrote as :class:`FixtureQuestion` so tests can build replay files with known answers.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from .._optional import require


@dataclass(frozen=True)
class FixtureQuestion:
    """One written question: the replay key (``video``, ``question``), its task and the gold letter."""

    task: str
    video: str
    question: str
    gold: str
    options: tuple[str, ...]


def write_tiny_video(path: Path | str, num_frames: int = 12, *, size: int = 32, fps: int = 8) -> Path:
    """An index-coded MPEG-4 video (PyAV): ``num_frames`` flat frames of ``size`` x ``size`` at ``fps``."""
    av = require("av", "video")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for index in range(num_frames):
            pixels = np.full((size, size, 3), (17 * index) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_frame_folder(path: Path | str, num_frames: int = 12, *, size: int = 32) -> Path:
    """A folder of index-coded JPEG frames ``00001.jpg`` ... (MVBench's episodic_reasoning layout)."""
    image = require("PIL.Image", "video", "pillow")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        pixels = np.full((size, size, 3), (17 * index) % 256, dtype=np.uint8)
        image.fromarray(pixels).save(path / f"{index + 1:05d}.jpg")
    return path


def write_replay_file(path: Path | str, entries: Iterable[dict]) -> Path:
    """A replay JSONL (``{"video", "question", "response"}`` per line, extra keys kept)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    return path


def _options(count: int, stem: str) -> list[str]:
    return [f"{stem} option {letter.lower()}" for letter in string.ascii_uppercase[:count]]


def write_mvbench_fixture(
    root: Path | str,
    *,
    tasks: Optional[Sequence[str]] = None,
    questions_per_task: int = 2,
    num_frames: int = 12,
    bounded_tasks: Sequence[str] = ("action_sequence", "action_prediction", "object_interaction"),
    missing_videos: Sequence[str] = (),
) -> list[FixtureQuestion]:
    """MVBench under ``root``: ``json/<task>.json`` and each task's video folder (episodic_reasoning as frame
    folders). ``bounded_tasks`` records carry ``start``/``end``; videos named in ``missing_videos`` are not
    written. Candidate counts cycle through 3, 4 and 5 options."""
    from .mvbench import TASK_VIDEO_FOLDERS, TASKS

    root = Path(root)
    written: list[FixtureQuestion] = []
    for task_number, task in enumerate(tasks or TASKS):
        folder = root / TASK_VIDEO_FOLDERS[task]
        records = []
        for row in range(questions_per_task):
            count = 3 + (task_number + row) % 3
            candidates = _options(count, f"{task} q{row}")
            answer_index = (task_number + 2 * row) % count
            is_frames = task == "episodic_reasoning"
            video = f"{task}_{row}" if is_frames else f"{task}_{row}.mp4"
            record = {
                "video": video,
                "question": f"What happens in {task} clip {row}?",
                "candidates": candidates,
                "answer": candidates[answer_index],
            }
            if task in bounded_tasks:
                record.update(start=0.25, end=1.0)
            records.append(record)
            if video not in missing_videos:
                if is_frames:
                    write_frame_folder(folder / video, num_frames)
                else:
                    write_tiny_video(folder / video, num_frames)
            written.append(
                FixtureQuestion(
                    task, video, record["question"], string.ascii_uppercase[answer_index], tuple(candidates)
                )
            )
        (root / "json").mkdir(parents=True, exist_ok=True)
        (root / "json" / f"{task}.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return written


def _srt_time(seconds: float) -> str:
    millis = int(round(seconds * 1000))
    return f"{millis // 3_600_000:02d}:{millis // 60_000 % 60:02d}:{millis // 1000 % 60:02d},{millis % 1000:03d}"


def write_srt(path: Path | str, blocks: Sequence[tuple[float, float, str]]) -> Path:
    """A .srt file in Video-MME's style: each text wrapped in ``<font color="white" size=".72c">``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [
        f'{number}\n{_srt_time(start)} --> {_srt_time(end)}\n<font color="white" size=".72c">{text}</font>'
        for number, (start, end, text) in enumerate(blocks, start=1)
    ]
    path.write_text("\n\n".join(parts) + "\n", encoding="utf-8")
    return path


def write_videomme_fixture(
    root: Path | str,
    *,
    num_videos: int = 6,
    questions_per_video: int = 3,
    num_frames: int = 16,
    fps: int = 8,
    subtitled_videos: Optional[int] = None,
    missing_videos: Sequence[str] = (),
) -> list[FixtureQuestion]:
    """Video-MME under ``root``: ``videomme/test-00000-of-00001.parquet``, ``data/<videoID>.mp4`` and
    ``subtitle/<videoID>.srt`` for the first ``subtitled_videos`` videos (all by default). Durations cycle short,
    medium, long; domains, sub-categories and task types are valid values."""
    from .videomme import DOMAINS, DURATIONS, SUB_CATEGORIES, TASK_TYPES

    parquet = require("pyarrow.parquet", "eval", "pyarrow")
    pyarrow = require("pyarrow", "eval", "pyarrow")
    root = Path(root)
    rows, written = [], []
    subtitled = num_videos if subtitled_videos is None else subtitled_videos
    seconds = num_frames / fps
    for number in range(num_videos):
        video_id = f"vid{number:03d}xyz"
        if video_id not in missing_videos:
            write_tiny_video(root / "data" / f"{video_id}.mp4", num_frames, fps=fps)
        if number < subtitled:
            step = seconds / 4
            write_srt(
                root / "subtitle" / f"{video_id}.srt",
                [(k * step, (k + 1) * step, f"line {k} of {video_id}") for k in range(4)],
            )
        for question in range(questions_per_video):
            options = [f"{letter}. {video_id} answer {letter.lower()}{question}" for letter in "ABCD"]
            gold = "ABCD"[(number + question) % 4]
            text = f"In video {number}, which is right ({question})?"
            rows.append(
                {
                    "video_id": f"{number + 1:03d}",
                    "duration": DURATIONS[number % 3],
                    "domain": DOMAINS[number % len(DOMAINS)],
                    "sub_category": SUB_CATEGORIES[number % len(SUB_CATEGORIES)],
                    "url": f"https://www.youtube.com/watch?v={video_id}",
                    "videoID": video_id,
                    "question_id": f"{number + 1:03d}-{question + 1}",
                    "task_type": TASK_TYPES[(number * questions_per_video + question) % len(TASK_TYPES)],
                    "question": text,
                    "options": options,
                    "answer": gold,
                }
            )
            written.append(FixtureQuestion(DURATIONS[number % 3], video_id, text, gold, tuple(options)))
    (root / "videomme").mkdir(parents=True, exist_ok=True)
    parquet.write_table(pyarrow.Table.from_pylist(rows), root / "videomme" / "test-00000-of-00001.parquet")
    return written


def write_mlvu_fixture(
    root: Path | str,
    *,
    split: str = "dev",
    questions_per_task: int = 2,
    num_frames: int = 12,
    missing_videos: Sequence[str] = (),
) -> list[FixtureQuestion]:
    """MLVU under ``root``: ``mlvu/test-00000-of-00001.parquet`` (``mlvu_test/`` for the test split) with the
    options inside the question text, and the videos at ``<root>/<video_name>``."""
    from .mlvu import TASK_TYPES

    parquet = require("pyarrow.parquet", "eval", "pyarrow")
    pyarrow = require("pyarrow", "eval", "pyarrow")
    root = Path(root)
    rows, written = [], []
    for task_number, task in enumerate(TASK_TYPES[split]):
        for row in range(questions_per_task):
            video = f"{task}_{row}.mp4"
            if video not in missing_videos:
                write_tiny_video(root / video, num_frames)
            candidates = [f"{task} choice {k}{row}" for k in range(4)]
            gold = "ABCD"[(task_number + row) % 4]
            question = f"What is shown in {task} {row}?\n" + "".join(
                f"({letter}) {option}\n" for letter, option in zip("ABCD", candidates)
            )
            rows.append(
                {
                    "video_name": video,
                    "duration": float(num_frames) / 8,
                    "question": question,
                    "candidates": candidates,
                    "answer": gold,
                    "task_type": task,
                    "question_id": f"{task}_{row}",
                }
            )
            written.append(FixtureQuestion(task, video, question, gold, tuple(candidates)))
    folder = root / ("mlvu" if split == "dev" else "mlvu_test")
    folder.mkdir(parents=True, exist_ok=True)
    parquet.write_table(pyarrow.Table.from_pylist(rows), folder / "test-00000-of-00001.parquet")
    return written


@dataclass(frozen=True)
class FixtureSet:
    """A fixture written by :func:`write_fixture_set`: its benchmark, root, questions and the tasks it holds (the
    run selects exactly those, so a subset of MVBench's 20 tasks is complete)."""

    benchmark: str
    root: Path
    questions: tuple[FixtureQuestion, ...]
    tasks: Optional[tuple[str, ...]]


def largest_divisor(number: int, at_most: int) -> int:
    """The largest divisor of ``number`` that is at most ``at_most`` (how many tasks a fixture spreads over)."""
    return max(d for d in range(1, min(number, at_most) + 1) if number % d == 0)


def write_fixture_set(benchmark: str, root: Path | str, num_samples: int, *, num_frames: int = 32) -> FixtureSet:
    """Exactly ``num_samples`` questions of a registered ``benchmark`` in its released layout under ``root``, with
    videos of ``num_frames`` frames (so a run sampling that many frames sees distinct ones), written by the
    benchmark's own :meth:`~divprune_video.eval.base.Benchmark.write_fixture`.

    The built-in ones spread the questions over as many tasks as divide ``num_samples`` evenly: MVBench over up to
    its 20 tasks (64 samples: 16 tasks x 4), MLVU dev over up to its 7 task types, Video-MME three questions per
    video when ``num_samples`` is a multiple of 3 (as released), else one.
    """
    from .base import get_benchmark

    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int; got {num_samples!r}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be a positive int; got {num_frames!r}")
    return get_benchmark(benchmark).write_fixture(Path(root), num_samples, num_frames=num_frames)
