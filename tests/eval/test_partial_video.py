"""Partial input: a clip whose decoder could not read some source frames (``clip.lost_frames``, ``clip.partial``) is
answered from the frames it has, recorded as partial and counted in summary.json; ``--strict-video`` (YAML
``strict_video``) makes it a per-sample error instead."""

import json

import numpy as np
import pytest

from divprune_video.cli import main
from divprune_video.eval import RunConfig, SampleError, config_from_mapping, read_config_file, run_benchmark, runner
from divprune_video.eval.results import ResultsError, read_records
from divprune_video.video import VideoClip

from .test_runner import FakeModel

LOST = {"action_count/0001": ((3, 5), (9, 12))}


def clip(lost=()):
    """A four-frame clip; ``lost`` source-frame ranges set as the video package's partial clips carry them."""
    frames = np.zeros((4, 8, 8, 3), dtype=np.uint8)
    result = VideoClip(frames, np.arange(4), np.arange(4) / 8.0, 8.0, 1.5, "clip.mp4", 12, "test")
    result.lost_frames = tuple(lost)
    if not isinstance(getattr(VideoClip, "partial", None), property):  # before VideoClip had the fields
        result.partial = bool(lost)
    return result


class PartialVideos(FakeModel):
    def decode(self, sample):
        super().decode(sample)
        return clip(LOST.get(sample.id, ()))


def config(root, output, **overrides):
    return RunConfig(
        benchmark="mvbench",
        data_root=root,
        model="fake",
        output=output,
        tasks=("action_count", "object_shuffle"),
        **overrides,
    )


def test_a_partial_clip_is_answered_recorded_and_counted(mvbench_data, tmp_path):
    root, _ = mvbench_data
    result = run_benchmark(config(root, tmp_path), answerer=PartialVideos(), progress=False)
    records = {r["id"]: r for r in read_records(tmp_path / "unpruned" / "samples.jsonl")}
    assert records["action_count/0001"]["partial"] is True and records["action_count/0001"]["error"] is None
    assert records["action_count/0001"]["lost_frames"] == [[3, 5], [9, 12]]
    assert all(r["partial"] is False and r["lost_frames"] == [] for k, r in records.items() if k not in LOST)
    counts = result.summaries["unpruned"]["counts"]
    assert counts["partial"] == 1 and counts["errors"] == 0 and counts["scored"] == 4
    assert "from partial videos 1" in (tmp_path / "unpruned" / "summary.md").read_text()
    assert "strict_video" not in json.loads((tmp_path / "unpruned" / "run.json").read_text())  # older runs resume


def test_strict_video_makes_a_partial_clip_a_per_sample_error(mvbench_data, tmp_path):
    root, _ = mvbench_data
    with pytest.raises(SampleError, match=r"action_count/0001 .*partial video .*\[3, 5\), \[9, 12\)"):
        run_benchmark(config(root, tmp_path / "stop", strict_video=True), answerer=PartialVideos(), progress=False)
    result = run_benchmark(
        config(root, tmp_path / "skip", strict_video=True, skip_missing=True), answerer=PartialVideos(), progress=False
    )
    records = {r["id"]: r for r in read_records(tmp_path / "skip" / "unpruned" / "samples.jsonl")}
    assert records["action_count/0001"]["error"].startswith("partial video (--strict-video): source frames [3, 5)")
    assert records["action_count/0001"]["lost_frames"] == [[3, 5], [9, 12]]
    counts = result.summaries["unpruned"]["counts"]
    assert counts["errors"] == 1 and counts["partial"] == 1 and counts["scored"] == 3
    with pytest.raises(ResultsError, match="strict_video: True -> None"):  # a different run: not resumed silently
        run_benchmark(config(root, tmp_path / "skip", skip_missing=True), answerer=PartialVideos(), progress=False)


def test_strict_video_from_the_command_line_and_yaml(mvbench_data, tmp_path, capsys, monkeypatch):
    root, _ = mvbench_data
    path = tmp_path / "run.yaml"
    path.write_text("benchmark: mvbench\nstrict_video: true\n")
    assert config_from_mapping({**read_config_file(path), "data_root": root, "output": tmp_path}).strict_video
    path.write_text("benchmark: mvbench\nstrict_video: 'yes'\n")
    with pytest.raises(ValueError, match=f"{path}: setting 'strict_video' must be true or false"):
        read_config_file(path)
    monkeypatch.setattr(runner, "make_answerer", lambda config, local_rank=0: PartialVideos())
    assert (
        main(
            [
                "bench",
                "mvbench",
                "--data-root",
                str(root),
                "--model",
                "fake",
                "--tasks",
                "action_count",
                "--strict-video",
                "--skip-missing",
                "--output",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "2/2 samples, 1 errors, 1 from partial videos" in capsys.readouterr().out


def test_frames_without_the_fields_are_whole():
    assert runner.lost_frames_of(None) == ((), False)
    assert runner.lost_frames_of(clip()) == ((), False)
    assert runner.lost_frames_of(clip([(0, 2)])) == (((0, 2),), True)


def damage_the_middle(path):
    """Zero a stretch of the video data (not its index): the decoder loses some frames, not the file."""
    data = bytearray(path.read_bytes())
    start = data.find(b"mdat") + 400
    data[start : start + 300] = bytes(300)
    path.write_bytes(bytes(data))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*could not be decoded")
def test_a_damaged_video_through_the_tiny_model(tmp_path, capsys):
    pytest.importorskip("transformers")
    if "lost_frames" not in getattr(VideoClip, "__dataclass_fields__", {}):
        pytest.skip("VideoClip does not report lost frames yet")
    from divprune_video.testing import write_mvbench_fixture

    write_mvbench_fixture(tmp_path / "data", tasks=["action_count"], questions_per_task=2, num_frames=48)
    damage_the_middle(tmp_path / "data" / "perception" / "videos" / "action_count_1.mp4")
    command = [
        "bench",
        "mvbench",
        "--data-root",
        str(tmp_path / "data"),
        "--model",
        "tiny",
        "--tasks",
        "action_count",
        "--num-frames",
        "8",
        "--no-progress",
    ]
    assert main([*command, "--output", str(tmp_path / "lenient")]) == 0
    records = read_records(tmp_path / "lenient" / "unpruned" / "samples.jsonl")
    assert [r["partial"] for r in records] == [False, True] and records[1]["lost_frames"]
    assert records[1]["error"] is None and len(records[1]["details"]["frame_indices"]) == 8
    assert main([*command, "--strict-video", "--skip-missing", "--output", str(tmp_path / "strict")]) == 0
    records = read_records(tmp_path / "strict" / "unpruned" / "samples.jsonl")
    assert records[0]["error"] is None and records[1]["error"].startswith("partial video (--strict-video)")
    assert "1 errors, 1 from partial videos" in capsys.readouterr().out
