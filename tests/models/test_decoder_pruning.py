"""The model-independent pieces of pruning inside the decoder: layouts, positions, cache pruning, selection, and the
Llama-style decoder interface (positions, the FastV score)."""

from types import SimpleNamespace

import pytest
import torch

from divprune_video.models import PruningConfig
from divprune_video.models.decoder import LlamaStyleDecoder, full_positions, gather_last
from divprune_video.models.decoder_pruning import build_layout, select_visual_tokens
from divprune_video.selection import SelectionContext

from .helpers import cache_of, literal_prompt_ids, sample_frames, transformers

#: The interface's position and cache logic needs no real decoder module.
DECODER = LlamaStyleDecoder(SimpleNamespace(config=SimpleNamespace(), layers=[]))


def layout_of(mask, visual, kept, positions):
    return build_layout(DECODER, mask, visual, kept, positions, full_positions(mask))


def _batch():
    # Row 0: 2 pads, text, 4 visual, text, text. Row 1: text, 4 visual at other positions, 3 text.
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    visual = torch.zeros(2, 9, dtype=torch.bool)
    visual[0, 3:7] = True
    visual[1, 1:5] = True
    return mask, visual


def test_layout_keeps_text_and_kept_visual_tokens_in_order_left_padded():
    mask, visual = _batch()
    layout = layout_of(mask, visual, [torch.tensor([1, 3]), torch.tensor([0])], "renumber")
    assert layout.length == 6
    assert layout.index[0, 1:].tolist() == [2, 4, 6, 7, 8] and layout.attention_mask[0].tolist() == [0, 1, 1, 1, 1, 1]
    assert layout.index[1].tolist() == [0, 1, 5, 6, 7, 8] and layout.attention_mask[1].tolist() == [1] * 6
    assert layout.position_ids.tolist() == [[0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5]]
    assert layout.next_position.tolist() == [5, 6]


def test_original_positions_keep_the_full_sequences_numbering():
    mask, visual = _batch()
    layout = layout_of(mask, visual, [torch.tensor([1, 3]), torch.tensor([0])], "original")
    # Row 0's valid tokens are numbered from its first valid column (column 2 is position 0).
    assert layout.position_ids.tolist() == [[0, 0, 2, 4, 5, 6], [0, 1, 5, 6, 7, 8]]
    assert layout.next_position.tolist() == [7, 9]


def test_gather_along_sequence_and_cache_dimensions():
    mask, visual = _batch()
    layout = layout_of(mask, visual, [torch.tensor([0, 1, 2, 3]), torch.tensor([2, 3])], "renumber")
    hidden = torch.arange(2 * 9 * 3, dtype=torch.float32).view(2, 9, 3)
    gathered = layout.gather(hidden)
    assert gathered.shape == (2, 7, 3)
    assert torch.equal(gathered[1], hidden[1, [0, 3, 4, 5, 6, 7, 8]])
    keys = torch.randn(2, 4, 9, 5)
    assert torch.equal(layout.gather(keys, dim=2)[0], keys[0, :, 2:])
    assert torch.equal(layout.gather(keys, dim=2)[1], keys[1][:, [0, 3, 4, 5, 6, 7, 8]])


def test_prune_cache_prunes_only_the_first_layers():
    mask, visual = _batch()
    layout = layout_of(mask, visual, [torch.tensor([0]), torch.tensor([1])], "renumber")
    cache = transformers.DynamicCache()
    originals = []
    for layer in range(3):
        keys, values = torch.randn(2, 2, 9, 4), torch.randn(2, 2, 9, 4)
        cache.update(keys, values, layer)
        originals.append((keys, values))
    DECODER.prune_cache(cache, 2, layout, 9)
    assert [layer.keys.shape[2] for layer in cache.layers] == [layout.length, layout.length, 9]
    assert torch.equal(cache.layers[1].values, layout.gather(originals[1][1], dim=2))
    assert cache.get_seq_length() == layout.length
    with pytest.raises(ValueError, match="holding"):
        DECODER.prune_cache(cache, 3, layout, 9)


def test_layout_refuses_right_padding_and_a_visual_last_token():
    mask, visual = _batch()
    with pytest.raises(ValueError, match="left-padded"):
        layout_of(mask.flip(1), visual, [torch.tensor([0]), torch.tensor([0])], "renumber")
    visual[1, 8] = True
    with pytest.raises(ValueError, match="end with a text token"):
        layout_of(mask, visual, [torch.tensor([0]), torch.tensor([0])], "renumber")


@pytest.mark.parametrize("method", ["divprune", "uniform", "random"])
def test_selection_counts_order_and_keep_all(method):
    tokens = torch.randn(40, 8, generator=torch.Generator().manual_seed(1))
    kept = select_visual_tokens(tokens, PruningConfig(keep_ratio=0.25, method=method))
    assert kept.numel() == 10 and torch.equal(kept, kept.unique()) and int(kept.max()) < 40
    assert torch.equal(select_visual_tokens(tokens, PruningConfig(keep_ratio=1.0, method=method)), torch.arange(40))


