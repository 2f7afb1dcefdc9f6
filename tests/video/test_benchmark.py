import numpy as np

from divprune_video.cli import build_parser
from divprune_video.testing import read_frame_index
from divprune_video.video import load_video
from divprune_video.video.benchmark import format_tables, make_videos, run_benchmark


def test_bench_video_runs_end_to_end_on_tiny_videos(tmp_path):
    videos = make_videos(tmp_path, [1, 3], width=64, height=40, segment_seconds=2)
    assert [v.num_frames for v in videos] == [60, 180]
    long = load_video(videos[1].path, 7)  # the repeated file is a valid video whose codes repeat every segment
    assert [read_frame_index(f) for f in long.frames] == (long.indices % 60).tolist()
    loads, sequential = run_benchmark(videos[1:], ["pyav"], [4], repeats=1, sequential_frames=20)
    assert len(loads) == 1 and loads[0].exact and not loads[0].error and np.isfinite(loads[0].seconds)
    assert sequential[0].frames == 20 and sequential[0].fps > 0
    table = format_tables(loads, sequential)
    assert "| 0.1 min | pyav | 4 |" in table and "sequential decode" in table


def test_bench_video_is_a_subcommand():
    args = build_parser().parse_args(["bench-video", "--minutes", "1", "--frames", "32"])
    assert args.command == "bench-video" and callable(args.func)


def test_bench_video_writes_its_json_as_rows_like_every_speed_command(tmp_path, capsys):
    import json

    from divprune_video.cli import main

    out = tmp_path / "video.json"
    command = ["bench-video", "--minutes", "1", "--height", "36", "--frames", "4", "--backends", "pyav"]
    command += ["--seq-frames", "10", "--repeats", "1", "--workdir", str(tmp_path), "--json", str(out)]
    assert main(command) == 0
    rows = json.loads(out.read_text())
    assert [row["table"] for row in rows] == ["videos", "loads", "sequential"]
    assert rows[0]["num_frames"] == 1800 and rows[1]["backend"] == "pyav" and rows[2]["fps"] > 0
