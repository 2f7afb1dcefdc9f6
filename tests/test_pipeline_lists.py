"""VideoQAPipeline on lists and long prompts: batches bounded in memory, results in order, errors raised with the
finished results or recorded per pair, a progress bar, and prompts longer than the model's context refused before
any video is read."""
# ruff: noqa: F811  (the fixtures below are imported from tests.models.helpers and used as arguments)

import dataclasses
import gc
import weakref

import pytest
from torch import equal as torch_equal

from divprune_video import ContextLengthError, VideoQAPipeline
from divprune_video.models.context import check_fits, context_length, fitting_keep_ratio
from tests.models.helpers import (  # noqa: F401  (fixtures)
    adapter,
    offline_hub,
    one_cpu_thread,
    sample_frames,
    tiny_checkpoint,
)

MISSING = "/no/such/folder/clip.mp4"


@pytest.fixture
def short_context(adapter, monkeypatch):
    """The tiny model's decoder made to take only ``limit`` positions (its config, restored after the test)."""
    text = adapter.config.get_text_config()

    def set_limit(limit):
        monkeypatch.setattr(text, "max_position_embeddings", limit)
        monkeypatch.setattr(text, "rope_parameters", {"rope_type": "default", "rope_theta": 10000.0}, raising=False)
        assert adapter.context_length == limit

    return set_limit


def _videos(count):
    return [sample_frames(4, seed=seed) for seed in range(count)]


def test_a_list_is_encoded_batch_by_batch_and_released(adapter, monkeypatch):
    """Six videos, batch_size 2: each batch encodes its own two videos just before its generate() call, and the
    earlier batches' encodings are gone by then (memory follows the batch, not the list)."""
    events, alive = [], []
    encode, generate = adapter.encode_frames, adapter.generate

    def tracked_encode(frames, timing=None):
        video = encode(frames, timing)
        alive.append(weakref.ref(video))
        events.append("encode")
        return video

    def tracked_generate(videos, questions, pruning, **kwargs):
        gc.collect()
        events.append(("generate", len(questions), sum(ref() is not None for ref in alive)))
        return generate(videos, questions, pruning, **kwargs)

    pipe = VideoQAPipeline(adapter, num_frames=4, batch_size=2)
    monkeypatch.setattr(adapter, "encode_frames", tracked_encode)
    monkeypatch.setattr(adapter, "generate", tracked_generate)
    results = pipe([(video, f"Question {index}?") for index, video in enumerate(_videos(6))], max_new_tokens=2)
    assert events == ["encode", "encode", ("generate", 2, 2)] * 3
    assert [result.question for result in results] == [f"Question {index}?" for index in range(6)]


def test_pairs_about_one_video_are_answered_together_and_returned_in_order(adapter, monkeypatch):
    first, second = _videos(2)
    calls = []
    encode = adapter.encode_frames
    monkeypatch.setattr(adapter, "encode_frames", lambda frames, timing=None: calls.append(1) or encode(frames, timing))
    pipe = VideoQAPipeline(adapter, num_frames=4, batch_size=1)
    pairs = [(first, "Why?"), (second, "Who?"), (first, "Where?"), (second, "When?")]
    results = pipe(pairs, max_new_tokens=3)
    assert len(calls) == 2, "each video is encoded once even when its questions are not next to each other"
    assert [result.question for result in results] == ["Why?", "Who?", "Where?", "When?"]
    for (video, question), result in zip(pairs, results):
        assert result.answer == pipe(video, question, max_new_tokens=3).answer


def test_errors_raise_carries_the_finished_results(adapter):
    pipe = VideoQAPipeline(adapter, num_frames=4, batch_size=1)
    good = _videos(2)
    pairs = [(good[0], "Why?"), (good[1], "Who?"), (MISSING, "What?")]
    with pytest.raises(Exception) as caught:
        pipe(pairs, max_new_tokens=2)
    exc = caught.value
    assert "clip.mp4" in str(exc) and exc.pair_index == 2
    assert [result is not None for result in exc.results] == [True, True, False]
    assert exc.results[0].answer == pipe(good[0], "Why?", max_new_tokens=2).answer
    assert any("2 of 3 pairs were answered" in note for note in exc.__notes__)


