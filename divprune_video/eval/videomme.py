"""Video-MME (HF ``lmms-lab/Video-MME``, split ``test``) as lmms-eval's ``videomme`` / ``videomme_w_subtitle`` run it.

Layout under the data root: ``videomme/test-00000-of-00001.parquet`` (or any ``test-*.parquet`` / ``*.parquet`` at
the root), ``data/<videoID>.mp4`` (``.MP4`` and ``.mkv`` are tried next) and ``subtitle/<videoID>.srt`` from
``subtitle.zip``. Tasks here are the duration classes (short, medium, long): ``--tasks long`` is lmms-eval's
``videomme_long``.

Prompt without subtitles: option prompt, question, the four options (already "A. ..."), then the post prompt
(default ``"\\nAnswer with the option's letter from the given choices directly."``, llava_vid
``"The best answer is:"``). With subtitles: the subtitle lines shown at ``subtitle_frames`` uniformly sampled
frames, then the option prompt, question, options and ``"The best answer is:"``. Parsing:
:func:`~divprune_video.eval.mcq.extract_mcq_answer` with choices A-D. Headline: micro accuracy over all questions.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .base import (
    AnnotationError,
    Benchmark,
    BenchmarkError,
    CheckReport,
    Sample,
    count_summary,
    find_annotation_file,
    group_accuracy,
    percent,
    read_parquet_rows,
    register_benchmark,
    scored,
)
from .mcq import LetterExtractionScoring

logger = logging.getLogger(__name__)

DURATIONS = ("short", "medium", "long")
DOMAINS = (
    "Knowledge",
    "Film & Television",
    "Sports Competition",
    "Artistic Performance",
    "Life Record",
    "Multilingual",
)
SUB_CATEGORIES = (
    "Humanity & History",
    "Literature & Art",
    "Biology & Medicine",
    "Finance & Commerce",
    "Astronomy",
    "Geography",
    "Law",
    "Life Tip",
    "Technology",
    "Animation",
    "Movie & TV Show",
    "Documentary",
    "News Report",
    "Esports",
    "Basketball",
    "Football",
    "Athletics",
    "Other Sports",
    "Stage Play",
    "Magic Show",
    "Variety Show",
    "Acrobatics",
    "Handicraft",
    "Food",
    "Fashion",
    "Daily Life",
    "Travel",
    "Pet & Animal",
    "Exercise",
    "Multilingual",
)
TASK_TYPES = (
    "Temporal Perception",
    "Spatial Perception",
    "Attribute Perception",
    "Action Recognition",
    "Object Recognition",
    "OCR Problems",
    "Counting Problem",
    "Temporal Reasoning",
    "Spatial Reasoning",
    "Action Reasoning",
    "Object Reasoning",
    "Information Synopsis",
)
OPTION_PROMPT = (
    "Select the best answer to the following multiple-choice question based on the video and the subtitles. "
    "Respond with only the letter (A, B, C, or D) of the correct option."
)
POST_PROMPTS = {
    "default": "\nAnswer with the option's letter from the given choices directly.",
    "llava_vid": "The best answer is:",
}
#: lmms-eval's ``qwen3_vl`` entry (its ``format: qwen3_vl``): ``pre_prompt + question + "\nOptions:\n" + options +
#: "\n" + post_prompt``, from VLMEvalKit's Qwen3-VL prompt.
QWEN3_VL_PRE_PROMPT = "Question: "
QWEN3_VL_POST_PROMPT = "Answer with the option letter only."
#: The prompt variants: lmms-eval's entries for model wrappers in videomme.yaml that we reproduce.
PROMPT_VARIANTS = (*POST_PROMPTS, "qwen3_vl")
SUBTITLE_HEADER = "This video's subtitles are listed below: \n"
NO_SUBTITLES = "No subtitles available"
SUBTITLE_POST_PROMPT = "The best answer is:"
VIDEO_SUFFIXES = (".mp4", ".MP4", ".mkv")
ANNOTATION_PATTERNS = ("videomme/test-*.parquet", "test-*.parquet", "*.parquet")
_COLUMNS = (
    "videoID",
    "question_id",
    "duration",
    "domain",
    "sub_category",
    "task_type",
    "question",
    "options",
    "answer",
)
_CATEGORICAL = {"duration": DURATIONS, "domain": DOMAINS, "sub_category": SUB_CATEGORIES, "task_type": TASK_TYPES}
_FONT_TEXT = re.compile(r'<font color="white" size=".72c">(.*?)</font>')


def build_prompt(question: str, options: Sequence[str], post_prompt: str = POST_PROMPTS["default"]) -> str:
    """lmms-eval's videomme_doc_to_text."""
    return OPTION_PROMPT + "\n" + question + "\n" + "\n".join(options) + "\n" + post_prompt


