import numpy as np
import pytest

from divprune_video.video import TimeRangeError
from divprune_video.video.sampling import rate_indices, sample_window, time_window, uniform_indices

SIZES = [
    (1, 1),
    (1, 8),
    (7, 3),
    (10, 3),
    (100, 8),
    (150, 32),
    (301, 32),
    (18000, 32),
    (18000, 64),
    (1799, 512),
    (31, 32),
    (32, 32),
    (33, 32),
    (5, 64),
]


@pytest.mark.parametrize("total,count", SIZES)
def test_lmms_eval_rule_matches_its_expression(total, count):
    # lmms-eval: n = min(num_frames, total); np.linspace(0, total - 1, n, dtype=int)
    reference = np.linspace(0, total - 1, min(count, total), dtype=int)
    np.testing.assert_array_equal(uniform_indices(total, count, "lmms_eval"), reference)


@pytest.mark.parametrize("total,count", SIZES)
def test_llava_next_video_rule_matches_the_model_card_expression(total, count):
    # transformers' LLaVA-NeXT-Video example: np.arange(0, total, total / n).astype(int)
    reference = np.arange(0, total, total / count).astype(int)[:count]
    got = uniform_indices(total, count, "llava_next_video")
    assert len(got) == count
    np.testing.assert_array_equal(got[: len(reference)], reference)


def test_llava_next_video_rule_matches_the_processors_integer_form():
    for count in (8, 32, 64):
        for total in range(count, 5000, 7):
            np.testing.assert_array_equal(
                uniform_indices(total, count, "llava_next_video"), np.arange(count) * total // count
            )


def test_the_two_rules_differ_and_lmms_eval_keeps_the_last_frame():
    lmms, llava = uniform_indices(100, 8, "lmms_eval"), uniform_indices(100, 8, "llava_next_video")
    assert lmms[0] == llava[0] == 0 and lmms[-1] == 99 and llava[-1] < 99
    assert not np.array_equal(lmms, llava)
    assert len(uniform_indices(5, 8, "lmms_eval")) == 5  # capped: every frame once
    assert len(uniform_indices(5, 8, "llava_next_video")) == 8  # repeats frames


def test_bad_rule_and_counts_raise():
    with pytest.raises(ValueError, match="sampling"):
        uniform_indices(10, 2, "middle")
    with pytest.raises(ValueError, match="num_frames"):
        uniform_indices(10, 0)


def test_rate_indices_take_the_frame_on_screen_every_interval():
    stamps = np.arange(300) / 30.0  # 10 s at 30 fps
    np.testing.assert_array_equal(rate_indices(stamps, 1.0, 0.0, 10.0), np.arange(10) * 30)
    np.testing.assert_array_equal(rate_indices(stamps, 2.0, 1.0, 3.0), [30, 45, 60, 75])
    # Faster than the video: every frame once, no repeats.
    np.testing.assert_array_equal(rate_indices(stamps[:10], 100.0, 0.0, 10 / 30), np.arange(10))


def test_rate_indices_follow_variable_frame_rate_timestamps():
    stamps = np.array([0.0, 0.1, 0.15, 0.9, 1.0, 1.05, 2.5])
    # At t = 0, 0.5, 1.0, 1.5, 2.0, 2.5 the frames on screen are 0, 2, 4, 5, 5, 6.
    np.testing.assert_array_equal(rate_indices(stamps, 2.0, 0.0, 2.6), [0, 2, 4, 5, 6])


def test_time_window_bounds_and_errors():
    stamps = np.arange(300) / 30.0
    first, stop, _, _ = time_window(stamps, 10.0, 2.0, 4.0, source="clip.mp4")
    assert (first, stop) == (60, 121)
    assert time_window(stamps, 10.0, None, None, source="clip.mp4")[:2] == (0, 300)
    for start, end, match in [
        (-1, None, "before"),
        (10.0, None, "at or after"),
        (3, 2, "after start"),
        (0, 12.0, "after the video's end"),
        (float("nan"), None, "finite"),
    ]:
        with pytest.raises(TimeRangeError, match=match) as info:
            time_window(stamps, 10.0, start, end, source="clip.mp4")
        assert "clip.mp4" in str(info.value)


def test_sample_window_uniform_over_the_window():
    stamps = np.arange(300) / 30.0
    window = time_window(stamps, 10.0, 2.0, 4.0, source="x")
    got = sample_window(stamps, window, num_frames=4, fps=None, rule="lmms_eval")
    np.testing.assert_array_equal(got, 60 + np.linspace(0, 60, 4, dtype=int))
    whole = time_window(stamps, 10.0, None, None, source="x")
    got = sample_window(stamps, whole, num_frames=None, fps=0.5, rule="lmms_eval")
    np.testing.assert_array_equal(got, [0, 60, 120, 180, 240])
