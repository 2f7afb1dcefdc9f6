"""Pruning after decoder layer K: the pruned cache and the generation that continues on it, checked against a
reference assembled from plain transformers forward passes (a full unpruned run whose first K layers' cache loses
the dropped positions, and a model made of layers K.. run on the kept hidden states)."""

import copy

import pytest
import torch

from divprune_video.models import PruningConfig
from divprune_video.models.decoder_pruning import last_token_attention

from .helpers import CACHE_KWARG, cache_of, literal_prompt_ids, manual_greedy, sample_frames, step_logits, transformers

QUESTION = "Which object moves fastest?"
STEPS = 24


def _full_run(adapter, plain_model, video, *, attn=None):
    """The unpruned prompt through plain transformers: its cache and every layer's hidden states."""
    ids = literal_prompt_ids(adapter.tokenizer, QUESTION, video.num_tokens)
    embeds, visual = adapter.embed(ids, [video])
    with torch.inference_mode():
        output = plain_model(inputs_embeds=embeds, attention_mask=torch.ones_like(ids), use_cache=True,
                             output_hidden_states=True, output_attentions=attn is not None)
    return ids, embeds, visual, output


def _tail_model(language_model, first_layer):
    """A copy of the text decoder holding only layers ``first_layer..`` (numbered from 0 for its own cache)."""
    tail = copy.deepcopy(language_model)
    tail.layers = tail.layers[first_layer:]
    for index, layer in enumerate(tail.layers):
        layer.self_attn.layer_idx = index
    tail.config.num_hidden_layers = len(tail.layers)
    return tail


def _reference(adapter, plain_model, video, kept, layer, positions):
    """Cache, last logits, mask and next position of a run that dropped the unkept visual tokens after ``layer``."""
    ids, _, visual, full = _full_run(adapter, plain_model, video)
    keep = torch.ones(ids.shape[1], dtype=torch.bool)
    keep[visual[0].nonzero().squeeze(1)[~torch.isin(torch.arange(video.num_tokens), kept)]] = False
    index = keep.nonzero().squeeze(1)
    length = index.numel()
    position_ids = (torch.arange(length) if positions == "renumber" else index).unsqueeze(0)
    tail = _tail_model(plain_model.model.language_model, layer)
    with torch.inference_mode():
        tail_output = tail(inputs_embeds=full.hidden_states[layer][:, index], position_ids=position_ids,
                           attention_mask=torch.ones(1, length, dtype=torch.long), use_cache=True)
        logits = plain_model.lm_head(tail_output.last_hidden_state[:, -1])
    full_cache, tail_cache = cache_of(full), cache_of(tail_output)
    cache = transformers.DynamicCache()
    for number in range(len(plain_model.model.language_model.layers)):
        if number < layer:
            keys, values = full_cache.layers[number].keys[:, :, index], full_cache.layers[number].values[:, :, index]
        else:
            keys, values = tail_cache.layers[number - layer].keys, tail_cache.layers[number - layer].values
        cache.update(keys, values, number)
    next_position = length if positions == "renumber" else ids.shape[1]
    return cache, logits, torch.ones(1, length, dtype=torch.long), torch.tensor([next_position])


