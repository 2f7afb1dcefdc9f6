"""CUDA graphs of repeated selections: the cache's policy on CPU (with a stand-in graph), and on a GPU the replayed
picks against the eager path, the fallbacks for bad input and duplicates, and the cache's bounds."""

import pytest
import torch

from divprune_video import divprune
from divprune_video.selection.graphs import GRAPHS, GraphCache, GraphedSelection, Replay, clear_graphs, graph_eligible
from divprune_video.testing import clustered_tokens, random_tokens


class _StandIn:
    """Replays by returning the first ``count`` positions; records what it was built from."""

    built: list[tuple[int, int]] = []

    def __init__(self, example: torch.Tensor, count: int, resolve_duplicates: bool = False) -> None:
        self.count = count
        self.resolve_duplicates = resolve_duplicates
        _StandIn.built.append((example.shape[0], count))

    def __call__(self, tokens: torch.Tensor) -> Replay:
        return Replay(torch.arange(self.count))

    def launch(self, tokens: torch.Tensor) -> "_Launched":
        return _Launched(self(tokens))  # a stand-in has nothing to wait for


class _Launched:
    def __init__(self, replay: Replay) -> None:
        self.replay = replay

    def result(self) -> Replay:
        return self.replay


def _failing_build(example: torch.Tensor, count: int, resolve_duplicates: bool = False) -> None:
    raise RuntimeError("CUDA out of memory (stand-in)")


def test_a_shape_is_captured_on_its_second_call_and_replayed_after():
    _StandIn.built = []
    cache = GraphCache(size=4, capture_after=2, build=_StandIn)
    tokens = torch.zeros(10, 4)
    assert cache.select(tokens, 3) is None  # first call: eager
    assert _StandIn.built == []
    assert cache.select(tokens, 3).tolist() == [0, 1, 2]  # second call: captured and replayed
    assert cache.select(tokens, 3).tolist() == [0, 1, 2]
    assert _StandIn.built == [(10, 3)] and len(cache) == 1
    assert cache.select(tokens, 4) is None  # another count is another shape
    assert cache.select(tokens.half(), 3) is None  # and so is another dtype


def test_the_least_recently_used_graph_is_dropped_and_clear_frees_all():
    _StandIn.built = []
    cache = GraphCache(size=2, capture_after=1, build=_StandIn)
    a, b, c = torch.zeros(5, 4), torch.zeros(6, 4), torch.zeros(7, 4)
    for tokens in (a, b, a, c):  # a is used again after b, so b is the least recently used when c arrives
        cache.select(tokens, 2)
    assert len(cache) == 2 and _StandIn.built == [(5, 2), (6, 2), (7, 2)]
    cache.select(a, 2)
    assert _StandIn.built == [(5, 2), (6, 2), (7, 2)]  # a was kept
    cache.select(b, 2)
    assert _StandIn.built[-1] == (6, 2)  # b was dropped, so it is captured again
    cache.clear()
    assert len(cache) == 0


def test_a_failed_capture_is_not_retried(caplog):
    cache = GraphCache(size=2, capture_after=1, build=_failing_build)
    tokens = torch.zeros(5, 4)
    with caplog.at_level("WARNING"):
        assert cache.select(tokens, 2) is None
    assert "runs eagerly" in caplog.text
    caplog.clear()
    assert cache.select(tokens, 2) is None
    assert caplog.text == ""  # not built (nor warned about) again


class _Flaky(_StandIn):
    """A stand-in whose replays fall back while ``falls_back`` says so."""

    falls_back = True

    def __call__(self, tokens: torch.Tensor) -> Replay:
        return Replay(None, "unusable") if _Flaky.falls_back else super().__call__(tokens)


class _Repeating(_StandIn):
    """A stand-in whose Gram-route replays find possible copies."""

    def __call__(self, tokens: torch.Tensor) -> Replay:
        return super().__call__(tokens) if self.resolve_duplicates else Replay(None, "duplicates")