def test_errors_record_answers_every_other_pair(adapter):
    pipe = VideoQAPipeline(adapter, num_frames=4, batch_size=4)
    good = _videos(2)
    pairs = [(good[0], "Why?"), (MISSING, "What?"), (good[1], "Who?"), (MISSING, "And now?")]
    results = pipe(pairs, errors="record", max_new_tokens=2)
    assert [result.ok for result in results] == [True, False, True, False]
    for index in (1, 3):
        assert results[index].answer is None and results[index].num_kept == 0
        assert "clip.mp4" in results[index].error and results[index].error.split(":")[0].endswith("Error")
        assert results[index].question == pairs[index][1]
    assert results[2].answer == pipe(good[1], "Who?", max_new_tokens=2).answer


def test_a_failing_batch_is_retried_pair_by_pair(adapter, monkeypatch):
    """One pair that breaks generate() (here a stand-in fault) costs only itself, not its batch-mates."""
    generate = adapter.generate

    def fragile(videos, questions, pruning, **kwargs):
        if "Boom?" in questions:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return generate(videos, questions, pruning, **kwargs)

    monkeypatch.setattr(adapter, "generate", fragile)
    pipe = VideoQAPipeline(adapter, num_frames=4, batch_size=3)
    videos = _videos(3)
    results = pipe(list(zip(videos, ["Why?", "Boom?", "Who?"])), errors="record", max_new_tokens=2)
    assert [result.ok for result in results] == [True, False, True]
    assert results[1].error == "RuntimeError: CUDA error: an illegal memory access was encountered"
    monkeypatch.setattr(adapter, "generate", generate)
    assert results[2].answer == pipe(videos[2], "Who?", max_new_tokens=2).answer


def test_a_failing_question_on_a_shared_prefill_costs_only_itself(adapter, monkeypatch):
    answer = adapter.answer

    def fragile(context, questions, **kwargs):
        if "Boom?" in questions:
            raise RuntimeError("out of memory")
        return answer(context, questions, **kwargs)

    monkeypatch.setattr(adapter, "answer", fragile)
    video = _videos(1)[0]
    results = VideoQAPipeline(adapter, num_frames=4, batch_size=3)(
        [(video, "Why?"), (video, "Boom?"), (video, "Who?")], errors="record", max_new_tokens=2
    )
    assert [result.ok for result in results] == [True, False, True]


def test_an_interrupt_carries_the_finished_results(adapter, monkeypatch):
    generate = adapter.generate
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return generate(*args, **kwargs)

    monkeypatch.setattr(adapter, "generate", interrupted)
    pipe = VideoQAPipeline(adapter, num_frames=4, batch_size=1)
    with pytest.raises(KeyboardInterrupt) as caught:
        pipe([(video, "Why?") for video in _videos(3)], errors="record", max_new_tokens=2)
    assert [result is not None for result in caught.value.results] == [True, False, False]


def test_progress_bar(adapter, capsys):
    pipe = VideoQAPipeline(adapter, num_frames=4, batch_size=1)
    pipe([(video, "Why?") for video in _videos(2)], max_new_tokens=1)
    assert "2/2" in capsys.readouterr().err
    pipe([(video, "Why?") for video in _videos(2)], progress=False, max_new_tokens=1)
    assert "VideoQAPipeline" not in capsys.readouterr().err


def test_bad_errors_argument(adapter):
    with pytest.raises(ValueError, match="errors must be 'raise' or 'record'"):
        VideoQAPipeline(adapter, num_frames=4)([(_videos(1)[0], "Why?")], errors="ignore")


def test_lost_frames_reach_the_result(adapter):
    video = pytest.importorskip("divprune_video.video")
    clip = dataclasses.replace(video.load_video(sample_frames(6), num_frames=6), lost_frames=((40, 52),))
    result = VideoQAPipeline(adapter, num_frames=6)(clip, "Why?", max_new_tokens=1)
    assert result.partial and result.lost_frames == ((40, 52),)
    assert not VideoQAPipeline(adapter, num_frames=6)(sample_frames(6), "Why?", max_new_tokens=1).partial


# -- the model's context -----------------------------------------------------------------------------------------


def test_a_prompt_longer_than_the_context_raises_before_the_video_is_read(adapter, short_context):
    """8 frames x 16 tokens + the prompt do not fit 100 positions: raised for a missing file, so nothing was read;
    the message names the limit and a keep ratio that fits, and that ratio does fit."""
    short_context(100)
    pipe = VideoQAPipeline(adapter, num_frames=8, keep_ratio=1.0)
    with pytest.raises(ContextLengthError, match=r"context of 100; use keep_ratio <= (0\.\d+)") as caught:
        pipe(MISSING, "Why?", max_new_tokens=8)
    ratio = float(caught.value.args[0].rsplit("keep_ratio <= ", 1)[1].split()[0])
    result = VideoQAPipeline(adapter, num_frames=8, keep_ratio=ratio)(sample_frames(8), "Why?", max_new_tokens=8)
    assert result.num_kept == round(ratio * 128)
    with pytest.raises(ContextLengthError):
        VideoQAPipeline(adapter, num_frames=8, keep_ratio=round(ratio + 0.02, 2))(MISSING, "Why?", max_new_tokens=8)


