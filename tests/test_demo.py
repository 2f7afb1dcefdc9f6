"""``divprune-video demo``: the video QA demo on the embedded tiny model, and the selection-only demo."""

import re

import numpy as np
import pytest
import torch

from divprune_video.cli import main
from divprune_video.demo import DIMMED, format_timings, overlay_kept_tokens


@pytest.fixture(autouse=True)
def offline_single_thread(monkeypatch):
    """No hub access; one CPU thread for the tiny model (see tests/models/helpers.py)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_video_qa_demo_on_the_embedded_model(tmp_path, capsys):
    pytest.importorskip("transformers")
    output = tmp_path / "kept.png"
    assert main(["demo", "--frames", "8", "--max-new-tokens", "4", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "random weights" in printed and "gibberish" in printed
    kept, total = map(int, re.search(r"kept (\d+) of (\d+) visual tokens", printed).groups())
    assert (kept, total) == (round(0.15 * 128), 128)
    assert "answer (divprune):" in printed and "time to first token" in printed
    from PIL import Image

    with Image.open(output) as image:
        assert image.size == (8 * 148 + 4, 148 + 4)


def test_overlay_dims_dropped_tokens():
    frames = np.full((2, 40, 60, 3), 200, dtype=np.uint8)
    image = np.asarray(overlay_kept_tokens(frames, torch.tensor([0, 7]), (2, 2), tile=40, columns=2))
    first, second = image[4:44, 4:44], image[4:44, 48:88]
    dimmed = [int(200 * DIMMED)] * 3
    assert first[5, 5].tolist() == [200, 200, 200]  # kept: token 0 is frame 0's top-left cell
    assert first[30, 30].tolist() == dimmed  # dropped
    assert second[30, 30].tolist() == [200, 200, 200] and second[5, 5].tolist() == dimmed


def test_timings_table():
    table = format_timings({"unpruned": dict.fromkeys(["decode", "encode", "select", "prefill", "generate"], 0.001)})
    assert "time to first token" in table and "4.0" in table


def test_tokens_only_demo(capsys):
    assert main(["demo", "--tokens-only", "--frames", "6", "--tokens-per-frame", "16", "--dim", "32"]) == 0
    printed = capsys.readouterr().out
    assert "DivPrune demo: 6 frames x 16 tokens = 96" in printed
    assert all(method in printed for method in ("divprune", "uniform", "random"))


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails the test if the demo builds a model, writes the sample video or loads a pipeline."""
    from divprune_video import demo, pipeline, testing

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the arguments were checked")

    monkeypatch.setattr(demo, "sample_video", forbidden)
    monkeypatch.setattr(testing, "save_tiny_llava_next_video", forbidden)
    monkeypatch.setattr(pipeline.VideoQAPipeline, "__init__", forbidden)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize(
    "arguments, expected",
    [
        (["--video", "no-such-clip.mp4"], "--video: no such file: no-such-clip.mp4"),
        (["--keep-ratio", "0"], "--keep-ratio must be in (0, 1]; got 0"),
        (["--keep-ratio", "1.5"], "--keep-ratio must be in (0, 1]; got 1.5"),
        (["--keep-ratio", "nan"], "--keep-ratio must be in (0, 1]"),
        (["--frames", "0"], "--frames must be at least 1; got 0"),
        (["--frames", "-4", "--tokens-only"], "--frames must be at least 1; got -4"),
        (["--prune-layer", "4"], "--prune-layer 4 is beyond the model's 4 decoder layers (0 to 3)"),
        (["--model", "tiny", "--prune-layer", "9"], "beyond the model's 4 decoder layers"),
        (["--method", "attention"], "--method attention ranks tokens by the attention they get inside the LLM"),
        (["--method", "fastv"], "--method must be one of"),
        (["--output", "no-such-folder/kept.png"], "--output no-such-folder/kept.png: no such folder: no-such-folder"),
        (["--device", "cuda"], "--device cuda: no CUDA device is available here"),
        (["--device", "cuda", "--tokens-only"], "--device cuda: no CUDA device is available here"),
        (["--device", "gpu"], "--device must be cpu or cuda"),
        (["--model", "./my-llava"], "--model: no such folder: ./my-llava"),
        (["--model", "~/no-such-llava"], "--model: no such folder: ~/no-such-llava"),
        (["--model", "checkpoints/llava/7b"], "--model: no such folder: checkpoints/llava/7b"),
    ],
)
def test_bad_arguments_are_one_error_line_before_any_work(
    arguments, expected, nothing_built, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", *arguments]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert expected in captured.err


def test_prune_layer_is_checked_against_the_checkpoints_config(tmp_path, nothing_built, capsys):
    pytest.importorskip("transformers")
    from divprune_video.models import model_family

    checkpoint = tmp_path / "checkpoint"
    checkpoint.mkdir()
    model_family("llava_onevision").reference_config().save_pretrained(checkpoint)  # config.json only: 28 layers
    assert main(["demo", "--model", str(checkpoint), "--prune-layer", "28"]) == 2
    assert "--prune-layer 28 is beyond the model's 28 decoder layers (0 to 27)" in capsys.readouterr().err
    assert main(["demo", "--model", str(tmp_path)]) == 2  # a folder without config.json
    error = capsys.readouterr().err
    assert error.startswith(f"error: --model {tmp_path}: cannot read its config.json") and error.count("\n") == 1
    assert main(["demo", "--model", "llava-hf/no-such-model"]) == 2  # offline: a hub id that cannot be read
    assert "--model llava-hf/no-such-model: cannot read its config.json" in capsys.readouterr().err


def test_model_tiny_and_the_png_in_the_temp_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("transformers")
    import tempfile

    monkeypatch.chdir(tmp_path / "..")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert main(["demo", "--model", "tiny", "--frames", "2", "--max-new-tokens", "2"]) == 0
    printed = capsys.readouterr().out
    png = tmp_path / "divprune_demo.png"
    assert png.is_file() and f"wrote {png.resolve()}:" in printed and "gibberish" in printed
    assert not list(tmp_path.parent.glob("*.png"))  # nothing in the working folder