def test_possible_copies_switch_the_shape_to_the_graph_that_resolves_them():
    _StandIn.built = []
    cache = GraphCache(size=2, capture_after=1, build=_Repeating)
    tokens = torch.zeros(5, 4)
    assert cache.select(tokens, 2).tolist() == [0, 1]  # the recaptured graph's replay answers this call
    assert cache.select(tokens, 2).tolist() == [0, 1]
    stats = cache.stats
    assert (stats.captures, stats.duplicate_captures, stats.replays, stats.fallbacks) == (2, 1, 2, 0)
    assert len(cache) == 1 and _StandIn.built == [(5, 2), (5, 2)]


def test_after_fallbacks_a_shape_runs_eagerly_for_a_growing_number_of_calls():
    from divprune_video.selection.graphs import MAX_EAGER_STREAK

    cache = GraphCache(size=2, capture_after=1, build=_Flaky)
    tokens = torch.zeros(5, 4)
    _Flaky.falls_back = True
    replayed = []
    for _ in range(1 + 1 + 2 + 4 + 8):  # fallback, 1 eager; fallback, 2 eager; fallback, 4 eager; fallback, ...
        before = cache.stats.fallbacks
        cache.select(tokens, 2)
        replayed.append(cache.stats.fallbacks > before)
    assert replayed == [True, False, True, False, False, True] + [False] * 4 + [True] + [False] * 5
    assert cache.stats.eager_after_fallback == 1 + 2 + 4 + 5 and cache.stats.replays == 0
    _Flaky.falls_back = False
    for _ in range(3):
        cache.select(tokens, 2)  # the rest of the streak of 8 runs eagerly
    assert cache.select(tokens, 2).tolist() == [0, 1] and cache.stats.replays == 1
    _Flaky.falls_back = True
    cache.select(tokens, 2)  # a success reset the streak: one eager call after this fallback
    assert cache.select(tokens, 2) is None and cache.stats.eager_after_fallback == 1 + 2 + 4 + 8 + 1
    _Flaky.falls_back = False
    assert cache.select(tokens, 2).tolist() == [0, 1]
    assert MAX_EAGER_STREAK >= 8


def test_a_shape_whose_graph_would_crowd_the_free_memory_is_not_captured():
    from divprune_video.selection.devices import free_bytes
    from divprune_video.selection.graphs import GRAPH_MEMORY_FRACTION, graph_bytes

    _StandIn.built = []
    cache = GraphCache(size=2, capture_after=1, build=_StandIn)
    wide = torch.empty(200_000, 1)  # its Gram matrix alone would be 160 GB
    assert graph_bytes(200_000, 1, 4, False) > GRAPH_MEMORY_FRACTION * free_bytes(wide.device)
    assert cache.select(wide, 2) is None and cache.select(wide, 2) is None
    assert _StandIn.built == [] and cache.stats.too_large == 1  # refused once, then known to run eagerly
    assert cache.select(torch.zeros(5, 4), 2).tolist() == [0, 1]


def test_graph_bytes_counts_the_tokens_and_the_matrices():
    from divprune_video.selection.graphs import graph_bytes

    assert graph_bytes(4608, 4096, 2, False) == 4608 * 4096 * 2 + 4 * 4608**2  # 122 MB
    assert graph_bytes(4608, 4096, 2, True) == 2 * 4608 * 4096 * 2 + 3 * 4 * 4608**2


def test_only_the_full_triton_cosine_path_on_cuda_is_eligible():
    tokens = torch.zeros(8, 4)
    assert not graph_eligible(tokens, "cosine", "full", "triton")  # CPU tokens
    meta = torch.empty(8, 4, device="meta")
    assert not graph_eligible(meta, "cosine", "full", "triton")