@pytest.mark.parametrize("layer", [1, 2, 3])
@pytest.mark.parametrize("positions", ["renumber", "original"])
def test_cache_after_pruning_equals_a_run_that_dropped_those_positions(adapter, plain_model, layer, positions):
    video = adapter.encode_frames(sample_frames(8))
    pruning = PruningConfig(keep_ratio=0.25, prune_layer=layer, positions=positions)
    result = adapter.generate([video], [QUESTION], pruning, max_new_tokens=1, output_logits=True,
                              return_dict_in_generate=True)
    kept = result.records[0].kept_indices
    assert kept.numel() == 32
    expected_cache, expected_logits, _, _ = _reference(adapter, plain_model, video, kept, layer, positions)
    cache = cache_of(result.raw)
    assert len(cache.layers) == len(expected_cache.layers)
    for ours, theirs in zip(cache.layers, expected_cache.layers):
        torch.testing.assert_close(ours.keys, theirs.keys, rtol=0, atol=1e-5)
        torch.testing.assert_close(ours.values, theirs.values, rtol=0, atol=1e-5)
    torch.testing.assert_close(result.raw.logits[0], expected_logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("positions", ["renumber", "original"])
def test_generation_continues_consistently_on_the_pruned_cache(adapter, plain_model, positions):
    video = adapter.encode_frames(sample_frames(8, seed=4))
    pruning = PruningConfig(keep_ratio=0.2, prune_layer=2, positions=positions)
    result = adapter.generate([video], [QUESTION], pruning, max_new_tokens=STEPS, do_sample=False,
                              output_logits=True, return_dict_in_generate=True)
    cache, logits, mask, next_position = _reference(adapter, plain_model, video, result.records[0].kept_indices, 2,
                                                    positions)
    tokens, expected_logits = manual_greedy(plain_model, cache, logits, mask, next_position, STEPS)
    assert result.sequences[0].numel() == STEPS
    assert torch.equal(result.sequences[0], tokens[0])
    torch.testing.assert_close(step_logits(result.raw), expected_logits, rtol=0, atol=1e-4)


def test_positions_matter_after_layer_k(adapter):
    video = adapter.encode_frames(sample_frames(8))
    runs = [adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.25, prune_layer=2, positions=mode),
                             max_new_tokens=1, output_logits=True, return_dict_in_generate=True)
            for mode in ("renumber", "original")]
    assert torch.equal(runs[0].records[0].kept_indices, runs[1].records[0].kept_indices)
    assert not torch.allclose(runs[0].raw.logits[0], runs[1].raw.logits[0], atol=1e-4)


def _last_token_scores(model, full, layer):
    """last_token_attention() of ``layer`` from an unpruned run's hidden states and cache."""
    decoder = model.model.language_model
    hidden = full.hidden_states[layer]
    positions = torch.arange(hidden.shape[1]).unsqueeze(0)
    with torch.inference_mode():
        cos, sin = decoder.rotary_emb(hidden, positions)
        return last_token_attention(decoder.layers[layer], hidden[:, -1:], (cos[:, -1:], sin[:, -1:]),
                                    cache_of(full).layers[layer].keys, torch.ones(positions.shape, dtype=torch.bool))


def test_last_token_attention_equals_eager_attention_weights(adapter, tiny_checkpoint):
    eager = transformers.LlavaNextVideoForConditionalGeneration.from_pretrained(
        str(tiny_checkpoint), attn_implementation="eager").eval()
    video = adapter.encode_frames(sample_frames(4))
    full = _full_run(adapter, eager, video, attn=True)[3]
    for layer in range(len(eager.model.language_model.layers)):
        expected = full.attentions[layer][:, :, -1, :].mean(dim=1)
        torch.testing.assert_close(_last_token_scores(eager, full, layer), expected, rtol=0, atol=1e-6)


def test_attention_method_keeps_the_most_attended_visual_tokens(adapter, plain_model):
    video = adapter.encode_frames(sample_frames(8))
    result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.25, method="attention", prune_layer=2),
                              max_new_tokens=2)
    _, _, visual, full = _full_run(adapter, plain_model, video)
    visual_scores = _last_token_scores(plain_model, full, 1)[0, visual[0]]
    expected = torch.topk(visual_scores, 32).indices.sort().values
    assert torch.equal(result.records[0].kept_indices, expected)
    divprune = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.25, prune_layer=2), max_new_tokens=2)
    assert not torch.equal(divprune.records[0].kept_indices, expected)


def test_cache_kwarg_is_this_versions():
    assert CACHE_KWARG in ("cache", "past_key_values")
