"""The ``divprune-video`` command line as a whole: every command's help, the GPU benchmarks on a machine without
CUDA, Ctrl-C, and the README's first snippet on a CPU-only install."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from divprune_video.cli import build_parser, main, subcommand_parsers

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
GPU_BENCHMARKS = ("bench-select", "bench-model", "bench-stream")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_every_command_has_its_own_description_in_its_help(capsys):
    commands = subcommand_parsers(build_parser())
    assert {"demo", "stream", "bench-video", "bench check", "bench plot", "bench run"} <= set(commands)
    descriptions = {}
    for words, parser in commands.items():
        with pytest.raises(SystemExit) as exit_info:
            main([*words.split(), "--help"])
        printed = " ".join(capsys.readouterr().out.split())
        assert exit_info.value.code == 0 and parser.description, words
        opening = " ".join(parser.description.split())[:80]
        assert opening in printed, words
        descriptions[words] = opening
    assert len(set(descriptions.values())) >= len(descriptions) - 2  # mvbench / videomme / mlvu share a text


def test_gpu_benchmarks_say_gpu_in_their_help_and_in_the_readme(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    listing = capsys.readouterr().out
    commands = README[README.index("## Command line") : README.index("## Benchmarks")]
    for command in GPU_BENCHMARKS:
        assert re.search(rf"{command}\s+GPU:", listing), command
        assert re.search(rf"divprune-video {command}[^\n]*# GPU:", commands), command


def test_bench_video_labels_say_the_resolution_measured(capsys):
    from divprune_video.video.benchmark import format_tables

    assert "640x360, RGB" in format_tables([], [], resolution="640x360")
    assert "720p" not in format_tables([], [])  # no resolution given: none claimed
    for command in (["--help"], ["bench-video", "--help"]):
        with pytest.raises(SystemExit):
            main(command)
    printed = " ".join(capsys.readouterr().out.split())
    assert (
        "bench-video compare the video decoding backends on generated H.264 videos (1280x720 unless --height)"
        in printed
        and "--height HEIGHT frame height (default 720; width = 16/9 of it)" in printed
    )


def test_bench_select_picks_cpu_sizes_without_cuda(no_cuda, capsys):
    from divprune_video.selection.benchmark import CPU_DIM, CPU_SIZES

    assert main(["bench-select", "--repeats", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"bench-select on CPU, torch {torch.__version__}, D={CPU_DIM}, float32" in printed
    rows = [line for line in printed.split("\n\n")[-1].splitlines() if re.match(r"\| \d", line)]
    assert [int(row.split("|")[1].replace(",", "")) for row in rows] == list(CPU_SIZES)


def test_bench_model_and_bench_stream_run_their_smoke_test_without_cuda(no_cuda, capsys):
    pytest.importorskip("transformers")
    assert main(["bench-model", "--frames", "2", "--keep", "0.5", "--prune-layers", "0"]) == 0
    assert (
        main(["bench-stream", "--budgets", "32", "--frames", "12", "--other-frames", "12", "--sample-every", "6"]) == 0
    )
    captured = capsys.readouterr()
    assert "# bench-model: tiny test model" in captured.out and "| 32 |" in captured.out
    for command in ("bench-model", "bench-stream"):
        assert f"{command}: no CUDA device, so the tiny test model runs on the CPU" in captured.err


def test_ctrl_c_in_any_command_is_a_clean_stop(monkeypatch, capsys):
    from divprune_video import demo

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_tokens_only", interrupted)
    assert main(["demo", "--tokens-only"]) == 130
    assert capsys.readouterr().err.strip() == "interrupted (Ctrl-C)"


def readme_snippet(heading: str, needle: str) -> str:
    """The first ```python block after ``heading`` that contains ``needle``."""
    section = README[README.index(heading) :]
    for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL):
        if needle in block:
            return block
    raise AssertionError(f"no python block with {needle!r} after {heading!r}")


def test_the_readme_use_snippet_runs_on_a_cpu_only_install(tmp_path):
    snippet = readme_snippet("## Use", "divprune(")
    assert '"cuda"' not in snippet.replace('"cuda" if torch.cuda.is_available()', "")
    script = tmp_path / "use.py"
    script.write_text(snippet + "\nprint(kept.shape[0], [row.shape[0] for row in rows])\n")
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == "128 [1152, 750]"


def test_the_docs_say_a_file_played_as_live_needs_realtime():
    streaming = (ROOT / "docs" / "streaming.md").read_text()
    for text in (README, streaming):
        assert 'qa.run("file.mp4", realtime=True)' in text
