"""The LLaVA-NeXT-Video adapter on the tiny checkpoint: loading, encoding, prompts, pruning before the LLM, batching."""

import pytest
import torch

from divprune_video.models import PruningConfig
from divprune_video.models.decoder_pruning import full_positions

from .helpers import CACHE_KWARG, cache_of, literal_prompt_ids, manual_greedy, sample_frames, step_logits, transformers

QUESTION = "What is happening in this video?"
GREEDY = {"max_new_tokens": 12, "do_sample": False, "output_logits": True, "return_dict_in_generate": True}


def test_tiny_checkpoint_loads_like_a_real_one(tiny_checkpoint):
    config = transformers.AutoConfig.from_pretrained(str(tiny_checkpoint))
    assert config.model_type == "llava_next_video"
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(tiny_checkpoint))
    assert tokenizer.convert_tokens_to_ids("<video>") == config.video_token_id
    assert tokenizer.decode(tokenizer("a red ball moves")["input_ids"], skip_special_tokens=True) == "a red ball moves"
    settings, _ = transformers.LlavaNextVideoProcessor.get_processor_dict(str(tiny_checkpoint))
    assert "<video>" in settings["chat_template"] and settings["patch_size"] == 7
    for name in ("config.json", "model.safetensors", "tokenizer.json", "video_preprocessor_config.json"):
        assert (tiny_checkpoint / name).is_file()


def test_processor_loads_when_torchvision_is_installed(tiny_checkpoint):
    pytest.importorskip("torchvision")
    processor = transformers.AutoProcessor.from_pretrained(str(tiny_checkpoint))
    frames = sample_frames(4)
    inputs = processor(text="USER: <video>\nhi ASSISTANT:", videos=[frames], return_tensors="pt")
    assert int((inputs["input_ids"] == processor.video_token_id).sum()) == 4 * 16


def test_encode_uses_the_models_own_video_path(adapter, plain_model):
    frames = sample_frames(6)
    video = adapter.encode_frames(frames)
    assert (video.num_frames, video.grid, video.num_tokens) == (6, (4, 4), 96)
    pixels = adapter.frame_preprocessor(frames).unsqueeze(0)
    with torch.inference_mode():
        expected = plain_model.get_video_features(pixels, return_dict=True).pooler_output
    expected = torch.cat([row.reshape(-1, row.shape[-1]) for row in expected])
    torch.testing.assert_close(video.features, expected)
    assert video.seconds > 0


def test_prompt_is_the_chat_template_and_video_positions_come_from_the_ids(adapter):
    short, long = adapter.encode_frames(sample_frames(4)), adapter.encode_frames(sample_frames(6, seed=1))
    ids, mask = adapter.tokenize([short, long], ["Why?", "Which object moves fastest of all the shapes here?"])
    assert adapter.build_prompt("Why?") == "USER: <video>\nWhy? ASSISTANT:"
    assert torch.equal(ids[0][mask[0].bool()], literal_prompt_ids(adapter.tokenizer, "Why?", 64)[0])
    embeds, visual = adapter.embed(ids, [short, long])
    assert visual.sum(1).tolist() == [64, 96]
    # Left padding moves the first row's video tokens; the features land wherever the ids say.
    assert visual[0].nonzero()[0] != visual[1].nonzero()[0]
    torch.testing.assert_close(embeds[0][visual[0]], short.features)
    torch.testing.assert_close(embeds[1][visual[1]], long.features)
    with pytest.raises(ValueError, match="video tokens per row"):
        adapter.embed(ids, [long, short])


@pytest.mark.parametrize("pruning", [
    PruningConfig(method="none"),
    PruningConfig(keep_ratio=1.0, prune_layer=0),
    PruningConfig(keep_ratio=1.0, prune_layer=2),
    PruningConfig(keep_ratio=1.0, prune_layer=3, positions="original"),
], ids=["none", "keep-all-layer0", "keep-all-layer2", "keep-all-layer3-original"])
def test_keeping_everything_reproduces_plain_transformers(adapter, plain_model, pruning):
    frames = sample_frames(8)
    video = adapter.encode_frames(frames)
    ids = literal_prompt_ids(adapter.tokenizer, QUESTION, video.num_tokens)
    pixels = adapter.frame_preprocessor(frames).unsqueeze(0)
    with torch.inference_mode():
        expected = plain_model.generate(input_ids=ids, pixel_values_videos=pixels, attention_mask=torch.ones_like(ids),
                                        pad_token_id=adapter.tokenizer.pad_token_id, **GREEDY)
    result = adapter.generate([video], [QUESTION], pruning, **GREEDY)
    assert result.records[0].num_kept == video.num_tokens
    assert torch.equal(result.sequences[0], expected.sequences[0, ids.shape[1]:])
    torch.testing.assert_close(step_logits(result.raw), step_logits(expected), rtol=0, atol=1e-5)
    assert result.texts[0] == adapter.tokenizer.decode(expected.sequences[0, ids.shape[1]:],
                                                       skip_special_tokens=True).strip()


