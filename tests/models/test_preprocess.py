"""Frame preprocessing: the PyTorch path follows the checkpoint's video processor settings."""

import numpy as np
import pytest
import torch

from divprune_video.models.preprocess import TorchFramePreprocessor, check_frames, load_frame_preprocessor

from .helpers import sample_frames

MEAN, STD = (0.5, 0.25, 0.0), (0.5, 0.25, 1.0)


def test_shortest_edge_resize_then_center_crop():
    # A 40 x 80 frame, bright in columns 12..67, dark at both sides: resized to 20 x 40, its 20 x 20 centre crop
    # holds only the middle of the frame.
    frames = np.zeros((2, 40, 80, 3), dtype=np.uint8)
    frames[:, :, 12:68] = 200
    processor = TorchFramePreprocessor(20, (20, 20), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    pixels = processor(frames)
    assert pixels.shape == (2, 3, 20, 20) and pixels.dtype == torch.float32
    torch.testing.assert_close(pixels, torch.full_like(pixels, 200 / 255))


def test_normalisation_per_channel():
    frames = np.full((1, 8, 8, 3), 255, dtype=np.uint8)
    pixels = TorchFramePreprocessor(8, (8, 8), MEAN, STD)(frames)
    assert pixels[0, :, 0, 0].tolist() == pytest.approx([1.0, 3.0, 1.0])


def test_settings_from_the_video_processor_config(tiny_checkpoint):
    processor = load_frame_preprocessor(str(tiny_checkpoint))
    pixels = processor(sample_frames(3))
    assert pixels.shape == (3, 3, 56, 56)
    if isinstance(processor, TorchFramePreprocessor):
        assert processor.shortest_edge == 56 and processor.resample == "bicubic"


def test_exact_resize_without_crop():
    # SigLIP-style settings: a 40 x 80 frame is squeezed to 20 x 20, so both bright edges stay in the picture.
    frames = np.zeros((1, 40, 80, 3), dtype=np.uint8)
    frames[:, :, :10] = frames[:, :, 70:] = 255
    processor = TorchFramePreprocessor.from_dict(
        {"size": {"height": 20, "width": 20}, "do_center_crop": None, "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    )
    assert processor.resize_to == (20, 20) and processor.crop_size is None
    pixels = processor(frames)
    assert pixels.shape == (1, 3, 20, 20)
    assert float(pixels[0, 0, :, 0].min()) > 0.9 and float(pixels[0, 0, :, -1].min()) > 0.9
    assert float(pixels[0, 0, 10, 10]) == -1.0


@pytest.mark.parametrize("model_type", ["llava_next_video", "llava_onevision"])
def test_matches_transformers_video_processor(tmp_path, model_type):
    pytest.importorskip("torchvision")
    import json

    from transformers import AutoVideoProcessor

    from divprune_video.testing import save_tiny_model

    checkpoint = save_tiny_model(tmp_path / model_type, model_type)
    settings = json.loads((checkpoint / "video_preprocessor_config.json").read_text())
    frames = sample_frames(4)
    ours = TorchFramePreprocessor.from_dict(settings)(frames)
    theirs = AutoVideoProcessor.from_pretrained(str(checkpoint))(videos=[frames], return_tensors="pt")
    torch.testing.assert_close(ours, theirs["pixel_values_videos"][0], rtol=0, atol=2 / 255 / 0.26)


@pytest.mark.parametrize(
    "frames, error, match",
    [
        ([[1, 2, 3]], TypeError, "numpy array"),
        (np.zeros((4, 8, 8), dtype=np.uint8), ValueError, "shape"),
        (np.zeros((0, 8, 8, 3), dtype=np.uint8), ValueError, "T >= 1"),
        (np.zeros((2, 8, 8, 3), dtype=np.float32), TypeError, "uint8"),
    ],
)
def test_bad_frames(frames, error, match):
    with pytest.raises(error, match=match):
        check_frames(frames)


def test_bad_settings():
    with pytest.raises(ValueError, match="size"):
        TorchFramePreprocessor.from_dict({"size": {"longest_edge": 3}})
    with pytest.raises(ValueError, match="resample"):
        TorchFramePreprocessor.from_dict({"size": {"shortest_edge": 3}, "resample": 9})
