"""One attention call per chunk length in Qwen-style vision towers: the same numbers as transformers' per-chunk
loop (bit for bit on the CPU), in one to four calls per layer."""

import pytest
import torch
import torch.nn.functional as F

from divprune_video.models import load_adapter
from divprune_video.models.vision_attention import ChunkBatchedAttention, attend_in_chunks
from divprune_video.testing import moving_shapes_video, save_tiny_model

from .helpers import transformers


def _one_call_per_chunk(query, key, value, lengths, scaling):
    outputs, start = [], 0
    for length in lengths:
        parts = [tensor[start : start + length].transpose(0, 1)[None] for tensor in (query, key, value)]
        outputs.append(F.scaled_dot_product_attention(*parts, scale=scaling)[0].transpose(0, 1))
        start += length
    return torch.cat(outputs)


@pytest.mark.parametrize("lengths", [[16] * 5, [16, 8, 16, 8, 4], [3, 7, 1, 7, 3, 3]])
def test_chunks_attend_only_within_themselves_as_if_alone(lengths):
    generator = torch.Generator().manual_seed(len(lengths))
    query, key, value = (torch.randn(sum(lengths), 4, 8, generator=generator) for _ in range(3))
    calls = []
    original = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    F.scaled_dot_product_attention = counting
    try:
        ours = attend_in_chunks(query, key, value, lengths, 0.35)
    finally:
        F.scaled_dot_product_attention = original
    assert torch.equal(ours, _one_call_per_chunk(query, key, value, lengths, 0.35))
    assert len(calls) == len(set(lengths))


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen3_vl"])
def test_the_fast_tower_gives_the_stock_features(tmp_path, model_type):
    checkpoint = save_tiny_model(tmp_path / model_type, model_type)
    fast = load_adapter(str(checkpoint), device="cpu")
    assert all(isinstance(block.attn, ChunkBatchedAttention) for block in fast.model.model.visual.blocks)
    stock_model = transformers.AutoModelForImageTextToText.from_pretrained(str(checkpoint)).eval()
    stock = type(fast)(stock_model, fast.tokenizer, fast.frame_preprocessor, fast.chat_template, fast_vision=False)
    assert not any(isinstance(block.attn, ChunkBatchedAttention) for block in stock_model.model.visual.blocks)
    frames = moving_shapes_video(6, 72, 96, seed=2)
    ours, theirs = fast.encode_frames(frames), stock.encode_frames(frames)
    assert torch.equal(ours.features, theirs.features)
    assert all(torch.equal(a, b) for a, b in zip(ours.layer_features, theirs.layer_features))


@pytest.mark.parametrize("model_type", ["qwen2_5_vl", "qwen3_vl"])
def test_padded_mlps_give_the_same_outputs(tmp_path, model_type):
    """Padding a vision MLP's width with zero units (done on CUDA, where odd widths get slow kernels) changes only
    the order of additions: float64 outputs agree to rounding."""
    import copy

    from divprune_video.models.vision_attention import pad_mlp_width

    checkpoint = save_tiny_model(tmp_path / model_type, model_type)
    model = transformers.AutoModelForImageTextToText.from_pretrained(str(checkpoint)).double().eval()
    stock = model.model.visual.blocks[0].mlp
    padded = copy.deepcopy(stock)
    assert pad_mlp_width(padded, 48) == 48 - 64 % 48  # the tiny width, 64, up to 96
    assert pad_mlp_width(padded, 48) == 0  # already a multiple
    inputs = torch.randn(7, model.config.vision_config.hidden_size, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(padded(inputs), stock(inputs), rtol=1e-12, atol=1e-12)
    assert pad_mlp_width(torch.nn.Linear(3, 3)) == 0