def _kept_sequence(adapter, video, question, kept):
    """inputs_embeds of a prompt that only ever held the kept visual tokens."""
    ids = literal_prompt_ids(adapter.tokenizer, question, video.num_tokens)
    embeds, visual = adapter.embed(ids, [video])
    drop = visual[0].nonzero().squeeze(1)[~torch.isin(torch.arange(video.num_tokens), kept)]
    keep = torch.ones(ids.shape[1], dtype=torch.bool)
    keep[drop] = False
    return embeds[:, keep], keep


@pytest.mark.parametrize("method", ["divprune", "uniform", "random"])
def test_layer0_equals_a_sequence_that_only_held_the_kept_tokens(adapter, plain_model, method):
    video = adapter.encode_frames(sample_frames(8))
    result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.25, method=method), **GREEDY)
    kept = result.records[0].kept_indices
    assert kept.numel() == 32 and torch.equal(kept, kept.unique())
    embeds, _ = _kept_sequence(adapter, video, QUESTION, kept)
    with torch.inference_mode():
        expected = plain_model.generate(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2]).long(),
                                        pad_token_id=adapter.tokenizer.pad_token_id, **GREEDY)
    assert torch.equal(result.sequences[0], expected.sequences[0])
    torch.testing.assert_close(step_logits(result.raw), step_logits(expected), rtol=0, atol=1e-5)


def test_layer0_with_original_positions(adapter, plain_model):
    """Kept tokens keep their positions in the full sequence; new tokens continue after the full prompt."""
    video = adapter.encode_frames(sample_frames(8))
    result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.2, positions="original"), **GREEDY)
    embeds, keep = _kept_sequence(adapter, video, QUESTION, result.records[0].kept_indices)
    positions = torch.arange(keep.numel())[keep].unsqueeze(0)
    cache = transformers.DynamicCache()
    with torch.inference_mode():
        prefill = plain_model(inputs_embeds=embeds, position_ids=positions, attention_mask=torch.ones_like(positions),
                              use_cache=True, **{CACHE_KWARG: cache})
    tokens, logits = manual_greedy(plain_model, cache_of(prefill), prefill.logits[:, -1], torch.ones_like(positions),
                                   torch.tensor([keep.numel()]), GREEDY["max_new_tokens"])
    assert torch.equal(result.sequences[0], tokens[0])
    torch.testing.assert_close(step_logits(result.raw), logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("prune_layer", [0, 2])
@pytest.mark.parametrize("method", ["divprune", "none"])
def test_batched_equals_one_by_one(adapter, prune_layer, method):
    videos = [adapter.encode_frames(sample_frames(8)), adapter.encode_frames(sample_frames(5, seed=3))]
    questions = ["What is happening in this video?", "How many shapes?"]
    pruning = PruningConfig(keep_ratio=0.3, method=method, prune_layer=prune_layer)
    batched = adapter.generate(videos, questions, pruning, **GREEDY)
    batch_logits = step_logits(batched.raw)
    for row, (video, question) in enumerate(zip(videos, questions)):
        alone = adapter.generate([video], [question], pruning, **GREEDY)
        assert torch.equal(batched.records[row].kept_indices, alone.records[0].kept_indices)
        assert torch.equal(batched.sequences[row], alone.sequences[0])
        assert batched.texts[row] == alone.texts[0]
        torch.testing.assert_close(batch_logits[:, row], step_logits(alone.raw)[:, 0], rtol=0, atol=1e-4)


def test_sampling_with_everything_kept_matches_plain_sampling(adapter, plain_model):
    frames = sample_frames(6)
    video = adapter.encode_frames(frames)
    ids = literal_prompt_ids(adapter.tokenizer, QUESTION, video.num_tokens)
    pixels = adapter.frame_preprocessor(frames).unsqueeze(0)
    sampling = {"max_new_tokens": 16, "do_sample": True, "temperature": 1.5, "top_k": 50}
    torch.manual_seed(7)
    with torch.inference_mode():
        expected = plain_model.generate(input_ids=ids, pixel_values_videos=pixels, attention_mask=torch.ones_like(ids),
                                        pad_token_id=adapter.tokenizer.pad_token_id, **sampling)
    torch.manual_seed(7)
    result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=1.0, prune_layer=1), **sampling)
    assert torch.equal(result.sequences[0], expected[0, ids.shape[1]:])
    assert len(set(result.sequences[0].tolist())) > 1  # sampling at temperature 1.5 does not repeat one token