def test_a_question_alone_longer_than_the_context(adapter, short_context):
    short_context(64)
    with pytest.raises(ContextLengthError, match="shorter question"):
        VideoQAPipeline(adapter, num_frames=2)(MISSING, "Why? " * 80, max_new_tokens=4)


def test_pruning_after_layer_k_counts_every_visual_token(adapter, short_context):
    """After layer K the first K layers see every token, so a low keep ratio does not make 8 frames fit."""
    short_context(100)
    with pytest.raises(ContextLengthError, match="prune before the LLM"):
        VideoQAPipeline(adapter, num_frames=8, keep_ratio=0.1, prune_layer=1)(MISSING, "Why?", max_new_tokens=4)


def test_a_list_is_checked_before_any_video_is_read(adapter, short_context, monkeypatch):
    """errors="raise": the one long question at the end stops the call before the first video is encoded."""
    short_context(120)
    monkeypatch.setattr(adapter, "encode_frames", lambda *args: pytest.fail("a video was encoded"))
    pipe = VideoQAPipeline(adapter, num_frames=2)
    with pytest.raises(ContextLengthError, match="pair 2"):
        pipe([(sample_frames(2), "Why?"), (sample_frames(2), "Who?"), (sample_frames(2), "Why? " * 200)])


def test_errors_record_records_a_too_long_prompt(adapter, short_context):
    short_context(120)
    pipe = VideoQAPipeline(adapter, num_frames=2)
    results = pipe([(sample_frames(2), "Why?"), (sample_frames(2), "Why? " * 200)], errors="record", max_new_tokens=2)
    assert results[0].ok and results[1].error.startswith("ContextLengthError: pair 1 needs")


def test_the_adapter_checks_before_the_llm_runs(adapter, short_context, monkeypatch):
    """Encoded videos (the count the pipeline cannot know before reading for some families) are checked again in
    generate(), before the model's forward pass."""
    video = adapter.encode_frames(sample_frames(8))
    short_context(100)
    monkeypatch.setattr(adapter.model, "forward", lambda *args, **kwargs: pytest.fail("the LLM ran"))
    from divprune_video.models import PruningConfig

    with pytest.raises(ContextLengthError, match="128 visual of the video's 128"):
        adapter.generate([video], ["Why?"], PruningConfig(method="none"), max_new_tokens=4)


def test_context_length_of_configs():
    from types import SimpleNamespace

    assert context_length(SimpleNamespace(max_position_embeddings=4096, rope_scaling=None)) == 4096
    linear = SimpleNamespace(max_position_embeddings=4096, rope_scaling={"rope_type": "linear", "factor": 2.0})
    assert context_length(SimpleNamespace(text_config=linear)) == 8192
    assert context_length(SimpleNamespace()) is None


@pytest.mark.parametrize("context, visual, fixed", [(100, 128, 40), (1000, 4608, 50), (61, 1, 60), (8192, 11520, 90)])
def test_fitting_keep_ratio_fits_and_is_the_largest_hundredth(context, visual, fixed):
    ratio = fitting_keep_ratio(context, visual, fixed)
    assert ratio is not None and max(1, round(ratio * visual)) + fixed <= context
    larger = round(ratio + 0.01, 2)
    assert larger > 1 or max(1, round(larger * visual)) + fixed > context
    assert fitting_keep_ratio(context, visual, context) is None


def test_check_fits_is_silent_when_it_fits():
    check_fits(100, visual=50, reached_visual=50, fixed=50, prunable=True)
    check_fits(None, visual=10**9, reached_visual=10**9, fixed=0, prunable=True)
    with pytest.raises(ContextLengthError, match="101 positions"):
        check_fits(100, visual=50, reached_visual=50, fixed=51, prunable=True)


# -- one prefill per video ---------------------------------------------------------------------------------------


