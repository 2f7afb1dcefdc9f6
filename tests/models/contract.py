"""The adapter contract: the tests every model family's adapter passes (as transformers' ``ModelTesterMixin``).

A family's test module subclasses :class:`AdapterContract` as ``Test<Family>``, names its ``model_type`` and says how
its prompt reads written out by hand (:meth:`AdapterContract.literal_prompt`) and what one tiny frame becomes. The
suite then runs on the family's tiny checkpoint (:func:`divprune_video.testing.save_tiny_model`, weights drawn at a
large scale so that answers depend on every input):

* loading: the checkpoint loads through transformers' auto classes and :func:`load_adapter` picks the family;
* encoding: the visual tokens are the model's own ``get_video_features``; the unframed tokens come after them;
* prompt: the chat template written out by hand; visual-token positions come from the input ids, per row;
* unpruned == plain transformers ``generate(pixel_values_videos=...)`` (with the checkpoint's own processor where
  torchvision is installed), at prune layer 0 and K, both position modes;
* pruned at layer 0 == plain transformers given only the kept tokens (DivPrune's picks over the projected features);
* pruned at layer K == a run whose first K layers' cache lost the dropped positions (cache and continued decoding);
* keep counts, left-padded batches, sampling, beam search, the FastV score, streaming in the family's group size,
  and the errors bad input gets.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from divprune_video import StreamingVideoQA, VideoQAPipeline, divprune
from divprune_video.models import FrameTiming, PruningConfig, adapter_class, load_adapter
from divprune_video.testing import moving_shapes_video, save_tiny_model

from .helpers import CACHE_KWARG, cache_of, manual_greedy, step_logits, transformers

QUESTION = "What is happening in this video?"
GREEDY = {"max_new_tokens": 12, "do_sample": False, "output_logits": True, "return_dict_in_generate": True}
ATOL = 1e-4


class AdapterContract:
    """The contract suite; subclasses set the class attributes and :meth:`literal_prompt`."""

    #: The family's transformers ``model_type``.
    model_type: str = ""
    #: Visual tokens per tiny frame (group) and unframed tokens per video of the tiny checkpoint.
    tokens_per_frame: int = 0
    unframed_per_video: int = 0
    #: Frames per group of the family (streaming ingests this many at a time).
    frames_per_group: int = 1
    #: The video placeholder token of the family's tokenizer.
    video_token: str = "<video>"

    def literal_prompt(self, question: str, video) -> str:
        """The family's prompt for ``question`` about encoded ``video`` written out by hand, the video placeholder
        repeated once per token."""
        raise NotImplementedError

    # -- fixtures ----------------------------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def checkpoint(cls, tmp_path_factory):
        return save_tiny_model(tmp_path_factory.mktemp("checkpoints") / cls.model_type, cls.model_type)

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls, checkpoint):
        return load_adapter(str(checkpoint), device="cpu")

    @pytest.fixture(scope="class")
    @classmethod
    def plain_model(cls, checkpoint):
        """The same checkpoint through plain transformers, no adapter involved."""
        return transformers.AutoModelForImageTextToText.from_pretrained(str(checkpoint)).eval()

    # -- helpers -----------------------------------------------------------------------------------------------

    def frames(self, num_frames: int = 8, seed: int = 0) -> np.ndarray:
        """(num_frames, 72, 96, 3) uint8 frames of moving shapes."""
        return moving_shapes_video(num_frames, 72, 96, seed=seed)

    def prompt_ids(self, adapter, question: str, video) -> torch.Tensor:
        text = self.literal_prompt(question, video)
        return adapter.tokenizer(text, return_tensors="pt")["input_ids"]

    def video_inputs(self, adapter, frames, ids) -> dict:
        """The keyword arguments that carry the video into the plain model for prompt ``ids`` (the adapter's
        preprocessing)."""
        return {"pixel_values_videos": adapter.frame_preprocessor(frames).unsqueeze(0)}

    def full_positions(self, plain_model, ids, video) -> torch.Tensor:
        """The positions the plain model gives the whole prompt (1-D: 0..L-1), built from the model's own
        functions: (1, L), or (3, 1, L) for multi-axis positions."""
        return torch.arange(ids.shape[1]).unsqueeze(0)

    def processor_kwargs(self, frames) -> dict:
        """Extra arguments of the checkpoint processor's call for these frames (video metadata)."""
        return {}

    def plain_generate(self, adapter, plain_model, frames, question=QUESTION, **kwargs):
        """Plain transformers on the hand-written prompt and the adapter's pixel values: (prompt ids, output)."""
        video = adapter.encode_frames(frames)
        ids = self.prompt_ids(adapter, question, video)
        with torch.inference_mode():
            output = plain_model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                pad_token_id=adapter.tokenizer.pad_token_id,
                **self.video_inputs(adapter, frames, ids),
                **kwargs,
            )
        return ids, output

    def language_extras(self, video, visual_mask, kept=None, first_layer=0) -> dict:
        """Extra keyword arguments of the plain text decoder for this video's visual tokens at ``visual_mask``
        ((1, L) bool; only the ``kept`` tokens when given), for a decoder starting at layer ``first_layer`` (none
        here; Qwen3-VL passes its DeepStack features)."""
        return {}

    def text_forward(self, plain_model, decoder=None, **kwargs):
        """(output, last position's logits) of the plain text decoder (``decoder``, default the model's)."""
        decoder = decoder or plain_model.model.language_model
        with torch.inference_mode():
            output = decoder(**kwargs)
            return output, plain_model.lm_head(output.last_hidden_state[:, -1])

    def kept_reference(self, adapter, plain_model, video, question, kept, steps):
        """Greedy tokens and (steps, 1, V) logits of plain transformers on a prompt that only held the kept visual
        tokens, each at its original position, new tokens continuing after the full prompt's last position."""
        embeds, keep = self.kept_sequence(adapter, video, question, kept)
        ids = self.prompt_ids(adapter, question, video)
        full = self.full_positions(plain_model, ids, video)
        visual = adapter.embed(ids, [video])[1][:, keep]
        cache = transformers.DynamicCache()
        ones = torch.ones(embeds.shape[:2], dtype=torch.long)
        _, logits = self.text_forward(
            plain_model,
            inputs_embeds=embeds,
            position_ids=full[..., keep],
            attention_mask=ones,
            use_cache=True,
            **{CACHE_KWARG: cache},
            **self.language_extras(video, visual, kept),
        )
        return manual_greedy(plain_model, cache, logits, ones, full.amax(dim=-1) + 1, steps)

    def kept_sequence(self, adapter, video, question, kept):
        """inputs_embeds of a prompt that only ever held the kept visual tokens (and the unframed ones)."""
        ids = self.prompt_ids(adapter, question, video)
        embeds, visual = adapter.embed(ids, [video])
        drop = visual[0].nonzero().squeeze(1)[~torch.isin(torch.arange(video.num_tokens), kept)]
        keep = torch.ones(ids.shape[1], dtype=torch.bool)
        keep[drop] = False
        return embeds[:, keep], keep

    # -- loading and encoding ----------------------------------------------------------------------------------

    def test_checkpoint_loads_like_a_real_one(self, checkpoint, adapter):
        config = transformers.AutoConfig.from_pretrained(str(checkpoint))
        assert config.model_type == self.model_type
        assert isinstance(adapter, adapter_class(self.model_type))
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(checkpoint))
        assert tokenizer.convert_tokens_to_ids(self.video_token) == config.video_token_id
        assert (
            tokenizer.decode(tokenizer("a red ball moves")["input_ids"], skip_special_tokens=True) == "a red ball moves"
        )
        for name in (
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "video_preprocessor_config.json",
            "processor_config.json",
            "chat_template.jinja",
        ):
            assert (checkpoint / name).is_file()
        assert adapter.frames_per_group == self.frames_per_group

    def test_processor_expands_the_video_like_the_adapter(self, checkpoint, adapter):
        pytest.importorskip("torchvision")
        processor = transformers.AutoProcessor.from_pretrained(str(checkpoint))
        frames = self.frames(4)
        inputs = processor(
            text=adapter.build_prompt("hi"), videos=[frames], return_tensors="pt", **self.processor_kwargs(frames)
        )
        video = adapter.encode_frames(frames)
        assert int((inputs["input_ids"] == adapter.video_token_id).sum()) == video.num_placeholders
        for name, value in self.video_inputs(adapter, frames, inputs["input_ids"]).items():
            torch.testing.assert_close(inputs[name].reshape(value.shape), value.to(inputs[name].dtype))

    def test_encode_uses_the_models_own_video_path(self, adapter, plain_model):
        frames = self.frames(6)
        video = adapter.encode_frames(frames)
        groups = 6 // self.frames_per_group
        assert (video.num_frames, video.tokens_per_frame) == (groups, self.tokens_per_frame)
        assert (video.num_tokens, video.num_unframed) == (groups * self.tokens_per_frame, self.unframed_per_video)
        ids = self.prompt_ids(adapter, QUESTION, video)
        captured = {}
        hook = plain_model.model.language_model.register_forward_pre_hook(
            lambda module, args, kwargs: captured.update(embeds=kwargs["inputs_embeds"]), with_kwargs=True
        )
        try:
            with torch.inference_mode():
                plain_model(input_ids=ids, **self.video_inputs(adapter, frames, ids))
        finally:
            hook.remove()
        placeholders = ids[0] == adapter.video_token_id
        torch.testing.assert_close(captured["embeds"][0, placeholders], video.sequence_features())
        assert video.seconds > 0
        assert torch.equal(video.token_frames(), torch.arange(groups).repeat_interleave(self.tokens_per_frame))
        assert torch.equal(video.token_cells(), torch.arange(video.num_tokens) % self.tokens_per_frame)

    def test_prompt_is_the_chat_template_and_visual_positions_come_from_the_ids(self, adapter):
        short, long = adapter.encode_frames(self.frames(4)), adapter.encode_frames(self.frames(6, seed=1))
        ids, mask = adapter.tokenize([short, long], ["Why?", "Which object moves fastest of all the shapes here?"])
        assert torch.equal(ids[0][mask[0].bool()], self.prompt_ids(adapter, "Why?", short)[0])
        embeds, visual = adapter.embed(ids, [short, long])
        assert visual.sum(1).tolist() == [short.num_tokens, long.num_tokens]
        # Left padding moves the first row's video tokens; the features land wherever the ids say.
        assert visual[0].nonzero()[0] != visual[1].nonzero()[0]
        torch.testing.assert_close(embeds[0][visual[0]], short.features)
        torch.testing.assert_close(embeds[1][visual[1]], long.features)
        with pytest.raises(ValueError, match="video tokens per row"):
            adapter.embed(ids, [long, short])

    def test_answers_depend_on_the_video_and_the_question(self, adapter):
        """The tiny checkpoint's weights are input-sensitive: otherwise the equivalence tests would prove nothing."""
        videos = [adapter.encode_frames(self.frames(8, seed=seed)) for seed in (0, 1)]
        none = PruningConfig(method="none")
        answers = {
            tuple(adapter.generate([video], [question], none, max_new_tokens=6, do_sample=False).sequences[0].tolist())
            for video in videos
            for question in (QUESTION, "How many shapes are there?")
        }
        assert len(answers) == 4

    # -- unpruned == plain transformers ------------------------------------------------------------------------

    @pytest.mark.parametrize(
        "pruning",
        [
            PruningConfig(method="none"),
            PruningConfig(keep_ratio=1.0, prune_layer=0),
            PruningConfig(keep_ratio=1.0, prune_layer=2),
            PruningConfig(keep_ratio=1.0, prune_layer=3, positions="original"),
        ],
        ids=["none", "keep-all-layer0", "keep-all-layer2", "keep-all-layer3-original"],
    )
    def test_keeping_everything_reproduces_plain_transformers(self, adapter, plain_model, pruning):
        frames = self.frames(8)
        ids, expected = self.plain_generate(adapter, plain_model, frames, **GREEDY)
        result = adapter.generate([adapter.encode_frames(frames)], [QUESTION], pruning, **GREEDY)
        assert result.records[0].num_kept == result.records[0].num_visual_tokens
        assert torch.equal(result.sequences[0], expected.sequences[0, ids.shape[1] :])
        torch.testing.assert_close(step_logits(result.raw), step_logits(expected), rtol=0, atol=ATOL)
        assert (
            result.texts[0]
            == adapter.tokenizer.decode(expected.sequences[0, ids.shape[1] :], skip_special_tokens=True).strip()
        )

    def test_pipeline_unpruned_equals_transformers_with_the_checkpoints_processor(
        self, checkpoint, adapter, plain_model
    ):
        """The whole user path (VideoQAPipeline from the folder) against AutoProcessor + generate(): needs
        torchvision (the GPU machine, or a virtual environment with the CUDA torch build)."""
        pytest.importorskip("torchvision")
        processor = transformers.AutoProcessor.from_pretrained(str(checkpoint))
        frames = self.frames(8, seed=5)
        conversation = []
        if adapter.system_prompt:
            conversation.append({"role": "system", "content": [{"type": "text", "text": adapter.system_prompt}]})
        conversation.append({"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]})
        text = processor.apply_chat_template(conversation, add_generation_prompt=True)
        inputs = processor(text=text, videos=[frames], return_tensors="pt", **self.processor_kwargs(frames))
        with torch.inference_mode():
            expected = plain_model.generate(
                **inputs, max_new_tokens=12, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id
            )
        answer = processor.tokenizer.decode(expected[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        pipe = VideoQAPipeline(str(checkpoint), keep_ratio=1.0, num_frames=8, device="cpu")
        result = pipe(frames, QUESTION, max_new_tokens=12, do_sample=False)
        assert result.answer == answer.strip()
        assert result.num_kept == result.num_visual_tokens

    # -- pruned == transformers given only the kept tokens -----------------------------------------------------

    @pytest.mark.parametrize("method", ["divprune", "uniform", "random"])
    def test_layer0_equals_a_sequence_that_only_held_the_kept_tokens(self, adapter, plain_model, method):
        video = adapter.encode_frames(self.frames(8))
        result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.25, method=method), **GREEDY)
        kept = result.records[0].kept_indices
        assert kept.numel() == round(0.25 * video.num_tokens) and torch.equal(kept, kept.unique())
        if method == "divprune":
            assert torch.equal(kept, divprune(video.features, keep_ratio=0.25).sort().values)
        if adapter.decoder.position_modes[0] == "renumber":  # the default: contiguous positions
            embeds, _ = self.kept_sequence(adapter, video, QUESTION, kept)
            with torch.inference_mode():
                expected = plain_model.generate(
                    inputs_embeds=embeds,
                    attention_mask=torch.ones(embeds.shape[:2]).long(),
                    pad_token_id=adapter.tokenizer.pad_token_id,
                    **GREEDY,
                )
            tokens, logits = expected.sequences[0], step_logits(expected)
        else:
            tokens, logits = self.kept_reference(adapter, plain_model, video, QUESTION, kept, GREEDY["max_new_tokens"])
            tokens = tokens[0]
        generated = result.sequences[0].numel()  # generate() stops early at the end-of-sequence token
        assert torch.equal(result.sequences[0], tokens[:generated])
        torch.testing.assert_close(step_logits(result.raw), logits[:generated], rtol=0, atol=ATOL)

    def test_layer0_with_original_positions(self, adapter, plain_model):
        """Kept tokens keep their positions in the full sequence; new tokens continue after the full prompt."""
        video = adapter.encode_frames(self.frames(8))
        result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.2, positions="original"), **GREEDY)
        tokens, logits = self.kept_reference(
            adapter, plain_model, video, QUESTION, result.records[0].kept_indices, GREEDY["max_new_tokens"]
        )
        generated = result.sequences[0].numel()
        assert torch.equal(result.sequences[0], tokens[0, :generated])
        torch.testing.assert_close(step_logits(result.raw), logits[:generated], rtol=0, atol=ATOL)

    def _layer_k_reference(self, adapter, plain_model, video, kept, layer, positions):
        """Cache, last logits, mask and next position of a run that dropped the unkept visual tokens after
        ``layer``: the full prompt's first ``layer`` layers' cache at the kept positions, and a copy of the decoder
        made of layers ``layer..`` run on the kept hidden states."""
        ids = self.prompt_ids(adapter, QUESTION, video)
        embeds, visual = adapter.embed(ids, [video])
        full_positions = self.full_positions(plain_model, ids, video)
        decoder = plain_model.model.language_model
        captured = {}
        hook = decoder.layers[layer].register_forward_pre_hook(
            lambda module, args, kwargs: captured.update(hidden=args[0] if args else kwargs["hidden_states"]),
            with_kwargs=True,
        )
        full_cache = transformers.DynamicCache()
        try:
            self.text_forward(
                plain_model,
                inputs_embeds=embeds,
                attention_mask=torch.ones_like(ids),
                use_cache=True,
                position_ids=full_positions,
                **{CACHE_KWARG: full_cache},
                **self.language_extras(video, visual),
            )
        finally:
            hook.remove()
        keep = torch.ones(ids.shape[1], dtype=torch.bool)
        keep[visual[0].nonzero().squeeze(1)[~torch.isin(torch.arange(video.num_tokens), kept)]] = False
        index = keep.nonzero().squeeze(1)
        length = index.numel()
        position_ids = torch.arange(length).unsqueeze(0) if positions == "renumber" else full_positions[..., index]
        tail = copy.deepcopy(decoder)
        tail.layers = tail.layers[layer:]
        for number, decoder_layer in enumerate(tail.layers):
            decoder_layer.self_attn.layer_idx = number
        tail.config.num_hidden_layers = len(tail.layers)
        if getattr(tail.config, "layer_types", None):
            tail.config.layer_types = tail.config.layer_types[layer:]
        tail_cache = transformers.DynamicCache()
        _, logits = self.text_forward(
            plain_model,
            tail,
            inputs_embeds=captured["hidden"][:, index],
            position_ids=position_ids,
            attention_mask=torch.ones(1, length, dtype=torch.long),
            use_cache=True,
            **{CACHE_KWARG: tail_cache},
            **self.language_extras(video, visual[:, index], kept, layer),
        )
        cache = transformers.DynamicCache()
        for number in range(len(decoder.layers)):
            source = full_cache.layers[number] if number < layer else tail_cache.layers[number - layer]
            keys, values = source.keys, source.values
            if number < layer:
                keys, values = keys[:, :, index], values[:, :, index]
            cache.update(keys, values, number)
        following = torch.tensor([length]) if positions == "renumber" else full_positions.amax(dim=-1) + 1
        return cache, logits, torch.ones(1, length, dtype=torch.long), following

    @pytest.mark.parametrize("layer", [1, 3])
    @pytest.mark.parametrize("positions", ["renumber", "original"])
    def test_layer_k_cache_equals_a_run_that_dropped_those_positions(self, adapter, plain_model, layer, positions):
        if positions not in adapter.decoder.position_modes:
            pytest.skip(f"{self.model_type} has no {positions!r} positions (see test_positions_modes)")
        video = adapter.encode_frames(self.frames(8))
        pruning = PruningConfig(keep_ratio=0.25, prune_layer=layer, positions=positions)
        result = adapter.generate(
            [video], [QUESTION], pruning, max_new_tokens=1, output_logits=True, return_dict_in_generate=True
        )
        kept = result.records[0].kept_indices
        assert kept.numel() == round(0.25 * video.num_tokens)
        expected_cache, expected_logits, _, _ = self._layer_k_reference(
            adapter, plain_model, video, kept, layer, positions
        )
        cache = cache_of(result.raw)
        assert len(cache.layers) == len(expected_cache.layers)
        for ours, theirs in zip(cache.layers, expected_cache.layers):
            torch.testing.assert_close(ours.keys, theirs.keys, rtol=0, atol=1e-5)
            torch.testing.assert_close(ours.values, theirs.values, rtol=0, atol=1e-5)
        torch.testing.assert_close(result.raw.logits[0], expected_logits, rtol=0, atol=ATOL)

    @pytest.mark.parametrize("positions", ["renumber", "original"])
    def test_generation_continues_consistently_on_the_layer_k_cache(self, adapter, plain_model, positions):
        if positions not in adapter.decoder.position_modes:
            pytest.skip(f"{self.model_type} has no {positions!r} positions (see test_positions_modes)")
        steps = 16
        video = adapter.encode_frames(self.frames(8, seed=4))
        pruning = PruningConfig(keep_ratio=0.2, prune_layer=2, positions=positions)
        result = adapter.generate(
            [video],
            [QUESTION],
            pruning,
            max_new_tokens=steps,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        cache, logits, mask, next_position = self._layer_k_reference(
            adapter, plain_model, video, result.records[0].kept_indices, 2, positions
        )
        tokens, expected_logits = manual_greedy(plain_model, cache, logits, mask, next_position, steps)
        generated = result.sequences[0].numel()  # generate() stops early at the end-of-sequence token
        assert generated >= 4 and torch.equal(result.sequences[0], tokens[0, :generated])
        torch.testing.assert_close(step_logits(result.raw), expected_logits[:generated], rtol=0, atol=ATOL)
        assert cache_of(result.raw).get_seq_length() == mask.shape[1] + generated - 1

    def test_positions_modes(self, adapter):
        video = adapter.encode_frames(self.frames(8))
        modes = adapter.decoder.position_modes
        for mode in set(("renumber", "original")) - set(modes):
            with pytest.raises(ValueError, match=f"positions='{mode}' is not supported"):
                adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=0.25, positions=mode), max_new_tokens=1)
        if len(modes) < 2:
            return
        runs = [
            adapter.generate(
                [video],
                [QUESTION],
                PruningConfig(keep_ratio=0.25, prune_layer=2, positions=mode),
                max_new_tokens=1,
                output_logits=True,
                return_dict_in_generate=True,
            )
            for mode in modes
        ]
        assert torch.equal(runs[0].records[0].kept_indices, runs[1].records[0].kept_indices)
        assert not torch.allclose(runs[0].raw.logits[0], runs[1].raw.logits[0], atol=1e-4)

    def test_fastv_keeps_the_most_attended_visual_tokens(self, checkpoint, adapter):
        eager = transformers.AutoModelForImageTextToText.from_pretrained(
            str(checkpoint), attn_implementation="eager"
        ).eval()
        video = adapter.encode_frames(self.frames(8))
        result = adapter.generate(
            [video], [QUESTION], PruningConfig(keep_ratio=0.25, method="attention", prune_layer=2), max_new_tokens=2
        )
        ids = self.prompt_ids(adapter, QUESTION, video)
        embeds, visual = adapter.embed(ids, [video])
        full, _ = self.text_forward(
            eager,
            inputs_embeds=embeds,
            output_attentions=True,
            position_ids=self.full_positions(eager, ids, video),
            **self.language_extras(video, visual),
        )
        scores = full.attentions[1][0, :, -1, :].mean(dim=0)[visual[0]]
        expected = torch.topk(scores, result.records[0].num_kept).indices.sort().values
        assert torch.equal(result.records[0].kept_indices, expected)

    # -- counts, batches, decoding options ---------------------------------------------------------------------

    @pytest.mark.parametrize("keep_ratio", [0.1, 0.15, 0.5])
    def test_keep_counts_and_a_shorter_cache(self, adapter, keep_ratio):
        video = adapter.encode_frames(self.frames(8))
        result = adapter.generate(
            [video], [QUESTION], PruningConfig(keep_ratio=keep_ratio), max_new_tokens=1, return_dict_in_generate=True
        )
        record = result.records[0]
        assert record.num_visual_tokens == video.num_tokens
        assert record.num_kept == max(1, round(keep_ratio * video.num_tokens))
        prompt_length = self.prompt_ids(adapter, QUESTION, video).shape[1]
        assert cache_of(result.raw).get_seq_length() == prompt_length - video.num_tokens + record.num_kept
        assert set(result.timings) == {"select", "prefill", "generate"} and min(result.timings.values()) >= 0

    @pytest.mark.parametrize("prune_layer", [0, 2])
    @pytest.mark.parametrize("method", ["divprune", "none"])
    def test_batched_with_left_padding_equals_one_by_one(self, adapter, prune_layer, method):
        videos = [adapter.encode_frames(self.frames(8)), adapter.encode_frames(self.frames(4, seed=3))]
        questions = ["What is happening in this video?", "How many shapes?"]
        pruning = PruningConfig(keep_ratio=0.3, method=method, prune_layer=prune_layer)
        batched = adapter.generate(videos, questions, pruning, **GREEDY)
        batch_logits = step_logits(batched.raw)
        for row, (video, question) in enumerate(zip(videos, questions)):
            alone = adapter.generate([video], [question], pruning, **GREEDY)
            assert torch.equal(batched.records[row].kept_indices, alone.records[0].kept_indices)
            # A row that ended early (end-of-sequence token) is padded while the other goes on.
            generated = alone.sequences[0].numel()
            assert torch.equal(batched.sequences[row][:generated], alone.sequences[0])
            assert (batched.sequences[row][generated:] == adapter.tokenizer.pad_token_id).all()
            assert batched.texts[row] == alone.texts[0]
            torch.testing.assert_close(batch_logits[:generated, row], step_logits(alone.raw)[:, 0], rtol=0, atol=1e-3)

    def test_sampling_with_everything_kept_matches_plain_sampling(self, adapter, plain_model):
        frames = self.frames(6)
        sampling = {"max_new_tokens": 16, "do_sample": True, "temperature": 1.5, "top_k": 50}
        torch.manual_seed(7)
        ids, expected = self.plain_generate(adapter, plain_model, frames, **sampling)
        torch.manual_seed(7)
        result = adapter.generate(
            [adapter.encode_frames(frames)], [QUESTION], PruningConfig(keep_ratio=1.0, prune_layer=1), **sampling
        )
        assert torch.equal(result.sequences[0], expected[0, ids.shape[1] :])
        assert len(set(result.sequences[0].tolist())) > 1

    @pytest.mark.parametrize("prune_layer", [0, 2])
    def test_beam_search_and_several_sequences_on_a_pruned_cache(self, adapter, plain_model, prune_layer):
        frames = self.frames(6)
        beams = {"max_new_tokens": 8, "num_beams": 3, "do_sample": False}
        ids, expected = self.plain_generate(adapter, plain_model, frames, **beams)
        video = adapter.encode_frames(frames)
        result = adapter.generate([video], [QUESTION], PruningConfig(keep_ratio=1.0, prune_layer=prune_layer), **beams)
        assert torch.equal(result.sequences[0], expected[0, ids.shape[1] :])
        videos = [video, adapter.encode_frames(self.frames(4, seed=2))]
        pruned = adapter.generate(
            videos,
            ["Why?", "Who?"],
            PruningConfig(keep_ratio=0.25, prune_layer=prune_layer),
            max_new_tokens=4,
            do_sample=True,
            num_return_sequences=3,
        )
        assert len(pruned.sequences) == 6 and len(pruned.records) == 2
        assert [record.num_kept for record in pruned.records] == [round(0.25 * each.num_tokens) for each in videos]

    # -- static decoding and shared video prefills --------------------------------------------------------------

    def pruning_cases(self, adapter):
        """Pruning settings the decoding tests run: unpruned, layer 0, layer K, and original positions where the
        family also renumbers."""
        cases = [
            PruningConfig(method="none"),
            PruningConfig(keep_ratio=0.25),
            PruningConfig(keep_ratio=0.3, method="uniform", prune_layer=2),
        ]
        if "renumber" in adapter.decoder.position_modes:
            cases.append(PruningConfig(keep_ratio=0.25, prune_layer=1, positions="original"))
        return cases

    def generate_with(self, adapter, monkeypatch, decoding, *args, **kwargs):
        monkeypatch.setattr(adapter, "decoding", decoding)
        return adapter.generate(*args, **kwargs)

    def test_static_decoding_answers_like_generate(self, adapter, monkeypatch):
        """The preallocated-cache decoder gives generate()'s greedy tokens, padded rows and kept tokens included."""
        videos = [adapter.encode_frames(self.frames(8)), adapter.encode_frames(self.frames(4, seed=3))] * 2
        questions = [QUESTION, "Why?", "Which shape moves fastest in this clip?", "How many?"]
        for pruning in self.pruning_cases(adapter):
            dynamic = self.generate_with(
                adapter, monkeypatch, "generate", videos, questions, pruning, max_new_tokens=10, do_sample=False
            )
            static = self.generate_with(
                adapter, monkeypatch, "static", videos, questions, pruning, max_new_tokens=10, do_sample=False
            )
            assert dynamic.raw is not None and static.raw is None
            assert [row.tolist() for row in static.sequences] == [row.tolist() for row in dynamic.sequences]
            assert static.texts == dynamic.texts
            for ours, theirs in zip(static.records, dynamic.records):
                assert torch.equal(ours.kept_indices, theirs.kept_indices)
            assert set(static.timings) == {"select", "prefill", "generate"}

    def test_static_decoding_stops_and_samples_like_generate(self, adapter, monkeypatch):
        video = adapter.encode_frames(self.frames(6))
        pruning = PruningConfig(keep_ratio=0.3)
        greedy = self.generate_with(
            adapter,
            monkeypatch,
            "generate",
            [video, video],
            [QUESTION, "Why?"],
            pruning,
            max_new_tokens=10,
            do_sample=False,
        )
        stop = int(greedy.sequences[0][3])  # an end-of-sequence token the first row reaches at its 4th token
        for extra in ({"eos_token_id": stop}, {"max_length": 0}):
            if "max_length" in extra:  # generate() counts max_length over the whole (unpruned) prompt
                ids, _ = adapter.tokenize([video, video], [QUESTION, "Why?"])
                extra = {"max_length": ids.shape[1] + 5}
            else:
                extra = {**extra, "max_new_tokens": 10}
            dynamic = self.generate_with(
                adapter, monkeypatch, "generate", [video, video], [QUESTION, "Why?"], pruning, do_sample=False, **extra
            )
            static = self.generate_with(
                adapter, monkeypatch, "static", [video, video], [QUESTION, "Why?"], pruning, do_sample=False, **extra
            )
            assert [row.tolist() for row in static.sequences] == [row.tolist() for row in dynamic.sequences]
        assert static.sequences[0].numel() == 5
        sampling = {
            "max_new_tokens": 12,
            "do_sample": True,
            "temperature": 0.8,
            "top_k": 30,
            "top_p": 0.9,
            "repetition_penalty": 1.3,
        }
        torch.manual_seed(3)
        dynamic = self.generate_with(adapter, monkeypatch, "generate", [video], [QUESTION], pruning, **sampling)
        torch.manual_seed(3)
        static = self.generate_with(adapter, monkeypatch, "static", [video], [QUESTION], pruning, **sampling)
        assert static.sequences[0].tolist() == dynamic.sequences[0].tolist()

    def test_the_graph_steps_fixed_tensors_answer_like_generate(self, adapter, monkeypatch):
        """The CUDA-graph path's bookkeeping (fixed token / position / mask / slot tensors updated in place, one
        pooled buffer per shape reused across calls, a split buffer for layer-K contexts) run eagerly on the CPU."""
        from divprune_video.models.decoding import StaticDecoder

        pooled = StaticDecoder(adapter.model, adapter.decoder, use_graphs=True, capture=False)
        monkeypatch.setattr(adapter, "_static_decoder", pooled)
        video = adapter.encode_frames(self.frames(8, seed=5))
        questions = [QUESTION, "Why?"]
        for pruning in self.pruning_cases(adapter):
            dynamic = self.generate_with(
                adapter, monkeypatch, "generate", [video] * 2, questions, pruning, max_new_tokens=10, do_sample=False
            )
            for _ in range(2):  # the second call reuses the pooled buffer of the same shape
                static = self.generate_with(
                    adapter, monkeypatch, "static", [video] * 2, questions, pruning, max_new_tokens=10, do_sample=False
                )
                assert [row.tolist() for row in static.sequences] == [row.tolist() for row in dynamic.sequences]
            shared = adapter.answer(adapter.prefill(video, pruning), questions, max_new_tokens=10, do_sample=False)
            assert [row.tolist() for row in shared.sequences] == [row.tolist() for row in dynamic.sequences]
        assert 1 <= len(pooled._graphs) <= 4

    def test_calls_the_static_decoder_does_not_implement_use_generate(self, adapter, monkeypatch):
        video = adapter.encode_frames(self.frames(4))
        result = self.generate_with(
            adapter, monkeypatch, "static", [video], [QUESTION], PruningConfig(), max_new_tokens=3, num_beams=2
        )
        assert result.raw is not None
        with pytest.raises(ValueError, match="decode must be one of"):
            self.generate_with(adapter, monkeypatch, "fast", [video], [QUESTION], PruningConfig(), max_new_tokens=2)

    def test_a_shared_prefill_answers_like_the_whole_prompt(self, adapter, monkeypatch):
        """One context per video, questions answered in a batch or one by one: the tokens of a whole-prompt
        generate() and the same kept tokens, at prune layer 0 and K, in every position mode."""
        video = adapter.encode_frames(self.frames(8, seed=4))
        questions = [QUESTION, "Why?", "Which shape moves fastest in this clip?"]
        for pruning in self.pruning_cases(adapter):
            whole = self.generate_with(
                adapter, monkeypatch, "generate", [video] * 3, questions, pruning, max_new_tokens=10, do_sample=False
            )
            context = adapter.prefill(video, pruning)
            batched = adapter.answer(context, questions, max_new_tokens=10, do_sample=False)
            assert [row.tolist() for row in batched.sequences] == [row.tolist() for row in whole.sequences]
            for index, question in enumerate(questions):
                alone = adapter.answer(context, [question], max_new_tokens=10, do_sample=False)
                assert alone.texts[0] == whole.texts[index]
                assert torch.equal(alone.records[0].kept_indices, whole.records[index].kept_indices)
            assert context.num_kept == whole.records[0].num_kept

    def test_a_video_context_holds_the_pruned_prefix(self, adapter):
        video = adapter.encode_frames(self.frames(8))
        pruning = PruningConfig(keep_ratio=0.25, prune_layer=2)
        context = adapter.prefill(video, pruning)
        ids, _ = adapter.tokenize([video], [QUESTION])
        length = context.prefix_length
        assert torch.equal(ids[0, :length], context.prefix_ids) and ids[0, length - 1] == adapter.video_token_id
        kept_length = length - video.num_tokens + context.num_kept
        assert [keys.shape[-2] for keys, _ in context.cache] == [length] * 2 + [kept_length] * (
            adapter.decoder.num_layers - 2
        )
        assert context.nbytes == sum(keys.nbytes * 2 for keys, _ in context.cache)
        with pytest.raises(ValueError, match="cannot be shared"):
            adapter.prefill(video, PruningConfig(method="attention", prune_layer=1))
        with pytest.raises(ValueError, match="num_beams"):
            adapter.answer(context, [QUESTION], max_new_tokens=2, num_beams=2)

    # -- streaming ---------------------------------------------------------------------------------------------

    def test_streaming_memory_holding_everything_answers_like_the_unpruned_model(self, adapter):
        frames = self.frames(4 * self.frames_per_group, seed=6)
        qa = StreamingVideoQA(adapter, token_budget=10_000)
        records = [qa.ingest(frame) for frame in frames]
        assert [record.num_tokens > 0 for record in records] == [
            (index + 1) % self.frames_per_group == 0 for index in range(len(frames))
        ]
        streamed = qa.ask(QUESTION, max_new_tokens=8, do_sample=False)
        whole = adapter.generate(
            [adapter.encode_frames(frames)], [QUESTION], PruningConfig(method="none"), max_new_tokens=8, do_sample=False
        )
        assert streamed.answer == whole.texts[0]
        assert streamed.num_kept == streamed.num_visual_tokens == whole.records[0].num_visual_tokens
        assert streamed.num_frames == 4 and streamed.frames_per_group == self.frames_per_group

    # -- bad input ---------------------------------------------------------------------------------------------

    def test_a_prompt_longer_than_the_context_raises_before_the_llm_runs(self, adapter, monkeypatch):
        """The decoder's positions are the prompt (visual tokens as the decoder numbers them) plus the new tokens:
        exactly that many fit; one fewer raises ContextLengthError before any forward pass."""
        from divprune_video.models import ContextLengthError

        video = adapter.encode_frames(self.frames(4 * self.frames_per_group))
        prompt_length = self.prompt_ids(adapter, QUESTION, video).shape[1]
        text = adapter.config.get_text_config()
        monkeypatch.setattr(text, "rope_parameters", {"rope_type": "default", "rope_theta": 10000.0}, raising=False)
        forward = adapter.model.forward
        for pruning in (
            PruningConfig(method="none"),
            PruningConfig(keep_ratio=0.5, positions="renumber"),
            PruningConfig(keep_ratio=0.5, positions="original"),
            PruningConfig(keep_ratio=0.5, prune_layer=1),
        ):
            if pruning.positions and pruning.positions not in adapter.decoder.position_modes:
                continue
            renumbered = (
                pruning.enabled
                and pruning.prune_layer == 0
                and (pruning.positions or adapter.decoder.position_modes[0]) == "renumber"
            )
            needed = (
                prompt_length - video.num_tokens + pruning.num_keep(video.num_tokens) if renumbered else prompt_length
            )
            monkeypatch.setattr(text, "max_position_embeddings", needed + 2)
            assert adapter.context_length == needed + 2
            adapter.generate([video], [QUESTION], pruning, max_new_tokens=2)
            monkeypatch.setattr(text, "max_position_embeddings", needed + 1)
            monkeypatch.setattr(adapter.model, "forward", lambda *args, **kwargs: pytest.fail("the LLM ran"))
            with pytest.raises(ContextLengthError, match=f"needs {needed + 2} positions"):
                adapter.generate([video], [QUESTION], pruning, max_new_tokens=2)
            monkeypatch.setattr(adapter.model, "forward", forward)

    def test_bad_input_errors(self, adapter):
        video = adapter.encode_frames(self.frames(2 * self.frames_per_group))
        layers = adapter.decoder.num_layers
        with pytest.raises(ValueError, match=f"below the decoder's {layers} layers"):
            adapter.generate([video], ["Why?"], PruningConfig(prune_layer=layers), max_new_tokens=2)
        with pytest.raises(ValueError, match="use_cache=False"):
            adapter.generate([video], ["Why?"], PruningConfig(), max_new_tokens=2, use_cache=False)
        with pytest.raises(ValueError, match="dynamic KV cache"):
            adapter.generate(
                [video], ["Why?"], PruningConfig(prune_layer=1), max_new_tokens=2, cache_implementation="static"
            )
        with pytest.raises(ValueError, match="one question per video"):
            adapter.generate([video], ["Why?", "Who?"], PruningConfig())
        with pytest.raises(TypeError, match="question must be a str"):
            adapter.generate([video], [3], PruningConfig())
        with pytest.raises(ValueError, match="shape"):
            adapter.encode_frames(np.zeros((2, 8, 8), dtype=np.uint8))
        with pytest.raises(TypeError, match="uint8"):
            adapter.encode_frames(np.zeros((2, 8, 8, 3), dtype=np.float32))
        with pytest.raises(ValueError, match="timestamps for 2"):
            adapter.encode_frames(self.frames(2), FrameTiming.uniform(3))