@pytest.mark.gpu
class TestOnCuda:
    @pytest.fixture(autouse=True)
    def _fresh_cache(self):
        pytest.importorskip("triton")
        clear_graphs()
        yield
        clear_graphs()

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
    @pytest.mark.parametrize("num_tokens", [577, 4608])
    @pytest.mark.parametrize("kind", ["random", "clustered"])
    def test_replayed_picks_equal_the_eager_ones(self, dtype, num_tokens, kind):
        make = random_tokens if kind == "random" else clustered_tokens
        k = round(0.15 * num_tokens)
        for seed in range(3):  # new values through the same graph each time
            tokens = make(num_tokens, 512, seed=seed, dtype=dtype, device="cuda")
            eager = divprune(tokens, num_keep=k, cuda_graph=False)
            torch_path = divprune(tokens, num_keep=k, backend="torch")
            for _ in range(2):
                assert torch.equal(divprune(tokens, num_keep=k), eager)
            assert torch.equal(eager, torch_path)
        assert len(GRAPHS) == 1

    def test_replays_queued_on_another_stream_give_the_eager_picks(self):
        """launch() queues a replay without waiting (the streaming memory's selections run so): three replays of
        one graph queued on a side stream before any is finished each keep their own picks."""
        cache = GraphCache(capture_after=1)
        batch = [random_tokens(600, 256, seed=seed, dtype=torch.float16, device="cuda") for seed in range(3)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            pending = [cache.launch(tokens, 90) for tokens in batch]
        for tokens, launched in zip(batch, pending):
            assert torch.equal(cache.finish(launched), divprune(tokens, num_keep=90, cuda_graph=False))
        assert cache.stats.replays == 3 and cache.stats.captures == 1

    @pytest.mark.parametrize("captured_in_inference_mode", [True, False])
    def test_a_graph_serves_calls_in_and_out_of_inference_mode(self, captured_in_inference_mode):
        """The streaming memory captures under torch.inference_mode; a later plain call of the same shape used to
        fail copying its tokens into the graph's (inference) input tensor."""
        tokens = random_tokens(4608, 256, seed=3, dtype=torch.float16, device="cuda")
        expected = divprune(tokens, num_keep=691, cuda_graph=False)
        with torch.inference_mode(captured_in_inference_mode):
            for _ in range(2):  # the second call captures
                divprune(tokens, num_keep=691)
        assert len(GRAPHS) == 1
        with torch.inference_mode(not captured_in_inference_mode):
            assert torch.equal(divprune(tokens, num_keep=691), expected)
        assert torch.equal(divprune(tokens, num_keep=691), expected)
        assert GRAPHS.stats.replays == 3  # the capturing call replays too

    def test_a_replayed_result_is_not_overwritten_by_the_next_replay(self):
        a = random_tokens(2000, 256, seed=1, dtype=torch.float16, device="cuda")
        b = random_tokens(2000, 256, seed=2, dtype=torch.float16, device="cuda")
        divprune(a, num_keep=300)
        first = divprune(a, num_keep=300)
        expected = first.clone()
        divprune(b, num_keep=300)
        assert len(GRAPHS) == 1 and torch.equal(first, expected)

    def test_duplicates_fall_back_to_the_eager_path(self):
        from .duplicate_inputs import static_video_tokens

        tokens = static_video_tokens(32, 144, 1024, seed=8).half().cuda()
        k = round(0.15 * tokens.shape[0])
        expected = divprune(tokens, num_keep=k, cuda_graph=False)
        for _ in range(4):
            assert torch.equal(divprune(tokens, num_keep=k), expected)
        # captured on the 2nd call, whose replay found copies: captured again with them resolved, and replayed
        stats = GRAPHS.stats
        assert (stats.captures, stats.duplicate_captures, stats.replays, stats.fallbacks) == (2, 1, 3, 0)

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
    def test_the_graph_that_resolves_duplicates_picks_as_the_eager_path(self, dtype):
        from .duplicate_inputs import duplicate_heavy_cases
        from .reference import reference_divprune

        for name, tokens, num_keep in duplicate_heavy_cases():
            tokens = tokens.to(dtype)
            cuda = tokens.cuda()
            replay = GraphedSelection(cuda, num_keep, resolve_duplicates=True)(cuda)
            assert replay.picks.tolist() == reference_divprune(tokens, num_keep, "cosine"), name
        distinct = random_tokens(4608, 512, seed=10, dtype=dtype, device="cuda")
        graphed = GraphedSelection(distinct, 691, resolve_duplicates=True)
        assert torch.equal(graphed(distinct).picks, divprune(distinct, num_keep=691, cuda_graph=False))

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
    @pytest.mark.parametrize("dim", [64, 4096])
    def test_copies_are_within_the_bound_the_duplicate_threshold_is_built_on(self, dtype, dim):
        """The graph's fallback rule: a copy's computed distance is within 2 (D + 8) u of 0 (a quarter of the
        threshold), on the same Gram matrix and first-pick scores the graph computes."""
        from divprune_video.selection._triton import cosine_first_scores
        from divprune_video.selection.distance import gram, inverse_norms
        from divprune_video.selection.graphs import duplicate_threshold

        base = random_tokens(2048, dim, seed=dim, dtype=dtype, device="cuda") * 3.0
        tokens = torch.cat([base, base.flip(0)]).unsqueeze(0)  # every token twice, at scattered positions
        inv = inverse_norms(tokens)
        scores = cosine_first_scores(gram(tokens, tokens).contiguous(), inv, None)
        assert scores.abs().max().item() <= duplicate_threshold(dim) / 4

    def test_distinct_tokens_closer_than_the_threshold_pick_as_eager(self):
        tokens = random_tokens(1200, 256, seed=9, dtype=torch.float32, device="cuda")
        tokens[700] = tokens[300] * (1 + 2.0**-20)  # not a copy, but at a distance below the threshold
        expected = divprune(tokens, num_keep=200, cuda_graph=False)
        for _ in range(3):
            assert torch.equal(divprune(tokens, num_keep=200), expected)
        assert (GRAPHS.stats.duplicate_captures, GRAPHS.stats.replays, GRAPHS.stats.fallbacks) == (1, 2, 0)

    @pytest.mark.parametrize("bad", ["nan", "zero"])
    def test_bad_tokens_raise_through_a_captured_shape(self, bad):
        tokens = random_tokens(1000, 128, seed=3, dtype=torch.float16, device="cuda")
        divprune(tokens, num_keep=100)
        divprune(tokens, num_keep=100)
        assert len(GRAPHS) == 1
        broken = tokens.clone()
        broken[417] = float("nan") if bad == "nan" else 0.0
        with pytest.raises(ValueError, match="417"):
            divprune(broken, num_keep=100)
        assert torch.equal(divprune(tokens, num_keep=100), divprune(tokens, num_keep=100, cuda_graph=False))

    def test_no_graph_for_long_rows_other_metrics_or_opted_out_calls(self):
        from divprune_video.selection.graphs import GRAPH_MAX_TOKENS

        long_row = random_tokens(GRAPH_MAX_TOKENS + 1, 32, seed=4, dtype=torch.float16, device="cuda")
        short = random_tokens(500, 32, seed=5, dtype=torch.float16, device="cuda")
        for _ in range(2):
            divprune(long_row, num_keep=10)
            divprune(short, num_keep=10, metric="l2")
            divprune(short, num_keep=10, cuda_graph=False)
        assert len(GRAPHS) == 0

    def test_a_call_inside_another_capture_is_not_eligible(self):
        tokens = random_tokens(600, 64, seed=6, dtype=torch.float16, device="cuda")
        assert graph_eligible(tokens, "cosine", "full", "triton")
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            eligible = graph_eligible(tokens, "cosine", "full", "triton")
        assert not eligible
