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
