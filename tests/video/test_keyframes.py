import numpy as np
import pytest
import torch

from divprune_video import divprune
from divprune_video.video import VideoClip, histogram_features, select_keyframes, thumbnail_features

SCENE_COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40)]


def scenes(lengths=(9, 3, 6, 6), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Frames of solid-colour scenes with small noise, and each frame's scene id."""
    rng = np.random.default_rng(seed)
    frames, ids = [], []
    for scene, length in enumerate(lengths):
        for _ in range(length):
            noise = rng.integers(-6, 7, size=(24, 32, 3))
            frames.append(np.clip(np.array(SCENE_COLOURS[scene]) + noise, 0, 255).astype(np.uint8))
            ids.append(scene)
    return np.stack(frames), np.array(ids)


@pytest.mark.parametrize("features", ["thumbnail", "histogram"])
def test_one_keyframe_per_scene_in_time_order(features):
    frames, ids = scenes()
    picks = select_keyframes(frames, 4, features=features)
    assert picks.dtype == np.int64 and np.all(np.diff(picks) > 0)
    assert sorted(ids[picks].tolist()) == [0, 1, 2, 3]


def test_it_is_divprune_over_the_features():
    frames, _ = scenes(seed=3)
    expected = np.sort(divprune(thumbnail_features(frames), num_keep=5, metric="l2").numpy())
    np.testing.assert_array_equal(select_keyframes(frames, 5), expected)


def test_callable_features_clip_and_tensor_inputs():
    frames, ids = scenes(seed=5)
    mean_colour = lambda batch: torch.from_numpy(batch.reshape(len(batch), -1, 3).mean(1))  # noqa: E731
    picks = select_keyframes(torch.from_numpy(frames), 4, features=mean_colour)
    assert sorted(ids[picks].tolist()) == [0, 1, 2, 3]
    clip = VideoClip(frames, np.arange(len(frames)), np.arange(len(frames)) / 2.0, 2.0, 12.0, "scenes")
    np.testing.assert_array_equal(select_keyframes(clip, 4, features=mean_colour), picks)


def test_feature_shapes_and_errors():
    frames, _ = scenes(lengths=(2, 2))
    assert thumbnail_features(frames).shape == (4, 16 * 16 * 3)
    histograms = histogram_features(frames)
    assert histograms.shape == (4, 48)
    torch.testing.assert_close(histograms.reshape(4, 3, 16).sum(-1), torch.ones(4, 3))
    with pytest.raises(ValueError, match="k=5 is more than"):
        select_keyframes(frames, 5)
    with pytest.raises(ValueError, match="features must be one of"):
        select_keyframes(frames, 2, features="clip")
    with pytest.raises(ValueError, match=r"expected \(4, D\)"):
        select_keyframes(frames, 2, features=lambda batch: torch.zeros(3, 2))


@pytest.mark.parametrize("features", ["thumbnail", "histogram", "callable"])
def test_a_static_video_gives_its_distinct_frames_then_the_first_copies(features):
    """Identical frames have identical features, at distance exactly 0: ties go to the earliest frame."""
    frames, _ = scenes(lengths=(1, 1), seed=7)
    static = np.concatenate([frames[:1].repeat(6, axis=0), frames[1:], frames[:1].repeat(33, axis=0)])  # 40 frames

    def pixels(batch: np.ndarray) -> torch.Tensor:  # compared by cosine distance, as every callable
        return torch.from_numpy(batch.reshape(len(batch), -1)[:, :64].astype(np.float32))

    extractor = pixels if features == "callable" else features
    np.testing.assert_array_equal(select_keyframes(static, 8, features=extractor), [0, 1, 2, 3, 4, 5, 6, 7])