def variant_prompt(question: str, options: Sequence[str], variant: str) -> str:
    """The prompt of :data:`PROMPT_VARIANTS` ``variant`` (lmms-eval's videomme_doc_to_text, or its
    videomme_doc_to_text_qwen3vl for ``"qwen3_vl"``)."""
    if variant == "qwen3_vl":
        return QWEN3_VL_PRE_PROMPT + question + "\nOptions:\n" + "\n".join(options) + "\n" + QWEN3_VL_POST_PROMPT
    return build_prompt(question, options, POST_PROMPTS[variant])


def build_subtitle_prompt(question: str, options: Sequence[str], subtitles: str) -> str:
    """lmms-eval's videomme_doc_to_text_subtitle given the subtitle text."""
    return (
        SUBTITLE_HEADER
        + subtitles
        + "\n"
        + OPTION_PROMPT
        + "\n"
        + question
        + "\n"
        + "\n".join(options)
        + "\n"
        + SUBTITLE_POST_PROMPT
    )


def _srt_seconds(stamp: str) -> float:
    hours, minutes, rest = stamp.split(":")
    seconds, millis = rest.split(",")
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + int(millis) / 1000


def _not_utf8(path: Path) -> AnnotationError:
    """The error for a subtitle file that is not UTF-8, naming the file and the first bad byte's offset."""
    data = Path(path).read_bytes()
    try:
        data.decode("utf-8")
        where = ""
    except UnicodeDecodeError as error:
        where = f" (byte {data[error.start]:#04x} at offset {error.start})"
    return AnnotationError(
        f"subtitle file {path} is not UTF-8 text{where}; lmms-eval reads subtitles as UTF-8: "
        f"convert it (e.g. iconv -f CP1252 -t UTF-8)"
    )


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    """Subtitle blocks (start s, end s, text with lines joined by spaces) in file order; blocks with the same time
    span keep the last text, as lmms-eval's dict does."""
    try:
        with open(path, encoding="utf-8") as handle:
            blocks = handle.read().split("\n\n")
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    spans: dict[tuple[float, float], str] = {}
    for block in blocks:
        if not block.strip():
            continue
        lines = block.split("\n")
        if len(lines) < 3:
            continue
        try:
            start, end = (_srt_seconds(part) for part in lines[1].split(" --> "))
        except ValueError as error:
            raise AnnotationError(f"{path}: bad subtitle time line {lines[1]!r}") from error
        spans[(start, end)] = " ".join(lines[2:])
    return [(start, end, text) for (start, end), text in spans.items()]


def video_frame_count_and_fps(path: Path) -> tuple[int, float]:
    """(frame count, frames per second) from the container metadata: OpenCV when installed (what lmms-eval
    uses), else PyAV."""
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is not None:
        capture = cv2.VideoCapture(str(path))
        try:
            return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), float(capture.get(cv2.CAP_PROP_FPS))
        finally:
            capture.release()
    from .._optional import require

    av = require("av", "video")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = float(stream.average_rate) if stream.average_rate else 0.0
            return int(stream.frames or 0), rate
    except (av.error.FFmpegError, IndexError) as error:
        raise BenchmarkError(f"cannot read video metadata of {path}: {error}") from error