def test_a_prefilled_context_answers_like_the_video(adapter):
    pipe = VideoQAPipeline(adapter, num_frames=6, keep_ratio=0.3)
    frames = sample_frames(6, seed=2)
    context = pipe.prefill(frames)
    assert context.nbytes > 0 and context.num_kept == round(0.3 * context.video.num_tokens)
    for question in ("Why?", "Which shape moves fastest?", "What colour is the background of this clip?"):
        shared, alone = pipe(context, question, max_new_tokens=8), pipe(frames, question, max_new_tokens=8)
        assert shared.answer == alone.answer and torch_equal(shared.kept_indices, alone.kept_indices)
        assert shared.timings["decode"] == shared.timings["encode"] == 0


def test_a_list_prefills_each_video_asked_several_questions_once(adapter, monkeypatch):
    calls = []
    prefill = adapter.prefill
    monkeypatch.setattr(adapter, "prefill", lambda *args, **kwargs: calls.append(1) or prefill(*args, **kwargs))
    first, second, third = _videos(3)
    pairs = [(first, "Why?"), (second, "Who?"), (first, "Where?"), (third, "When?"), (first, "How?"), (second, "What?")]
    shared = VideoQAPipeline(adapter, num_frames=4, batch_size=2)(pairs, max_new_tokens=6)
    assert len(calls) == 2, "the first and second videos are prefilled once each; the third has one question"
    plain = VideoQAPipeline(adapter, num_frames=4, batch_size=2, share_prefill=False)(pairs, max_new_tokens=6)
    assert len(calls) == 2
    assert [result.answer for result in shared] == [result.answer for result in plain]
    attention = VideoQAPipeline(adapter, num_frames=4, method="attention", prune_layer=1)
    attention(pairs[:3], max_new_tokens=2)
    assert len(calls) == 2, "FastV-style selection reads the question: no shared prefill"
    with pytest.raises(ValueError, match="cannot be shared"):
        attention.prefill(first)


def test_decode_modes_and_warmup(adapter):
    with pytest.raises(ValueError, match="decode must be one of"):
        VideoQAPipeline(adapter, decode="compiled")
    pipe = VideoQAPipeline(adapter, num_frames=4, decode="static")
    frames = sample_frames(4)
    static = pipe(frames, "Why?", max_new_tokens=6).answer
    assert VideoQAPipeline(adapter, num_frames=4, decode="generate")(frames, "Why?", max_new_tokens=6).answer == static
    seconds = VideoQAPipeline(adapter, num_frames=2, decode="auto").warmup(max_new_tokens=4, size=(72, 96))
    assert seconds["total"] > 0 and seconds["capture"] == 0  # no CUDA graphs on the CPU


def test_long_videos_on_llava_next_video_7b_fit_its_context_or_are_refused_first(adapter, monkeypatch):
    """With LLaVA-NeXT-Video-7B's configuration (8,192 positions: 4,096 stretched by linear RoPE scaling 2; 144
    tokens per frame): 256 frames at 15% and 512 frames at 10% fit; 512 frames at 15% is refused before the video is
    read, naming the limit and the keep ratio that fits."""
    from divprune_video.models.llava_next_video.presets import reference_config

    monkeypatch.setattr(adapter, "config", reference_config())
    assert adapter.context_length == 8192
    generate = {"max_new_tokens": 64}
    VideoQAPipeline(adapter, num_frames=256, keep_ratio=0.15).check_context(MISSING, "What happens?", generate)
    VideoQAPipeline(adapter, num_frames=512, keep_ratio=0.1).check_context(MISSING, "What happens?", generate)
    with pytest.raises(ContextLengthError, match=r"73728.*context of 8192; use keep_ratio <= 0\.11 "):
        VideoQAPipeline(adapter, num_frames=512, keep_ratio=0.15, prune_layer=0)(MISSING, "What happens?", **generate)


def test_a_call_seed_draws_the_random_method_and_leaves_the_pipeline_as_it_was(adapter):
    pipe = VideoQAPipeline(adapter, method="random", keep_ratio=0.25, num_frames=4, seed=0)
    frames = sample_frames(4)
    first, again = (pipe(frames, "Why?", seed=3, max_new_tokens=1) for _ in range(2))
    default = pipe(frames, "Why?", max_new_tokens=1)
    assert torch_equal(first.kept_indices, again.kept_indices) and pipe.pruning.seed == 0
    assert not torch_equal(first.kept_indices, default.kept_indices)
    seeded = VideoQAPipeline(adapter, method="random", keep_ratio=0.25, num_frames=4, seed=3)(
        frames, "Why?", max_new_tokens=1
    )
    assert torch_equal(seeded.kept_indices, first.kept_indices)
