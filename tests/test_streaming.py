"""Streaming video QA: the token memories (exact against divprune, bounded, constant cost) and StreamingVideoQA on
the tiny model with emulated live sources (asking mid-stream, reconnects, dropped frames, shutdown, errors)."""
# ruff: noqa: F811  (the fixtures below are imported from tests.models.helpers and used as arguments)

import statistics
import threading
import time

import numpy as np
import pytest
import torch

from divprune_video import divprune
from divprune_video.models import EncodedVideo, PruningConfig
from divprune_video.streaming import (
    MEMORIES,
    DiverseTokenMemory,
    EmptyMemoryError,
    MemoryUpdate,
    StreamingVideoQA,
    timestamp_preamble,
    token_memory,
)
from divprune_video.streaming.memory import DeferredChoice
from divprune_video.testing import moving_shapes_video, write_index_coded_video
from divprune_video.video import StreamGoneError, VideoError, VideoNotFoundError
from tests.models.helpers import adapter, offline_hub, one_cpu_thread, tiny_checkpoint  # noqa: F401  (fixtures)
from tests.selection.reference import reference_divprune
from tests.video._server import LocalVideoServer

TOKENS_PER_FRAME = 16  # the tiny model: 56 px frames, 4 x 4 tokens after pooling


def scene_frames(num_frames, per_frame=16, dim=24, *, seed=0):
    """Frames of synthetic tokens: scenes of random length, each a fixed set of patches plus small noise, with
    exactly repeated (static) stretches, so ties between duplicates are exercised too."""
    generator = torch.Generator().manual_seed(seed)
    frames, patches, static = [], None, None
    for _ in range(num_frames):
        if patches is None or torch.rand(1, generator=generator).item() < 0.08:
            patches = torch.randn(per_frame, dim, generator=generator)
        if static is not None and torch.rand(1, generator=generator).item() < 0.7:
            frames.append(static)  # the very same tokens again
            continue
        frame = patches + 0.2 * torch.randn(per_frame, dim, generator=generator)
        static = frame if torch.rand(1, generator=generator).item() < 0.3 else None
        frames.append(frame)
    return frames


# -- the memories, without a model -------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_divprune_memory_is_exactly_divprune_on_memory_plus_new_tokens(metric):
    budget = 40
    cached = DiverseTokenMemory(budget, metric=metric, update="cached")
    recompute = DiverseTokenMemory(budget, metric=metric, update="recompute")
    selections = 0
    for frame in scene_frames(150, seed=1):
        before = cached.tokens.clone() if cached.num_tokens else torch.empty(0, frame.shape[1])
        candidates = torch.cat([before, frame])
        by_cache, by_recompute = cached.add(frame), recompute.add(frame)
        if candidates.shape[0] > budget:
            expected = divprune(candidates, num_keep=budget, metric=metric).sort().values
            selections += 1
        else:
            expected = torch.arange(candidates.shape[0])
        assert torch.equal(by_cache.kept, expected) and torch.equal(by_recompute.kept, expected)
        assert torch.equal(cached.tokens, candidates[expected]) and torch.equal(recompute.tokens, cached.tokens)
    assert selections > 140 and cached.resolved_update == "cached" and recompute.resolved_update == "recompute"