def subtitles_at_frames(
    blocks: Sequence[tuple[float, float, str]], total_frames: int, fps: float, num_frames: int
) -> str:
    """The subtitle text lmms-eval puts in the prompt: blocks whose frame span [int(start*fps), int(end*fps))
    contains one of ``num_frames`` uniformly sampled frames (-1: every frame), in the order of ``list(set(...))`` of
    their indices (as lmms-eval), each reduced to its first ``<font color="white" size=".72c">`` text."""
    frame_spans = [(int(start * fps), int(end * fps), text) for start, end, text in blocks]
    if num_frames == -1:
        num_frames = total_frames
    sampled = np.linspace(0, total_frames - 1, num_frames, dtype=int).tolist()
    hit = []
    for frame in sampled:
        for index, (first, last, _text) in enumerate(frame_spans):
            if first <= frame < last:
                hit.append(index)
    lines = []
    for index in list(set(hit)):  # CPython set order, exactly what lmms-eval iterates
        found = _FONT_TEXT.findall(frame_spans[index][2])
        if found:
            lines.append(found[0])
    return "\n".join(lines)


@register_benchmark
class VideoMME(LetterExtractionScoring, Benchmark):
    """Video-MME: 2,700 questions over 900 videos; see the module docstring for layout and rules. Parsing and
    correctness: the letter :func:`~divprune_video.eval.mcq.extract_mcq_answer` finds among A-D must equal
    ``answer`` (the aggregation compares exactly; the per-sample "score" lower-cases both, which agrees for
    letters)."""

    name = "videomme"
    all_tasks = DURATIONS
    description = (
        "Run Video-MME (lmms-lab/Video-MME: videomme/test-*.parquet, data/<videoID>.mp4, subtitle/*.srt "
        "under --data-root) scored as lmms-eval's videomme (or videomme_w_subtitle with --subtitles): "
        "extract_mcq_answer over A-D, micro accuracy with duration, domain and task-type breakdowns."
    )
    settings = ("subtitles", "prompt_variant", "subtitle_frames")

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        parser.add_argument("--subtitles", action="store_true", default=None, help="Video-MME with subtitles")
        parser.add_argument(
            "--prompt-variant",
            choices=["auto", "default", "llava_vid", "qwen3_vl"],
            help="Video-MME prompt: lmms-eval's default, its llava_vid post prompt or its qwen3_vl "
            "format; auto (default): the model family's entry when lmms-eval has one (qwen3_vl "
            "for Qwen3-VL), else default",
        )
        parser.add_argument("--subtitle-frames", type=int, help="Video-MME: frames whose subtitles are shown (32)")

    @classmethod
    def detect(cls, data_root: Path) -> bool:
        return bool(list(data_root.glob("videomme/*.parquet"))) or (data_root / "subtitle").is_dir()

    @classmethod
    def write_fixture(cls, root: Path, num_samples: int, *, num_frames: int = 32) -> Any:
        """Three questions per video when ``num_samples`` is a multiple of 3 (as released), else one."""
        from .fixtures import FixtureSet, write_videomme_fixture

        per_video = 3 if num_samples % 3 == 0 else 1
        questions = write_videomme_fixture(
            root, num_videos=num_samples // per_video, questions_per_video=per_video, num_frames=num_frames
        )
        return FixtureSet(cls.name, root, tuple(questions), None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.options.prompt_variant not in PROMPT_VARIANTS:
            raise ValueError(
                f"videomme prompt_variant must be one of {sorted(PROMPT_VARIANTS)}, got {self.options.prompt_variant!r}"
            )
        if not (self.options.subtitle_frames == -1 or self.options.subtitle_frames >= 1):
            raise ValueError(
                f"videomme subtitle_frames must be >= 1, or -1 for every frame; got {self.options.subtitle_frames}"
            )

    def annotation_path(self) -> Path:
        return find_annotation_file(self.data_root, ANNOTATION_PATTERNS, self.options.annotations)

    def resolve_video(self, video_id: str) -> Optional[Path]:
        for suffix in VIDEO_SUFFIXES:
            path = self.data_root / "data" / f"{video_id}{suffix}"
            if path.exists():
                return path
        return None

    def subtitle_path(self, video_id: str) -> Path:
        return self.data_root / "subtitle" / f"{video_id}.srt"

    def read_samples(self, tasks: Optional[Sequence[str]] = None) -> list[Sample]:
        path = self.annotation_path()
        rows = read_parquet_rows(path, _COLUMNS)
        return [self._sample(row_index, row, path) for row_index, row in enumerate(rows)]

    def _sample(self, row_index: int, row: Mapping[str, Any], path: Path) -> Sample:
        where = f"{path} row {row_index}"
        for column, allowed in _CATEGORICAL.items():
            if row[column] not in allowed:
                raise AnnotationError(f"{where}: unknown {column} {row[column]!r}; expected one of {list(allowed)}")
        options = row["options"]
        if not isinstance(options, list) or not all(isinstance(option, str) for option in options):
            raise AnnotationError(f"{where}: 'options' must be a list of strings, got {options!r}")
        for column in ("videoID", "question_id", "question", "answer"):
            if not isinstance(row[column], str) or not row[column]:
                raise AnnotationError(f"{where}: {column!r} must be a non-empty string, got {row[column]!r}")
        video_path = self.resolve_video(row["videoID"])
        fields = {column: row[column] for column in _CATEGORICAL}
        if video_path is None:
            fields["expected_path"] = str(self.data_root / "data" / f"{row['videoID']}.mp4")
        prompt = (
            None if self.options.subtitles else variant_prompt(row["question"], options, self.options.prompt_variant)
        )
        return Sample(
            id=row["question_id"],
            benchmark=self.name,
            task=row["duration"],
            index=row_index,
            video=row["videoID"],
            question=row["question"],
            options=tuple(options),
            gold=row["answer"],
            prompt=prompt,
            video_path=video_path,
            fields=fields,
        )

    def needs_video_for_prompt(self) -> bool:
        return self.options.subtitles

    def build_prompt(self, sample: Sample) -> str:
        if not self.options.subtitles:
            return super().build_prompt(sample)
        subtitle_file = self.subtitle_path(sample.video)
        if not subtitle_file.exists():
            text = NO_SUBTITLES
        else:
            if sample.video_path is None:
                raise BenchmarkError(
                    f"videomme sample {sample.id}: subtitles need the video file for its frame "
                    f"count and rate, and {sample.video} is missing"
                )
            total_frames, fps = video_frame_count_and_fps(sample.video_path)
            text = subtitles_at_frames(read_srt(subtitle_file), total_frames, fps, self.options.subtitle_frames)
        return build_subtitle_prompt(sample.question, sample.options, text)

    def check_inputs(self, samples: Sequence[Sample]) -> None:
        """With subtitles, every selected video's ``.srt`` file must read as UTF-8 with valid time lines."""
        if not self.options.subtitles:
            return
        for video in dict.fromkeys(sample.video for sample in samples):
            if self.subtitle_path(video).exists():
                read_srt(self.subtitle_path(video))

    def check(self) -> CheckReport:
        report = super().check()
        if not report.problems:
            all_videos = sorted({sample.video for sample in self.read_samples()})
            subtitled = [self.subtitle_path(video) for video in all_videos if self.subtitle_path(video).exists()]
            report.extras["subtitles"] = f"{len(subtitled)}/{len(all_videos)} videos have subtitle/<videoID>.srt"
            for path in subtitled:
                try:
                    read_srt(path)
                except AnnotationError as error:
                    report.problems.append(str(error))
        return report

    def summarize(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        answered = scored(records)
        correct = sum(1 for record in answered if record["correct"])
        return {
            "overall": percent(correct, len(answered)),
            "overall_definition": "micro accuracy over all questions (lmms-eval videomme_perception_score)",
            "per_duration": group_accuracy(answered, lambda r: r["fields"]["duration"], DURATIONS),
            "per_domain": group_accuracy(answered, lambda r: r["fields"]["domain"], DOMAINS),
            "per_sub_category": group_accuracy(answered, lambda r: r["fields"]["sub_category"], SUB_CATEGORIES),
            "per_task_type": group_accuracy(answered, lambda r: r["fields"]["task_type"], TASK_TYPES),
            "counts": count_summary(records),
        }

    def settings_record(self) -> dict[str, Any]:
        return {
            "benchmark": self.name,
            "subtitles": self.options.subtitles,
            "prompt_variant": self.options.prompt_variant,
            "post_prompt": (
                SUBTITLE_POST_PROMPT
                if self.options.subtitles
                else POST_PROMPTS.get(self.options.prompt_variant, QWEN3_VL_POST_PROMPT)
            ),
            "subtitle_frames": self.options.subtitle_frames if self.options.subtitles else None,
        }
