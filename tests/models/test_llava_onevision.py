"""LLaVA-OneVision / LLaVA-Video: the adapter contract on its tiny checkpoint, and what only this family has (the
newline token after the video, SigLIP's exact resize, the system turn of lmms-eval's prompt)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from divprune_video.models import PruningConfig
from divprune_video.models.llava_onevision.presets import reference_config

from .contract import QUESTION, AdapterContract

SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


class TestLlavaOnevision(AdapterContract):
    model_type = "llava_onevision"
    tokens_per_frame = 9  # 35 px frames in 7 px patches: 5 x 5, bilinear to ceil(5 / 2) = 3 x 3
    unframed_per_video = 1  # the newline token

    def literal_prompt(self, question: str, video) -> str:
        return (
            SYSTEM
            + "<|im_start|>user\n"
            + "<video>" * video.num_placeholders
            + "\n"
            + question
            + "<|im_end|>\n<|im_start|>assistant\n"
        )

    def test_prompt_text_follows_lmms_evals_conversation(self, adapter):
        assert (
            adapter.build_prompt("Why?") == SYSTEM + "<|im_start|>user\n<video>\nWhy?<|im_end|>\n"
            "<|im_start|>assistant\n"
        )

    def test_the_newline_token_is_kept_after_the_kept_frame_tokens(self, adapter):
        video = adapter.encode_frames(self.frames(4))
        torch.testing.assert_close(video.unframed, adapter.model.model.image_newline[None])
        assert video.num_placeholders == video.num_tokens + 1
        result = adapter.generate(
            [video], [QUESTION], PruningConfig(keep_ratio=0.25), max_new_tokens=1, return_dict_in_generate=True
        )
        embeds, keep = self.kept_sequence(adapter, video, QUESTION, result.records[0].kept_indices)
        ids = self.prompt_ids(adapter, QUESTION, video)
        kept_ids = ids[0, keep]
        # The kept frame tokens, then the newline: the last placeholder of the pruned sequence is the newline.
        placeholders = (kept_ids == adapter.video_token_id).nonzero().squeeze(1)
        assert placeholders.numel() == result.records[0].num_kept + 1
        torch.testing.assert_close(embeds[0, placeholders[-1]], video.unframed[0])

    def test_frames_are_resized_to_the_square_without_a_crop(self, adapter):
        frames = np.zeros((1, 40, 80, 3), dtype=np.uint8)
        frames[:, :, :8] = 255  # a bright band at the left edge survives (a centre crop would cut it)
        pixels = adapter.frame_preprocessor(frames)
        assert pixels.shape == (1, 3, 35, 35)
        assert float(pixels[0, 0, :, 0].min()) > 0.5

    def test_the_fast_vision_path_gives_the_stock_tokens(self, checkpoint):
        from divprune_video.models.llava_onevision import LlavaOnevisionAdapter

        fast = LlavaOnevisionAdapter.from_pretrained(str(checkpoint), device="cpu")
        stock = LlavaOnevisionAdapter(
            fast.model, fast.tokenizer, fast.frame_preprocessor, fast.chat_template, fast_vision=False
        )
        frames = np.random.default_rng(0).integers(0, 256, (5, 50, 70, 3), dtype=np.uint8)
        ours, theirs = fast.encode_frames(frames), stock.encode_frames(frames)
        torch.testing.assert_close(ours.features, theirs.features, rtol=0, atol=0)
        torch.testing.assert_close(ours.unframed, theirs.unframed, rtol=0, atol=0)


def test_the_7b_configuration_has_the_published_shape():
    config = reference_config()
    text, vision = config.text_config, config.vision_config
    assert (
        text.hidden_size,
        text.num_hidden_layers,
        text.num_attention_heads,
        text.num_key_value_heads,
        text.vocab_size,
    ) == (3584, 28, 28, 4, 152128)
    assert (vision.image_size, vision.patch_size, vision.num_hidden_layers, vision.hidden_size) == (384, 14, 26, 1152)
    assert math.ceil((vision.image_size // vision.patch_size) / 2) ** 2 == 196
    assert (config.video_token_id, config.vision_feature_select_strategy) == (151647, "full")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_bilinear_pooling_reads_channels_last_with_the_same_numbers(dtype):
    from divprune_video.models.llava_onevision.adapter import bilinear_pool

    features = torch.randn(3, 27 * 27, 40, generator=torch.Generator().manual_seed(0)).to(dtype)
    stock = (
        F.interpolate(features.view(3, 27, 27, 40).permute(0, 3, 1, 2).contiguous(), size=[14, 14], mode="bilinear")
        .permute(0, 2, 3, 1)
        .reshape(3, 196, 40)
    )
    assert torch.equal(bilinear_pool(features), stock)
