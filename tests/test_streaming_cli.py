"""``divprune-video stream`` / ``bench-stream`` and the example scripts, on the embedded tiny model."""

import os
import re
import subprocess
import sys
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
        done = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--help"], capture_output=True,
                              text=True, timeout=120, cwd=ROOT / "examples")
        assert done.returncode == 0 and expected in done.stdout and "--budget" in done.stdout, done.stderr


def test_a_short_run_on_a_file_answers_the_question_at_the_end(clip, capsys):
    status = main(["stream", str(clip), "--budget", "32", "--sample-fps", "10", "--question", "What moves?",
                   "--max-new-tokens", "4", "--no-stdin", "--fast"])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "random weights" in printed and "gibberish" in printed
    assert "stopped: end of stream" in printed and "Q: What moves?" in printed and "A: " in printed
    kept, seen = map(int, re.search(r"\((\d+) tokens in memory of (\d+) seen", printed).groups())
    assert kept == 32 and seen == 20 * 16
    assert re.search(r"frames 20 \(dropped 0, reconnects 0\) \| memory 32/32 tokens", printed)


def test_ask_every_and_duration_on_a_file_played_as_live(clip, capsys):
    status = main(["stream", str(clip), "--budget", "48", "--sample-fps", "5", "--question", "Why?",
                   "--ask-every", "0.4", "--duration", "1.3", "--max-new-tokens", "2", "--no-stdin",
                   "--status-every", "0.5"])
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
