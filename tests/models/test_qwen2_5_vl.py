"""Qwen2.5-VL: the adapter contract on its tiny checkpoint (3-D positions, frame pairs), and what only this family
has: the processor's patch layout, the sparse-video numbering, the refusal of renumbered positions."""

import numpy as np
import pytest
import torch

from divprune_video.models import FrameTiming, PruningConfig
from divprune_video.models.patches import PatchFramePreprocessor, smart_resize
from divprune_video.models.qwen2_5_vl.presets import reference_config

from .contract import QUESTION
from .qwen_contract import SYSTEM, QwenContract


class TestQwen2_5_VL(QwenContract):
    model_type = "qwen2_5_vl"
    second_per_group = True
    tokens_per_frame = 9  # 72 x 96 frames -> 84 x 84 -> 6 x 6 patches, merged 2 x 2 -> 3 x 3 per frame pair
    unframed_per_video = 0

    def test_prompt_text(self, adapter):
        assert adapter.build_prompt("Why?") == (
            SYSTEM + "<|im_start|>user\n<|vision_start|><|video_pad|>"
            "<|vision_end|>Why?<|im_end|>\n<|im_start|>assistant\n"
        )

    def test_an_odd_frame_count_pads_the_last_pair(self, adapter):
        odd, even = (
            adapter.encode_frames(self.frames(5)),
            adapter.encode_frames(np.concatenate([self.frames(5), self.frames(5)[-1:]])),
        )
        assert odd.num_frames == 3
        torch.testing.assert_close(odd.features, even.features)

    @pytest.mark.parametrize("fps", [0.5, 1.0, 2.0, 4.0])
    def test_positions_follow_the_frames_timing(self, adapter, plain_model, fps):
        timing = FrameTiming.uniform(8, fps)
        video = adapter.encode_frames(self.frames(8), timing)
        ids = self.prompt_ids(adapter, QUESTION, video)
        ours = adapter.prompt_positions(ids, torch.ones_like(ids), [video])
        torch.testing.assert_close(ours, self.full_positions(plain_model, ids, video), rtol=0, atol=0)
        time_axis = ours[0, 0, ids[0] == adapter.video_token_id].unique()
        assert (time_axis.diff() == int(2 * 2 / fps)).all()  # tokens_per_second x seconds per pair

    @pytest.mark.parametrize("fps", [1.0, 3.0, 0.75, 5.0])
    def test_a_sparse_video_is_numbered_like_the_whole_one(self, adapter, fps):
        """A streaming memory's tokens (any subset, with their groups and cells) get the whole video's positions,
        also where the seconds per frame pair are fractional (2/3 s, 0.4 s), which transformers versions round
        differently."""
        video = adapter.encode_frames(self.frames(8), FrameTiming.uniform(8, fps))
        keep = torch.tensor([0, 3, 4, 10, 11, 12, 20, 33, 35])
        sparse = adapter.video_from_tokens(
            video.features[keep], video.token_frames()[keep], video.token_cells()[keep], video.grid, 4, sampled_fps=fps
        )
        ids = self.prompt_ids(adapter, QUESTION, video)
        whole = adapter.prompt_positions(ids, torch.ones_like(ids), [video])
        drop = (ids[0] == adapter.video_token_id).nonzero().squeeze(1)[~torch.isin(torch.arange(36), keep)]
        kept = torch.ones(ids.shape[1], dtype=torch.bool)
        kept[drop] = False
        short = ids[:, kept]
        torch.testing.assert_close(
            adapter.prompt_positions(short, torch.ones_like(short), [sparse]), whole[..., kept], rtol=0, atol=0
        )

    def test_patches_match_the_processor_layout(self, adapter):
        frames = np.random.default_rng(1).integers(0, 256, (3, 50, 80, 3), dtype=np.uint8)
        ours = PatchFramePreprocessor(
            min_pixels=56 * 56,
            max_pixels=112 * 140,
            patch_size=14,
            temporal_patch_size=2,
            merge_size=2,
            mean=(0.5,) * 3,
            std=(0.5,) * 3,
        )(frames)
        height, width = smart_resize(50, 80, 28, 56 * 56, 112 * 140)
        assert ours.grid_thw.tolist() == [2, height // 14, width // 14]
        # Patch (t, block row, block col, row, col) holds frames 2t..2t+1 at that 14 px square, channel-major.
        patch = ours.pixel_values[1].view(3, 2, 14, 14)
        assert ours.pixel_values.shape == (2 * (height // 14) * (width // 14), 3 * 2 * 14 * 14)
        assert torch.equal(patch[:, 0], patch[:, 0]) and patch.abs().max() <= 1.0 + 1e-6

    def test_renumbered_positions_are_refused(self, adapter):
        video = adapter.encode_frames(self.frames(4))
        with pytest.raises(ValueError, match="positions='renumber' is not supported"):
            adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.5, positions="renumber"), max_new_tokens=1)


def test_smart_resize_keeps_multiples_and_limits():
    assert smart_resize(448, 448, 28, 128 * 28 * 28, 768 * 28 * 28) == (448, 448)
    height, width = smart_resize(720, 1280, 28, 128 * 28 * 28, 768 * 28 * 28)
    assert height % 28 == width % 28 == 0 and height * width <= 768 * 28 * 28
    assert smart_resize(10, 10, 28, 56 * 56, 10**6) == (56, 56)
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 5000, 28, 56, 10**6)


def test_the_7b_configuration_has_the_published_shape():
    config = reference_config()
    text, vision = config.text_config, config.vision_config
    assert (
        text.hidden_size,
        text.num_hidden_layers,
        text.num_attention_heads,
        text.num_key_value_heads,
        text.vocab_size,
    ) == (3584, 28, 28, 4, 152064)
    assert text.rope_parameters["mrope_section"] == [16, 24, 24]
    assert (vision.depth, vision.hidden_size, vision.window_size, list(vision.fullatt_block_indexes)) == (
        32,
        1280,
        112,
        [7, 15, 23, 31],
    )
    assert config.video_token_id == 151656