def test_selection_is_the_selectors_choice():
    from divprune_video import divprune

    tokens = torch.randn(50, 6, generator=torch.Generator().manual_seed(2))
    kept = select_visual_tokens(tokens, PruningConfig(keep_ratio=0.3))
    assert torch.equal(kept, divprune(tokens, num_keep=15).sort().values)
    random_a = select_visual_tokens(tokens, PruningConfig(keep_ratio=0.3, method="random", seed=1))
    random_b = select_visual_tokens(tokens, PruningConfig(keep_ratio=0.3, method="random", seed=2))
    assert not torch.equal(random_a, random_b)
    attention = torch.linspace(0, 1, 50)
    fastv = PruningConfig(keep_ratio=0.1, method="attention", prune_layer=2)
    top = select_visual_tokens(tokens, fastv, SelectionContext(attention=attention))
    assert top.tolist() == list(range(45, 50))


def test_selectors_get_the_samples_context():
    """The context a selector receives: the sample's question, seed (its random draw, not the config's) and the
    frame of each token; "random" draws from the context's generator like any other method would."""
    from divprune_video.selection import SELECTORS, TokenSelector

    seen = []

    class Recorder(TokenSelector):
        def select(self, tokens, num_keep, **context):
            seen.append(context)
            return torch.arange(num_keep)

    SELECTORS.register("recorder", Recorder)
    try:
        tokens, frames = torch.randn(12, 4), torch.arange(3).repeat_interleave(4)
        context = SelectionContext(question="Who?", seed=7, frames=frames)
        select_visual_tokens(tokens, PruningConfig(keep_ratio=0.5, method="recorder", seed=1), context)
    finally:
        SELECTORS.unregister("recorder")
    assert seen[0]["question"] == "Who?" and seen[0]["seed"] == 7 and torch.equal(seen[0]["frames"], frames)
    random = PruningConfig(keep_ratio=0.5, method="random", seed=1)
    drawn = select_visual_tokens(tokens, random, SelectionContext(seed=7))
    assert torch.equal(drawn, select_visual_tokens(tokens, PruningConfig(keep_ratio=0.5, method="random", seed=7)))
    assert not torch.equal(drawn, select_visual_tokens(tokens, random))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"keep_ratio": 0.0}, ValueError, "keep_ratio"),
        ({"keep_ratio": 1.5}, ValueError, "keep_ratio"),
        ({"keep_ratio": "half"}, TypeError, "keep_ratio"),
        ({"method": "best"}, ValueError, "method must be one of"),
        ({"prune_layer": -1}, ValueError, "prune_layer"),
        ({"prune_layer": 1.5}, TypeError, "prune_layer"),
        ({"positions": "shifted"}, ValueError, "positions"),
        ({"method": "attention", "prune_layer": 0}, ValueError, "prune_layer >= 1"),
    ],
)
def test_pruning_config_rejects_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        PruningConfig(**kwargs)


def test_num_keep_rounds_like_the_selector():
    assert PruningConfig(keep_ratio=0.15).num_keep(4608) == 691
    assert PruningConfig(keep_ratio=0.01).num_keep(10) == 1
    assert PruningConfig(method="none", keep_ratio=0.1).num_keep(100) == 100


def test_multi_axis_positions_gather_and_step_along_the_sequence():
    mask, visual = _batch()
    prompt = torch.stack([full_positions(mask), 10 * full_positions(mask)])  # (2 axes, B, L)
    index = torch.tensor([[2, 4, 8], [0, 5, 8]])
    assert gather_last(prompt, index).tolist() == [[[0, 2, 6], [0, 5, 8]], [[0, 20, 60], [0, 50, 80]]]
    positions, following = DECODER.pruned_positions(prompt, index, torch.ones_like(index), "original")
    assert positions.shape == (2, 2, 3) and following.tolist() == [[7, 9], [61, 81]]
    assert DECODER.step_positions(following, 2, 1).tolist() == [[[9], [11]], [[63], [83]]]
    with pytest.raises(ValueError, match="positions='shifted'"):
        DECODER.pruned_positions(prompt, index, torch.ones_like(index), "shifted")


def test_sliding_window_layers_are_refused():
    decoder = LlamaStyleDecoder(
        SimpleNamespace(
            config=SimpleNamespace(layer_types=["full_attention", "sliding_attention"]), layers=[None, None]
        )
    )
    with pytest.raises(ValueError, match=r"decoder layers \[1\] use sliding-window attention"):
        decoder.check_prunable()


def test_last_token_attention_equals_eager_attention_weights(adapter, tiny_checkpoint):
    eager = transformers.LlavaNextVideoForConditionalGeneration.from_pretrained(
        str(tiny_checkpoint), attn_implementation="eager"
    ).eval()
    video = adapter.encode_frames(sample_frames(4))
    ids = literal_prompt_ids(adapter.tokenizer, "Why?", video.num_tokens)
    embeds, _ = adapter.embed(ids, [video])
    with torch.inference_mode():
        full = eager(inputs_embeds=embeds, use_cache=True, output_hidden_states=True, output_attentions=True)
    decoder = LlamaStyleDecoder(eager.model.language_model)
    positions = torch.arange(ids.shape[1]).unsqueeze(0)
    for layer in range(decoder.num_layers):
        hidden = full.hidden_states[layer]
        with torch.inference_mode():
            cos, sin = decoder.rotary(hidden, positions)
            scores = decoder.last_token_attention(
                layer,
                hidden[:, -1:],
                (cos[:, -1:], sin[:, -1:]),
                cache_of(full).layers[layer].keys,
                torch.ones(positions.shape, dtype=torch.bool),
            )
        expected = full.attentions[layer][:, :, -1, :].mean(dim=1)
        torch.testing.assert_close(scores, expected, rtol=0, atol=1e-6)
