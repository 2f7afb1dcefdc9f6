"""LLaVA-NeXT-Video: the adapter contract on its tiny checkpoint, and what only this family has."""

import torch

from divprune_video.models.llava_next_video.presets import reference_config

from .contract import AdapterContract


class TestLlavaNextVideo(AdapterContract):
    model_type = "llava_next_video"
    tokens_per_frame = 16  # 56 px frames in 7 px patches: 8 x 8, pooled 2 x 2
    unframed_per_video = 0

    def literal_prompt(self, question: str, video) -> str:
        return "USER: " + "<video>" * video.num_placeholders + "\n" + question + " ASSISTANT:"

    def test_prompt_text(self, adapter):
        assert adapter.build_prompt("Why?") == "USER: <video>\nWhy? ASSISTANT:"
        assert adapter.system_prompt is None

    def test_video_features_of_a_batch(self, adapter):
        pixels = torch.stack([adapter.frame_preprocessor(self.frames(3, seed)) for seed in (0, 1)])
        features = adapter.video_features(pixels)
        assert features.shape[:2] == (2, 3 * 16)
        torch.testing.assert_close(features[1], adapter.encode_frames(self.frames(3, 1)).features)


def test_the_7b_configuration_has_the_published_shape():
    config = reference_config()
    text, vision = config.text_config, config.vision_config
    shape = (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.vocab_size)
    assert shape == (4096, 32, 32, 32064)
    assert text.intermediate_size == 11008 and text.rope_parameters["rope_type"] == "linear"
    assert (vision.image_size, vision.patch_size, vision.num_hidden_layers) == (336, 14, 24)
    tokens_per_frame = (vision.image_size // vision.patch_size // config.spatial_pool_stride) ** 2
    assert tokens_per_frame == 144 and config.video_token_id == 32000
