"""``divprune-video stream`` / ``bench-stream`` and the example scripts, on the embedded tiny model."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from divprune_video.cli import main
from divprune_video.streaming.cli import TerminalQuestions, parse_source
from divprune_video.testing import write_index_coded_video

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline_single_thread(monkeypatch):
    """No hub access; one CPU thread for the tiny model (see tests/models/helpers.py)."""
    pytest.importorskip("transformers")
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """2 s at 30 fps."""
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    return write_index_coded_video(tmp_path_factory.mktemp("cli") / "clip.mp4", 60, height=40, width=32)


def test_help_of_the_commands_and_the_example_scripts(capsys):
    for command in ("stream", "bench-stream"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert "SOURCE" in printed.upper() and "--budget" in printed and "--ask-every" in printed
    assert "--budgets" in printed and "--tiny" in printed and "10000" in printed
    for script, expected in (("webcam_qa.py", "camera index"), ("stream_qa.py", "rtsp/http")):
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / script), "--help"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT / "examples",
        )
        assert done.returncode == 0 and expected in done.stdout and "--budget" in done.stdout, done.stderr


def test_a_short_run_on_a_file_answers_the_question_at_the_end(clip, capsys):
    status = main(
        [
            "stream",
            str(clip),
            "--budget",
            "32",
            "--sample-fps",
            "10",
            "--question",
            "What moves?",
            "--max-new-tokens",
            "4",
            "--no-stdin",
            "--fast",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "random weights" in printed and "gibberish" in printed
    assert "stopped: end of stream" in printed and "Q: What moves?" in printed and "A: " in printed
    kept, seen = map(int, re.search(r"\((\d+) tokens in memory of (\d+) seen", printed).groups())
    assert kept == 32 and seen == 20 * 16
    assert re.search(r"frames 20 \(dropped 0, reconnects 0\) \| memory 32/32 tokens", printed)


def test_ask_every_and_duration_on_a_file_played_as_live(clip, capsys):
    status = main(
        [
            "stream",
            str(clip),
            "--budget",
            "48",
            "--sample-fps",
            "5",
            "--question",
            "Why?",
            "--ask-every",
            "0.4",
            "--duration",
            "1.3",
            "--max-new-tokens",
            "2",
            "--no-stdin",
            "--status-every",
            "0.5",
        ]
    )
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "stopped: --duration 1.3 s reached" in printed
    assert printed.count("Q: Why?") >= 2 and printed.count("| memory") >= 2


def test_a_missing_camera_is_a_clear_error(capsys):
    assert main(["stream", "93", "--no-stdin", "--max-retries", "0", "--timeout", "1"]) == 1
    error = capsys.readouterr().err
    assert "webcam 93" in error and "camera" in error


def test_bad_arguments_are_refused(capsys):
    assert main(["stream", "0", "--budget", "0"]) == 2
    assert main(["stream", "0", "--ask-every", "5"]) == 2
    error = capsys.readouterr().err
    assert "--budget must be at least 1" in error and "--ask-every needs at least one --question" in error


def test_questions_typed_on_stdin_are_read_without_blocking(monkeypatch):
    read_end, write_end = os.pipe()
    stdin = os.fdopen(read_end)
    monkeypatch.setattr(sys, "stdin", stdin)
    reader = TerminalQuestions()
    assert reader.enabled and reader.poll(0.01) == []
    os.write(write_end, b"what is red?\n\n  where")
    assert reader.poll(1.0) == ["what is red?"]
    os.write(write_end, b" is it?\n")
    os.close(write_end)
    assert reader.poll(1.0) == ["where is it?"]
    assert reader.poll(1.0) == [] and not reader.enabled  # end of input: no more reading
    stdin.close()
    assert parse_source("0") == 0 and parse_source("/dev/video0") == "/dev/video0"


def test_bench_stream_tiny_smoke(capsys):
    assert main(["bench-stream", "--tiny", "--budgets", "32,64", "--frames", "60", "--other-frames", "30"]) == 0
    printed = capsys.readouterr().out
    rows = [line for line in printed.splitlines() if re.match(r"\| \d", line)]
    assert [row.split("|")[1].strip() for row in rows] == ["32", "64"]
    assert [row.split("|")[2].strip() for row in rows] == ["30", "60"]
    assert "16-token answer ms" in printed and "# command: divprune-video" in printed
    assert all("cached" in row for row in rows)


@pytest.fixture
def nothing_loaded(monkeypatch):
    """Fails the test if the command loads a model or writes the tiny one."""
    from divprune_video.eval import answerers
    from divprune_video.streaming import StreamingVideoQA

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(StreamingVideoQA, "__init__", forbidden)
    monkeypatch.setattr(answerers, "tiny_model_path", forbidden)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["0", "--budget", "15"], "--budget 15 is below one frame's 16 visual tokens for this model; use at least 16"),
        (["0", "--model", "tiny", "--budget", "8"], "--budget 8 is below one frame's 16 visual tokens"),
        (["0", "--question", ""], "--question must not be empty"),
        (["0", "--question", "Why?", "--question", "   "], "--question must not be empty"),
        (["no-such-clip.mp4"], "SOURCE: no such file: no-such-clip.mp4"),
        (["0", "--device", "cuda"], "--device cuda: no CUDA device is available here"),
        (["0", "--model", "./my-llava"], "--model: no such folder: ./my-llava"),
        (["0", "--model", "~/no-such-llava"], "--model: no such folder: ~/no-such-llava"),
    ],
)
def test_bad_arguments_are_one_error_line_before_the_model_loads(arguments, expected, nothing_loaded, capsys):
    assert main(["stream", *arguments, "--no-stdin"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert expected in captured.err


def test_one_frames_tokens_come_from_the_config_as_the_model_encodes_them(tmp_path):
    from divprune_video.models import available_families, load_adapter
    from divprune_video.streaming.cli import frame_tokens
    from divprune_video.testing import moving_shapes_video, save_tiny_model

    families = {family.name: family for family in available_families()}
    for name in ("llava_next_video", "llava_onevision"):
        adapter = load_adapter(str(save_tiny_model(tmp_path / name, name)), device="cpu")
        encoded = adapter.encode_frames(moving_shapes_video(1, 48, 64))
        assert frame_tokens(adapter.config) == encoded.features.shape[0], name
        assert (
            frame_tokens(families[name].reference_config()) == {"llava_next_video": 144, "llava_onevision": 196}[name]
        )


def test_a_budget_the_config_cannot_check_is_refused_by_the_first_frame(clip, monkeypatch, capsys):
    from divprune_video.streaming import cli

    monkeypatch.setattr(cli, "frame_tokens", lambda config: None)  # a family whose frame size the config leaves open
    assert main(["stream", str(clip), "--budget", "8", "--no-stdin", "--fast", "--question", "Why?"]) == 2
    captured = capsys.readouterr()
    assert "error: token_budget=8 is smaller than one frame's 16 visual tokens" in captured.err
    assert "Traceback" not in captured.err and "Q: Why?" not in captured.out


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """10 s at 30 fps: still playing when the tests press Ctrl-C."""
    pytest.importorskip("av")  # the fixture writes its videos with PyAV
    return write_index_coded_video(tmp_path_factory.mktemp("cli") / "long.mp4", 300, height=40, width=32)


def test_ctrl_c_joins_the_ingestion_thread_and_says_what_was_ingested(long_clip, monkeypatch, capsys):
    import threading

    from divprune_video.streaming import StreamingVideoQA

    sessions = []
    original_run = StreamingVideoQA.run

    def run(qa, *args, **kwargs):
        sessions.append(qa)
        return original_run(qa, *args, **kwargs)

    def poll(self, timeout):
        time.sleep(timeout)
        if sessions[0].num_frames >= 3:
            raise KeyboardInterrupt
        return []

    monkeypatch.setattr(StreamingVideoQA, "run", run)
    monkeypatch.setattr(TerminalQuestions, "poll", poll)
    status = main(
        ["stream", str(long_clip), "--budget", "32", "--sample-fps", "10", "--no-stdin", "--question", "Never asked?"]
    )
    captured = capsys.readouterr()
    assert status == 0 and "Traceback" not in captured.err and "error" not in captured.err, captured.err
    last = captured.out.strip().splitlines()[-1]
    frames = int(
        re.fullmatch(
            r"stopped \(Ctrl-C\): (\d+) frames ingested from .*long\.mp4 \(\d+ dropped, 0 "
            r"reconnects\); memory \d+/32 tokens from \d+ frames",
            last,
        ).group(1)
    )
    assert frames >= 3 and frames == sessions[0].num_frames and "Q: Never asked?" not in captured.out
    assert not sessions[0].running  # the ingestion thread and the reader's are joined:
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("divprune-stream")]


def test_ctrl_c_from_the_terminal_stops_without_a_traceback(long_clip):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "divprune_video",
            "stream",
            str(long_clip),
            "--no-stdin",
            "--budget",
            "64",
            "--sample-fps",
            "10",
            "--status-every",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        for line in process.stdout:  # wait for a status line with frames in it
            if re.match(r"\[ *[\d.]+ s\] frames [1-9]", line):
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert re.search(r"^stopped \(Ctrl-C\): \d+ frames ingested from .*long\.mp4", out, re.MULTILINE), out


def test_bench_stream_spreads_a_frame_pair_over_its_frames():
    """Qwen-VL encodes frames in pairs: the held frame's record has no times, the pair's second carries both
    frames'; each frame counts half, so medians compare with one-by-one families."""
    from divprune_video.streaming.benchmark import frame_times
    from divprune_video.streaming.qa import IngestRecord

    records = [
        IngestRecord(0, 0, 0, 0.0, 0.0),
        IngestRecord(0, 8, 8, 0.010, 0.002),
        IngestRecord(1, 0, 8, 0.0, 0.0),
        IngestRecord(1, 8, 16, 0.012, 0.004),
        IngestRecord(2, 0, 16, 0.0, 0.0),  # its pair is not complete: no times yet
    ]
    encode, update, timed = frame_times(records)
    assert timed == 4
    assert encode[:4].tolist() == [0.005, 0.005, 0.006, 0.006]
    assert update[:4].tolist() == [0.001, 0.001, 0.002, 0.002]
    one_by_one = [IngestRecord(i, 8, 8 * (i + 1), 0.01 * (i + 1), 0.001) for i in range(3)]
    encode, update, timed = frame_times(one_by_one)
    assert timed == 3 and encode.tolist() == [0.01, 0.02, 0.03] and update.tolist() == [0.001] * 3