def test_sampling_several_sequences_on_a_pruned_cache(adapter):
    videos = [adapter.encode_frames(sample_frames(6)), adapter.encode_frames(sample_frames(4, seed=2))]
    torch.manual_seed(0)
    result = adapter.generate(videos, ["Why?", "Who?"], PruningConfig(keep_ratio=0.25, prune_layer=2),
                              max_new_tokens=6, do_sample=True, num_return_sequences=3)
    assert len(result.sequences) == 6 and len(result.records) == 2
    assert [record.num_kept for record in result.records] == [24, 16]
    assert all(sequence.numel() <= 6 for sequence in result.sequences)


def test_pruned_prefill_is_shorter_and_cache_holds_the_kept_tokens(adapter):
    video = adapter.encode_frames(sample_frames(8))
    result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.15),
                              max_new_tokens=1, return_dict_in_generate=True)
    prompt_length = literal_prompt_ids(adapter.tokenizer, QUESTION, video.num_tokens).shape[1]
    kept = result.records[0].num_kept
    assert kept == round(0.15 * 128)
    assert cache_of(result.raw).get_seq_length() == prompt_length - video.num_tokens + kept
    assert set(result.timings) == {"select", "prefill", "generate"} and min(result.timings.values()) >= 0


def test_full_positions_match_generate():
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    assert full_positions(mask).tolist() == [[0, 0, 0, 1, 2], [0, 1, 2, 3, 4]]


@pytest.mark.parametrize("kwargs, match", [
    ({"prune_layer": 4}, "below the decoder's 4 layers"),
])
def test_bad_prune_layer(adapter, kwargs, match):
    video = adapter.encode_frames(sample_frames(2))
    with pytest.raises(ValueError, match=match):
        adapter.generate([video], ["Why?"], PruningConfig(**kwargs), max_new_tokens=2)


def test_unsupported_generation_settings_are_refused(adapter):
    video = adapter.encode_frames(sample_frames(2))
    with pytest.raises(ValueError, match="use_cache=False"):
        adapter.generate([video], ["Why?"], PruningConfig(), max_new_tokens=2, use_cache=False)
    with pytest.raises(ValueError, match="dynamic KV cache"):
        adapter.generate([video], ["Why?"], PruningConfig(prune_layer=1), max_new_tokens=2,
                         cache_implementation="static")
    with pytest.raises(ValueError, match="one question per video"):
        adapter.generate([video], ["Why?", "Who?"], PruningConfig())
    with pytest.raises(TypeError, match="question must be a str"):
        adapter.generate([video], [3], PruningConfig())


@pytest.mark.parametrize("prune_layer", [0, 2])
def test_beam_search_keeps_working_on_the_pruned_cache(adapter, plain_model, prune_layer):
    frames = sample_frames(6)
    video = adapter.encode_frames(frames)
    beams = {"max_new_tokens": 8, "num_beams": 3, "do_sample": False}
    result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=1.0, prune_layer=prune_layer), **beams)
    ids = literal_prompt_ids(adapter.tokenizer, QUESTION, video.num_tokens)
    pixels = adapter.frame_preprocessor(frames).unsqueeze(0)
    with torch.inference_mode():
        expected = plain_model.generate(input_ids=ids, pixel_values_videos=pixels, attention_mask=torch.ones_like(ids),
                                        pad_token_id=adapter.tokenizer.pad_token_id, **beams)
    assert torch.equal(result.sequences[0], expected[0, ids.shape[1]:])
    pruned = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.2, prune_layer=prune_layer), **beams)
    assert pruned.records[0].num_kept == 19 and 0 < pruned.sequences[0].numel() <= 8