@pytest.mark.parametrize("method", MEMORIES.names())
def test_budget_is_never_exceeded_over_thousands_of_frames(method):
    budget, per_frame = 64, 16
    memory = token_memory(method, budget)
    generator = torch.Generator().manual_seed(0)
    sizes = []
    for index in range(3000):
        memory.add(torch.randn(per_frame, 8, generator=generator), timestamp=index / 2)
        sizes.append(memory.num_tokens)
    assert max(sizes) <= budget and memory.num_tokens_seen == 3000 * per_frame
    snapshot = memory.snapshot()
    assert torch.all(snapshot.token_indices[1:] > snapshot.token_indices[:-1])  # time order, no token twice
    assert torch.equal(snapshot.frame_ids, snapshot.token_indices // per_frame)
    assert torch.equal(snapshot.positions, snapshot.token_indices % per_frame)
    assert torch.equal(snapshot.timestamps, snapshot.frame_ids.double() / 2)
    if method == "uniform":
        assert budget // 2 <= memory.num_tokens <= budget and bool((snapshot.token_indices % memory.stride == 0).all())
    else:
        assert memory.num_tokens == budget
    if method == "recent":
        assert snapshot.token_indices.tolist() == list(range(3000 * per_frame - budget, 3000 * per_frame))
    if method == "random":  # a sample of the whole history, not just its end
        assert 0.25 < float((snapshot.frame_ids < 1500).float().mean()) < 0.75


def test_memory_update_cost_does_not_grow_with_the_stream():
    budget, per_frame = 64, 16
    memory = DiverseTokenMemory(budget, update="cached")
    generator = torch.Generator().manual_seed(0)
    seconds, candidates = [], []
    shapes = None
    for index in range(2000):
        frame = torch.randn(per_frame, 16, generator=generator)
        start = time.perf_counter()
        update = memory.add(frame)
        seconds.append(time.perf_counter() - start)
        candidates.append(update.num_candidates)
        if index == 10:
            shapes = memory.storage_shapes
    # Every buffer keeps its shape, the distance matrix is (budget + F)^2, and every update looks at most at
    # budget + F candidates, however long the stream.
    assert memory.storage_shapes == shapes and shapes["distances"] == (budget + per_frame, budget + per_frame)
    assert max(candidates) == budget + per_frame
    early, late = statistics.median(seconds[100:400]), statistics.median(seconds[1700:2000])
    assert late < 3 * early + 0.002, (early, late)  # generous: a shared machine


def test_a_new_scene_after_a_long_static_scene_enters_the_memory():
    budget, per_frame = 64, 16
    generator = torch.Generator().manual_seed(3)
    static = torch.randn(per_frame, 32, generator=generator)
    diverse, fifo = DiverseTokenMemory(budget), token_memory("recent", budget)
    for _ in range(1000):
        diverse.add(static)
        fifo.add(static)
    change = torch.randn(per_frame, 32, generator=generator)
    update = diverse.add(change)
    fifo.add(change)
    assert 1000 in diverse.frame_ids.tolist() and int((diverse.frame_ids == 1000).sum()) == per_frame
    assert update.kept.max() >= budget  # new candidates were kept
    for _ in range(40):  # a long new scene does not wipe out the old one either (unlike FIFO)
        frame = change + 0.05 * torch.randn(per_frame, 32, generator=generator)
        diverse.add(frame)
        fifo.add(frame)
    assert int(diverse.frame_ids.min()) < 1000 <= int(diverse.frame_ids.max())
    assert int(fifo.frame_ids.min()) > 1000


def test_memory_errors_name_the_problem():
    with pytest.raises(ValueError, match="token_budget must be an int >= 1"):
        DiverseTokenMemory(0)
    with pytest.raises(ValueError, match="unknown streaming memory 'attention'; registered: divprune, random, recent"):
        token_memory("attention", 8)
    with pytest.raises(ValueError, match="update must be one of"):
        DiverseTokenMemory(8, update="fast")
    memory = DiverseTokenMemory(8)
    with pytest.raises(ValueError, match="frame 0 has 16 tokens, more than token_budget=8"):
        memory.add(torch.randn(16, 4))
    bad = torch.randn(4, 4)
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match="frame 0: tokens contain NaN or Inf .*token 2"):
        memory.add(bad)
    with pytest.raises(ValueError, match="frame 0: token 1 has zero norm"):
        memory.add(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(TypeError, match="frame 0: tokens must have a floating-point dtype"):
        memory.add(torch.ones(4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"frame 0: tokens must have shape \(N, D\)"):
        memory.add(torch.randn(4))
    memory.add(torch.randn(4, 4), frame_id=5)
    with pytest.raises(ValueError, match="dimension 3; the memory holds dimension 4"):
        memory.add(torch.randn(4, 3))
    with pytest.raises(ValueError, match="frame_id must increase"):
        memory.add(torch.randn(4, 4), frame_id=5)
    assert memory.num_tokens == 4 and memory.frame_ids.tolist() == [5] * 4  # failed adds changed nothing


@pytest.mark.parametrize("metric", ["cosine", "l2", "l1"])
@pytest.mark.parametrize("update", ["cached", "recompute"])
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_divprune_memory_on_a_static_video_matches_the_float64_reference(metric, update, device):
    """Static scenes repeat every token exactly: copies are at distance exactly 0 in the cached matrix too, so
    ties go to the lowest index (the oldest copy) as the reference picks them, not to rounding noise."""
    generator = torch.Generator().manual_seed(4)
    scene, passing = torch.randn(2, 16, 24, generator=generator).to(device)
    stream = [scene] * 6 + [passing] * 3 + [scene] * 4 + [torch.cat([scene[:8], passing[8:]])] * 2
    budget = 40
    memory = DiverseTokenMemory(budget, metric=metric, update=update)
    for frame in stream:
        candidates = torch.cat([memory.tokens.clone(), frame]) if memory.num_tokens else frame
        kept = memory.add(frame).kept
        if candidates.shape[0] > budget:
            assert kept.tolist() == sorted(reference_divprune(candidates, budget, metric))
    # The scene's first frame stays: later copies of its tokens lose every tie to it.
    assert memory.frame_ids[:16].tolist() == [0] * 16


class _DeferredFifo(token_memory("recent", 1).__class__):
    """FIFO whose choice is handed out as still running (the protocol the DivPrune memory uses on CUDA)."""

    finished = 0

    def _choose(self, start, end):
        kept = super()._choose(start, end)
        return None if kept is None else DeferredChoice(int(kept.numel()), kept)

    def _finish_choice(self, choice, end):
        _DeferredFifo.finished += 1
        return choice.pending


def test_a_choice_still_running_is_applied_by_the_next_add_or_read():
    deferred, plain = _DeferredFifo(20), token_memory("recent", 20)
    frames = [torch.randn(8, 4) for _ in range(6)]
    updates = []
    for index, frame in enumerate(frames):
        updates.append(deferred.add(frame))
        expected = plain.add(frame)
        assert deferred.num_tokens == plain.num_tokens  # known before the choice is done
        if index == 3:
            assert deferred._deferred is not None and "pending" in repr(updates[-1])
            assert torch.equal(updates[-1].kept, expected.kept)  # waits for it
            assert deferred._deferred is None and "20 kept" in repr(updates[-1])
    assert deferred._deferred is not None  # the last frame's choice: applied by a read
    assert torch.equal(deferred.tokens, plain.tokens) and torch.equal(deferred.frame_ids, plain.frame_ids)
    assert torch.equal(updates[2].kept, torch.arange(4, 24))  # an earlier update's, applied by the next add
    snapshot = deferred.snapshot()
    assert torch.equal(snapshot.timestamps, plain.timestamps) and _DeferredFifo.finished == 4
    deferred.add(frames[0])
    deferred.wait()
    assert deferred._deferred is None and torch.equal(deferred.frame_ids[-8:], torch.full((8,), 6))
    with pytest.raises(ValueError, match="needs its kept indices"):
        MemoryUpdate(0, None, 4)


@pytest.mark.gpu
def test_cuda_memory_runs_its_selection_behind_the_caller_and_stays_exactly_divprune():
    """On CUDA the selection is a graph replay on the memory's own stream, applied by the next add or read: after
    every frame the memory is still exactly divprune([memory ; frame]), with fresh, repeated and clustered frames
    (repeats take the graph that resolves copies, or the eager fallback)."""
    from divprune_video.selection.graphs import clear_graphs

    clear_graphs()
    generator = torch.Generator().manual_seed(5)
    budget, per_frame, dim = 480, 48, 256
    centers = torch.randn(6, dim, generator=generator)
    fresh = [torch.randn(per_frame, dim, generator=generator) for _ in range(14)]
    clustered = [
        centers[torch.randint(0, 6, (per_frame,), generator=generator)]
        + 0.01 * torch.randn(per_frame, dim, generator=generator)
        for _ in range(6)
    ]
    stream = fresh[:12] + [fresh[3]] * 3 + clustered + fresh[12:] + [fresh[0]]
    memory = DiverseTokenMemory(budget)
    deferred = 0
    for frame in stream:
        frame = frame.to("cuda", torch.float16)
        candidates = torch.cat([memory.tokens.clone(), frame]) if memory.num_tokens else frame
        update = memory.add(frame)
        deferred += memory._deferred is not None
        if candidates.shape[0] > budget:
            expected = divprune(candidates, num_keep=budget, cuda_graph=False).sort().values.cpu()
            assert torch.equal(update.kept, expected)
            assert torch.equal(memory.tokens, candidates[expected.cuda()])
    assert deferred >= 10 and memory.resolved_update == "recompute"


def test_memory_takes_tokens_that_require_grad_and_rejects_float8_and_meta():
    weights = torch.randn(24, 24, requires_grad=True)
    frames = [frame @ weights for frame in scene_frames(12, dim=24, seed=2)]  # a model's output, with grad
    memory, plain = DiverseTokenMemory(40, update="cached"), DiverseTokenMemory(40, update="cached")
    for frame in frames:
        assert torch.equal(memory.add(frame).kept, plain.add(frame.detach()).kept)
    assert not memory.tokens.requires_grad and weights.grad is None
    with pytest.raises(TypeError, match="frame 0: tokens have dtype torch.float8_e4m3fn"):
        DiverseTokenMemory(8).add(torch.randn(4, 4).to(torch.float8_e4m3fn))
    with pytest.raises(TypeError, match="frame 0: tokens are on the meta device"):
        DiverseTokenMemory(8).add(torch.randn(4, 4, device="meta"))


# -- StreamingVideoQA on the tiny model --------------------------------------------------------------------------


def frames(num_frames, seed=0):
    return moving_shapes_video(num_frames, 48, 64, seed=seed)


def test_ingest_keeps_the_budget_and_ask_answers_from_the_memory_in_time_order(adapter):
    qa = StreamingVideoQA(adapter, token_budget=48, sample_fps=2.0)
    for frame in frames(300):
        record = qa.ingest(frame)
        assert record.memory_tokens <= 48 and record.num_tokens == TOKENS_PER_FRAME
    frame_ids = qa.memory_frame_ids
    assert qa.num_memory_tokens == 48 and torch.all(frame_ids[1:] >= frame_ids[:-1])
    assert torch.equal(qa.memory_timestamps, frame_ids.double() / 2.0)
    result = qa.ask("What is happening?", max_new_tokens=6)
    assert (result.num_visual_tokens, result.num_kept, result.num_frames, result.grid) == (4800, 48, 300, (4, 4))
    assert torch.equal(result.kept_indices // TOKENS_PER_FRAME, frame_ids)
    assert torch.all(result.kept_indices[1:] > result.kept_indices[:-1])
    assert {"snapshot", "prefill", "generate"} <= set(result.timings)
    # The answer is what the adapter's plain (unpruned) generate gives on the memory's tokens in that order.
    tokens = qa.snapshot().tokens
    plain = adapter.generate(
        [EncodedVideo(tokens, 3, (4, 4))], ["What is happening?"], PruningConfig(method="none"), max_new_tokens=6
    )
    assert result.answer == plain.texts[0]


def test_questions_reuse_the_memory_prefill_until_a_new_frame_arrives(adapter, monkeypatch):
    calls = []
    prefill = adapter.prefill
    monkeypatch.setattr(adapter, "prefill", lambda *args, **kwargs: calls.append(1) or prefill(*args, **kwargs))
    qa = StreamingVideoQA(adapter, token_budget=48, sample_fps=2.0, timestamps_in_prompt=True)
    for frame in frames(6):
        qa.ingest(frame)
    assert not qa.reuses_prefill
    answers = [qa.ask(question, max_new_tokens=6) for question in ("What is happening?", "Why?", "Who moves?")]
    assert len(calls) == 1 and qa.reuses_prefill
    video, snapshot = qa.encoded_memory()
    for question, result in zip(("What is happening?", "Why?", "Who moves?"), answers):
        plain = adapter.generate(
            [video], [timestamp_preamble(snapshot) + question], PruningConfig(method="none"), max_new_tokens=6
        )
        assert result.answer == plain.texts[0]
    qa.ingest(frames(7)[-1])
    assert not qa.reuses_prefill
    qa.ask("And now?", max_new_tokens=2)
    assert len(calls) == 2
    qa.ask("Beams?", max_new_tokens=2, num_beams=2)  # generate() answers what the static decoder does not do
    assert len(calls) == 2


def test_timestamps_in_the_prompt_say_when_the_frames_in_memory_were_taken(adapter):
    qa = StreamingVideoQA(adapter, token_budget=32, sample_fps=2.0, timestamps_in_prompt=True)
    for frame in frames(5):
        qa.ingest(frame)
    preamble = timestamp_preamble(qa.snapshot())
    stamps = sorted(set(qa.memory_timestamps.tolist()))
    assert len(stamps) >= 2 and preamble.endswith("seconds from its start. ")
    assert ", ".join(f"{stamp:g}" for stamp in stamps) in preamble
    assert qa.ask("When did it start?", max_new_tokens=2).question == "When did it start?"


def test_scene_change_after_a_long_static_scene_enters_the_memory_of_the_model(adapter):
    qa = StreamingVideoQA(adapter, token_budget=64)
    still = frames(1)[0]
    for _ in range(200):
        qa.ingest(still)
    for frame in frames(3, seed=7):
        qa.ingest(frame)
    ids = qa.memory_frame_ids
    assert int((ids >= 200).sum()) >= TOKENS_PER_FRAME and int((ids < 200).sum()) >= 1
    assert qa.stats.memory_frames >= 2 and qa.stats.frames_ingested == 203


@pytest.fixture(scope="module")
def paced_video(tmp_path_factory):
    """3 s at 30 fps, small: played in real time it is a live source for the tests."""
    pytest.importorskip("av")  # writing it needs PyAV (the video extra); the GPU image has none unless carried
    return write_index_coded_video(tmp_path_factory.mktemp("stream") / "paced.mp4", 90, height=40, width=32)


def _threads():
    return {thread for thread in threading.enumerate() if thread.is_alive()}


def test_ask_mid_stream_while_run_ingests_and_shutdown_joins_every_thread(adapter, paced_video):
    before = _threads()
    qa = StreamingVideoQA(adapter, token_budget=32, sample_fps=10.0)
    with qa.run(paced_video, realtime=True):
        deadline = time.monotonic() + 15
        while qa.num_frames < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        result = qa.ask("What do you see?", max_new_tokens=4)
        assert qa.running and 5 <= result.num_frames < 30 and result.num_kept <= 32
        assert qa.wait(timeout=20)  # the file ends; ingestion went on after the question
        assert qa.num_frames > result.num_frames and qa.stats.frames_ingested == qa.num_frames
    assert _threads() <= before and not qa.running
    assert qa.ask("And now?", max_new_tokens=2).num_frames == qa.num_frames  # the memory outlives the stream


def test_close_stops_a_running_stream_promptly(adapter, paced_video):
    before = _threads()
    qa = StreamingVideoQA(adapter, token_budget=32, sample_fps=10.0).run(paced_video, realtime=True)
    while qa.num_frames < 2:
        time.sleep(0.02)
    began = time.monotonic()
    qa.close()
    assert time.monotonic() - began < 3.0 and not qa.running and _threads() <= before
    assert qa.num_frames < 25  # stopped before the end of the file
    qa.close()  # twice is fine


def test_run_on_a_second_source_continues_the_timeline(adapter, paced_video):
    qa = StreamingVideoQA(adapter, token_budget=40 * TOKENS_PER_FRAME, sample_fps=5.0)  # holds every frame
    for _ in range(2):  # the same file twice: its own times start at 0 again
        with qa.run(paced_video):
            assert qa.wait(timeout=30)
    qa.ingest(frames(1)[0])  # and a frame given by hand after them
    stamps = torch.unique_consecutive(qa.memory_timestamps)
    assert qa.num_frames == 31 and stamps.numel() == 31
    assert torch.allclose(stamps, torch.arange(31, dtype=torch.float64) / 5.0)  # one timeline, never restarting


def test_a_live_stream_that_goes_away_is_reconnected_then_given_up_clearly(adapter, tmp_path):
    ts = write_index_coded_video(tmp_path / "live.ts", 150, height=40, width=32).read_bytes()
    qa = StreamingVideoQA(adapter, token_budget=48, sample_fps=10.0)
    with LocalVideoServer(live_bytes=ts, live_rate=len(ts) / 5.0, live_seconds=1.5, max_connections=2) as server:
        qa.run(server.url("/live.ts"), max_retries=1, backoff=0.05, timeout=2.0)
        with pytest.raises(StreamGoneError, match="gone after 1 reconnect attempts") as info:
            qa.wait(timeout=30)
    assert "live.ts" in str(info.value)
    stats = qa.stats
    assert stats.reconnects >= 1 and stats.frames_ingested >= 4 and not stats.running, stats
    assert qa.ask("What happened?", max_new_tokens=2).num_kept == qa.num_memory_tokens <= 48
    qa.close()  # the error was raised once, by wait()


def test_a_slow_model_drops_frames_and_counts_them(adapter, paced_video, monkeypatch):
    encode = adapter.encode_frames

    def slow_encode(images, timing=None):
        time.sleep(0.15)
        return encode(images, timing)

    monkeypatch.setattr(adapter, "encode_frames", slow_encode)
    qa = StreamingVideoQA(adapter, token_budget=32, sample_fps=30.0)
    with qa.run(paced_video, realtime=True, max_queue=2):
        assert qa.wait(timeout=30)
    stats = qa.stats
    assert stats.frames_dropped > 30 and stats.frames_ingested + stats.frames_dropped == 90
    assert stats.frames_ingested < 40


def test_an_error_in_the_ingestion_thread_is_raised_by_the_next_call(adapter, monkeypatch):
    encode = adapter.encode_frames
    calls = []

    def failing_encode(images, timing=None):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("vision tower exploded")
        return encode(images, timing)

    monkeypatch.setattr(adapter, "encode_frames", failing_encode)
    qa = StreamingVideoQA(adapter, token_budget=32)
    qa.run(frames(10))
    with pytest.raises(RuntimeError, match="vision tower exploded"):
        qa.wait(timeout=20)
    assert qa.num_frames == 2 and not qa.running
    qa.close()  # raised once only
    calls[:] = [1, 1]  # the next run's first frame fails: ask() raises it
    qa.run(frames(10))
    deadline = time.monotonic() + 20
    while qa.running and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(RuntimeError, match="vision tower exploded"):
        qa.ask("Still there?")
    assert qa.ask("Still there?", max_new_tokens=2).num_frames == 2  # raised once; the memory is intact


def test_streaming_errors_name_the_problem(adapter):
    with pytest.raises(ValueError, match="token_budget must be an int >= 1"):
        StreamingVideoQA(adapter, token_budget=0)
    with pytest.raises(ValueError, match="sample_fps"):
        StreamingVideoQA(adapter, sample_fps=0)
    with pytest.raises(ValueError, match="method must be one of 'divprune', 'random', 'recent', 'uniform'"):
        StreamingVideoQA(adapter, method="attention")
    qa = StreamingVideoQA(adapter, token_budget=8)
    with pytest.raises(EmptyMemoryError, match="no frame has been ingested"):
        qa.ask("Anything?")
    with pytest.raises(ValueError, match="token_budget=8 is smaller than one frame's 16 visual tokens"):
        qa.ingest(frames(1)[0])
    qa = StreamingVideoQA(adapter, token_budget=32)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\).*channels first"):
        qa.ingest(np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        qa.ingest(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(TypeError, match="frame must be"):
        qa.ingest("frame.png")
    qa.ingest(torch.zeros(32, 32, 3, dtype=torch.uint8))  # tensors are fine
    with pytest.raises(ValueError, match="question must be a non-empty str"):
        qa.ask("  ")
    with pytest.raises(VideoNotFoundError, match="/dev/video93"):
        qa.run("/dev/video93")
    began = time.monotonic()
    qa.run(93, max_retries=0, timeout=1.0)  # a camera index that does not exist
    with pytest.raises(VideoError, match="webcam 93"):
        qa.wait(timeout=20)
    assert time.monotonic() - began < 10 and not qa.running
