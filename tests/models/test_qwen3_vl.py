"""Qwen3-VL: the adapter contract on its tiny checkpoint (3-D positions, frame pairs, timestamps in the text,
DeepStack), and what only this family has."""

import numpy as np
import pytest
import torch

from divprune_video.models import FrameTiming, PruningConfig
from divprune_video.models.patches import PatchFramePreprocessor, smart_resize_video
from divprune_video.models.qwen3_vl.presets import reference_config

from .contract import QUESTION
from .qwen_contract import SYSTEM, QwenContract


class TestQwen3VL(QwenContract):
    model_type = "qwen3_vl"
    tokens_per_frame = 6  # eight 72 x 96 frames -> 64 x 96 -> 4 x 6 patches of 16 px, merged to 2 x 3 per pair
    unframed_per_video = 0
    second_per_group = False

    def literal_prompt(self, question: str, video) -> str:
        times, _ = video.times()
        counts = torch.unique_consecutive(video.token_frames(), return_counts=True)[1].tolist()
        pairs = "".join(
            f"<{stamp:.1f} seconds><|vision_start|>" + "<|video_pad|>" * count + "<|vision_end|>"
            for stamp, count in zip(times.tolist(), counts)
        )
        return (
            SYSTEM
            + "<|im_start|>user\n<|vision_start|>"
            + pairs
            + "<|vision_end|>"
            + question
            + "<|im_end|>\n<|im_start|>assistant\n"
        )

    def language_extras(self, video, visual_mask, kept=None, first_layer=0) -> dict:
        """The model's own DeepStack inputs: the (kept) tokens' features per level, from ``first_layer`` on."""
        levels = video.layer_features[first_layer:]
        if not levels:
            return {}
        picks = slice(None) if kept is None else kept
        return {"visual_pos_masks": visual_mask, "deepstack_visual_embeds": [features[picks] for features in levels]}

    def test_deepstack_features_come_from_the_vision_tower(self, adapter):
        video = adapter.encode_frames(self.frames(8))
        assert len(video.layer_features) == 2
        assert all(level.shape == video.features.shape for level in video.layer_features)
        assert not torch.allclose(video.layer_features[0], video.layer_features[1])

    def test_deepstack_matters(self, adapter):
        """Leaving DeepStack out changes the answer: the equivalence tests above exercise it."""
        video = adapter.encode_frames(self.frames(8))
        with_deepstack = adapter.generate(
            [video],
            [QUESTION],
            PruningConfig(method="none"),
            max_new_tokens=1,
            output_logits=True,
            return_dict_in_generate=True,
        )
        video.layer_features = ()
        without = adapter.generate(
            [video],
            [QUESTION],
            PruningConfig(method="none"),
            max_new_tokens=1,
            output_logits=True,
            return_dict_in_generate=True,
        )
        assert not torch.allclose(with_deepstack.raw.logits[0], without.raw.logits[0], atol=1e-3)

    def test_streaming_holds_deepstack_features_of_the_groups_in_memory_only(self, adapter):
        from divprune_video import StreamingVideoQA

        qa = StreamingVideoQA(adapter, token_budget=8)
        for frame in self.frames(16, seed=3)[:-1]:
            qa.ingest(frame)
        before = set(qa.snapshot().frame_ids.tolist())
        qa.ingest(self.frames(16, seed=3)[-1])  # completes group 7
        video, snapshot = qa.encoded_memory()
        # Bounded by the memory: the groups held now, and those the last update evicted (dropped by the next one).
        assert set(snapshot.frame_ids.tolist()) <= set(qa._layer_features) <= before | {7}
        frames = self.frames(16, seed=3)
        pairs = [adapter.encode_frames(frames[start : start + 2]) for start in range(0, 16, 2)]  # as ingested
        picks = snapshot.token_indices
        assert len(video.layer_features) == 2
        for level, ours in enumerate(video.layer_features):
            theirs = torch.cat([pair.layer_features[level] for pair in pairs])
            torch.testing.assert_close(ours, theirs[picks], rtol=0, atol=0)
        assert qa.ask(QUESTION, max_new_tokens=2).num_kept == video.num_tokens <= 8

    def test_timestamps_are_the_pairs_mean_times(self, adapter):
        timing = FrameTiming((0.0, 0.5, 3.0, 3.5, 10.0), 2.0)
        video = adapter.encode_frames(self.frames(5), timing)
        assert video.times()[0].tolist() == [0.25, 3.25, 10.0]  # the last pair repeats its frame
        ids, _ = adapter.tokenize([video], [QUESTION])
        text = adapter.tokenizer.decode(ids[0])
        assert "<0.2 seconds>" in text and "<3.2 seconds>" in text and "<10.0 seconds>" in text

    def test_pruning_keeps_every_timestamp(self, adapter):
        video = adapter.encode_frames(self.frames(8))
        result = adapter.generate(
            [video], [QUESTION], PruningConfig(keep_ratio=0.1), max_new_tokens=1, return_dict_in_generate=True
        )
        groups = video.token_frames()[result.records[0].kept_indices].unique()
        assert groups.numel() < video.num_frames  # some pairs lost every token ...
        embeds, keep = self.kept_sequence(adapter, video, QUESTION, result.records[0].kept_indices)
        kept_text = adapter.tokenizer.decode(self.prompt_ids(adapter, QUESTION, video)[0, keep])
        assert all(f"<{stamp:.1f} seconds>" in kept_text for stamp in video.times()[0].tolist())  # ... not its time

    def test_a_sparse_video_is_numbered_like_the_whole_one(self, adapter):
        video = adapter.encode_frames(self.frames(8))
        keep = torch.tensor([0, 1, 5, 6, 9, 12, 17, 18, 23])
        sparse = adapter.video_from_tokens(
            video.features[keep],
            video.token_frames()[keep],
            video.token_cells()[keep],
            video.grid,
            4,
            group_times=video.times()[0],
            sampled_fps=1.0,
        )
        ids = self.prompt_ids(adapter, QUESTION, video)
        whole = adapter.prompt_positions(ids, torch.ones_like(ids), [video])
        drop = (ids[0] == adapter.video_token_id).nonzero().squeeze(1)[~torch.isin(torch.arange(24), keep)]
        kept = torch.ones(ids.shape[1], dtype=torch.bool)
        kept[drop] = False
        short, _ = adapter.tokenize([sparse], [QUESTION])
        assert torch.equal(short[0], ids[0, kept])
        torch.testing.assert_close(
            adapter.prompt_positions(short, torch.ones_like(short), [sparse]), whole[..., kept], rtol=0, atol=0
        )

    def test_the_pixel_limits_bound_the_whole_video(self):
        preprocess = PatchFramePreprocessor(
            min_pixels=64 * 64,
            max_pixels=96 * 96 * 8,
            patch_size=16,
            temporal_patch_size=2,
            merge_size=2,
            mean=(0.5,) * 3,
            std=(0.5,) * 3,
            budget="video",
        )
        few = preprocess(np.zeros((2, 72, 96, 3), dtype=np.uint8))
        many = preprocess(np.zeros((32, 72, 96, 3), dtype=np.uint8))
        assert few.grid_thw[1:].prod() > many.grid_thw[1:].prod()  # more frames, fewer pixels each
        assert smart_resize_video(8, 72, 96, 32, 2, 64 * 64, 96 * 96 * 8) == (64, 96)
        with pytest.raises(ValueError, match="at least 2 frames"):
            smart_resize_video(1, 72, 96, 32, 2, 64 * 64, 96 * 96 * 8)


def test_the_8b_configuration_has_the_published_shape():
    config = reference_config()
    text, vision = config.text_config, config.vision_config
    assert (
        text.hidden_size,
        text.num_hidden_layers,
        text.num_attention_heads,
        text.num_key_value_heads,
        text.head_dim,
    ) == (4096, 36, 32, 8, 128)
    assert text.rope_parameters["mrope_section"] == [24, 20, 20] and text.rope_parameters["mrope_interleaved"]
    assert (vision.depth, vision.hidden_size, vision.patch_size, list(vision.deepstack_visual_indexes)) == (
        27,
        1152,
        16,
        [8, 16, 24],
    )
