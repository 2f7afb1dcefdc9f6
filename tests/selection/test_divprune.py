import itertools

import pytest
import torch

from divprune_video import divprune, divprune_batch, min_pairwise_distance, plan_selection
from divprune_video.selection import divprune_selector
from divprune_video.selection.chunked import select_chunked
from divprune_video.testing import clustered_tokens, random_tokens

from .reference import reference_divprune

METRICS = ["cosine", "l2", "l1"]


def _cases():
    sizes = [(1, 4), (2, 3), (7, 5), (50, 16), (200, 64), (333, 32)]
    for (n, d), kind, seed in itertools.product(sizes, ["random", "clustered"], [0, 1, 2]):
        yield n, d, kind, seed


def _tokens(n, d, kind, seed):
    if kind == "random":
        return random_tokens(n, d, seed=seed)
    return clustered_tokens(n, d, num_clusters=5, spread=0.2, seed=seed)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("n,d,kind,seed", list(_cases()))
def test_full_path_matches_float64_reference(metric, n, d, kind, seed):
    tokens = _tokens(n, d, kind, seed)
    num_keep = max(1, (n * (seed + 1)) // 7)
    expected = reference_divprune(tokens, num_keep, metric)
    got = divprune(tokens, num_keep=num_keep, metric=metric, path="full")
    assert got.dtype == torch.long and got.device == tokens.device
    assert got.tolist() == expected


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_chunked_path_matches_reference_across_tiles(metric, seed):
    tokens = clustered_tokens(240, 24, num_clusters=6, spread=0.25, seed=seed)
    expected = reference_divprune(tokens, 60, metric)
    valid = torch.ones(1, 240, dtype=torch.bool)
    # Tiles of 7 rows: 35 tiles for the first pick's running column minimum.
    got = select_chunked(tokens.unsqueeze(0), valid, [60], metric, tile_bytes=7 * 240 * 4)[0]
    assert got.tolist() == expected
    assert divprune(tokens, num_keep=60, metric=metric, path="chunked").tolist() == expected


@pytest.mark.parametrize("metric", METRICS)
def test_keep_all_returns_a_permutation(metric):
    tokens = random_tokens(64, 8, seed=3)
    picks = divprune(tokens, keep_ratio=1.0, metric=metric)
    assert sorted(picks.tolist()) == list(range(64))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("path", ["full", "chunked"])
def test_exact_duplicates_are_never_picked_twice(metric, path):
    base = random_tokens(5, 6, seed=4)
    tokens = torch.cat([base, base, base[:2]])  # 12 tokens, every one has an exact duplicate
    picks = divprune(tokens, num_keep=12, metric=metric, path=path).tolist()
    assert sorted(picks) == list(range(12))
    # The five distinct vectors come first; their duplicates (distance 0) only afterwards.
    assert sorted(i % 5 for i in picks[:5]) == list(range(5))


def test_ties_go_to_the_lowest_index():
    tokens = torch.eye(6)  # every pair at cosine distance exactly 1
    assert divprune(tokens, num_keep=6).tolist() == [0, 1, 2, 3, 4, 5]
    reversed_rows = torch.eye(6).flip(0)
    assert divprune(reversed_rows, num_keep=3, metric="l1").tolist() == [0, 1, 2]


def test_first_pick_is_the_most_isolated_token():
    tokens = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0]])
    assert divprune(tokens, num_keep=1, metric="l2").tolist() == [3]


def test_single_token():
    assert divprune(torch.ones(1, 3), keep_ratio=0.5).tolist() == [0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_any_float_dtype_is_compared_in_float32_or_better(dtype):
    tokens = random_tokens(120, 32, seed=5).to(dtype)
    expected = reference_divprune(tokens.double(), 30)
    assert divprune(tokens, num_keep=30).tolist() == expected


def test_keep_ratio_rounding_matches_published_count():
    tokens = random_tokens(4608 // 16, 4, seed=0)
    assert len(divprune(tokens, keep_ratio=0.15)) == round(0.15 * tokens.shape[0])
    assert len(divprune(tokens, keep_ratio=1e-9)) == 1


def test_diverse_set_beats_random_and_uniform_on_the_objective():
    tokens = clustered_tokens(400, 32, num_clusters=10, spread=0.3, seed=1)
    kept = divprune(tokens, num_keep=20)
    ours = min_pairwise_distance(tokens, kept)
    random_kept = torch.randperm(400, generator=torch.Generator().manual_seed(0))[:20]
    assert ours > min_pairwise_distance(tokens, random_kept)
    assert ours > min_pairwise_distance(tokens, torch.arange(0, 400, 20))


def test_auto_path_goes_chunked_when_the_matrix_does_not_fit(monkeypatch):
    tokens = random_tokens(100, 8)
    assert plan_selection(tokens).path == "full"
    monkeypatch.setattr(divprune_selector, "free_bytes", lambda device: 1000)
    plan = plan_selection(tokens)
    assert plan.path == "chunked" and plan.backend == "torch" and plan.matrix_bytes == 100 * 100 * 4
    assert divprune(tokens, num_keep=10).tolist() == reference_divprune(tokens, 10)


# ---------------------------------------------------------------- batches


@pytest.mark.parametrize("metric", ["cosine", "l1"])
def test_batch_with_mask_equals_rows_one_by_one(metric):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(3, 40, 12, generator=generator)
    lengths = [40, 25, 9]
    mask = torch.arange(40).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    tokens[~mask] = float("nan")  # padding content must never matter
    picks = divprune_batch(tokens, keep_ratio=0.3, mask=mask, metric=metric)
    for row, length in enumerate(lengths):
        expected = divprune(tokens[row, :length], keep_ratio=0.3, metric=metric)
        assert picks[row].tolist() == expected.tolist()
        assert len(picks[row]) == max(1, round(0.3 * length))


def test_batch_rows_may_keep_different_counts():
    tokens = random_tokens(2 * 30, 6, seed=7).view(2, 30, 6)
    picks = divprune_batch(tokens, num_keep=[3, 11])
    assert [len(p) for p in picks] == [3, 11]
    for row in range(2):
        assert picks[row].tolist() == reference_divprune(tokens[row], len(picks[row]))
    chunked = divprune_batch(tokens, num_keep=[3, 11], path="chunked")
    assert [p.tolist() for p in chunked] == [p.tolist() for p in picks]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: divprune(torch.empty(0, 4), keep_ratio=0.5), ValueError, "empty"),
        (lambda: divprune(torch.empty(3, 0), keep_ratio=0.5), ValueError, "empty"),
        (lambda: divprune(torch.tensor([[1.0, float("nan")], [1.0, 2.0]]), num_keep=1), ValueError, "NaN or Inf"),
        (lambda: divprune(torch.tensor([[1.0, 2.0], [float("inf"), 2.0]]), num_keep=1), ValueError, "token 1"),
        (lambda: divprune(torch.ones(2, 3, 4), keep_ratio=0.5), ValueError, "shape (N, D)"),
        (lambda: divprune(torch.ones(4), keep_ratio=0.5), ValueError, "rank 2"),
        (lambda: divprune(torch.ones(4, 2, dtype=torch.int64), keep_ratio=0.5), TypeError, "floating-point"),
        (lambda: divprune([[1.0, 2.0]], keep_ratio=0.5), TypeError, "torch.Tensor"),
        (lambda: divprune(torch.ones(4, 2)), ValueError, "exactly one of keep_ratio or num_keep"),
        (lambda: divprune(torch.ones(4, 2), 0.5, num_keep=2), ValueError, "exactly one of keep_ratio or num_keep"),
        (lambda: divprune(torch.ones(4, 2), keep_ratio=0.0), ValueError, "keep_ratio must be in (0, 1]"),
        (lambda: divprune(torch.ones(4, 2), keep_ratio=1.5), ValueError, "keep_ratio must be in (0, 1]"),
        (lambda: divprune(torch.ones(4, 2), keep_ratio=float("nan")), ValueError, "keep_ratio"),
        (lambda: divprune(torch.ones(4, 2), num_keep=0), ValueError, "num_keep must be in 1..N = 1..4"),
        (lambda: divprune(torch.ones(4, 2), num_keep=5), ValueError, "num_keep must be in 1..N = 1..4"),
        (lambda: divprune(torch.ones(4, 2), num_keep=2.5), TypeError, "num_keep must be an int"),
        (lambda: divprune(torch.ones(4, 2), num_keep=2, metric="dot"), ValueError, "metric must be one of"),
        (lambda: divprune(torch.ones(4, 2), num_keep=2, backend="cuda"), ValueError, "backend must be one of"),
        (lambda: divprune(torch.ones(4, 2), num_keep=2, path="tiles"), ValueError, "path must be one of"),
        (lambda: divprune(torch.ones(4, 2), num_keep=2, backend="triton"), ValueError, "needs CUDA"),
        (lambda: divprune(torch.tensor([[1.0, 0.0], [0.0, 0.0]]), num_keep=1), ValueError, "token 1 has zero norm"),
        (
            lambda: divprune_batch(torch.ones(2, 3, 4), keep_ratio=0.5, mask=torch.ones(2, 4, dtype=torch.bool)),
            ValueError,
            "mask must have shape",
        ),
        (lambda: divprune_batch(torch.ones(2, 3, 4), keep_ratio=0.5, mask=torch.ones(2, 3)), TypeError, "torch.bool"),
        (
            lambda: divprune_batch(
                torch.ones(2, 3, 4), keep_ratio=0.5, mask=torch.tensor([[1, 1, 1], [0, 0, 0]]).bool()
            ),
            ValueError,
            "no valid token in batch row(s) [1]",
        ),
        (lambda: divprune_batch(torch.ones(2, 3, 4), num_keep=[1, 2, 3]), ValueError, "3 entries but the batch has 2"),
        (lambda: divprune_batch(torch.ones(3, 4), num_keep=1), ValueError, "shape (B, N, D)"),
        (lambda: divprune(torch.ones(4, 2).to(torch.float8_e4m3fn), num_keep=1), TypeError, "torch.float8_e4m3fn"),
        (
            lambda: divprune(torch.ones(4, 2).to(torch.float8_e5m2), num_keep=1, path="chunked"),
            TypeError,
            "torch.float8_e5m2",
        ),
        (lambda: divprune_batch(torch.ones(1, 4, 2).to(torch.float8_e4m3fn), num_keep=1), TypeError, "float8"),
        (lambda: divprune(torch.ones(4, 2, device="meta"), num_keep=1), TypeError, "meta device"),
        (lambda: divprune_batch(torch.ones(1, 4, 2, device="meta"), keep_ratio=0.5), TypeError, "meta device"),
    ],
)
def test_bad_input_raises_a_specific_error(call, error, message):
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("path", ["full", "chunked"])
def test_tokens_that_require_grad_are_selected_like_any_others(metric, path):
    weights = torch.randn(16, 16, generator=torch.Generator().manual_seed(0), requires_grad=True)
    tokens = clustered_tokens(90, 16, seed=2) @ weights  # a model output outside torch.no_grad()
    assert tokens.requires_grad
    expected = reference_divprune(tokens, 20, metric)
    picks = divprune(tokens, num_keep=20, metric=metric, path=path)
    assert picks.tolist() == expected and not picks.requires_grad
    batch = divprune_batch(tokens.unsqueeze(0).repeat(2, 1, 1), num_keep=[20, 5], metric=metric, path=path)
    assert batch[0].tolist() == expected and batch[1].tolist() == expected[:5]
    assert weights.grad is None


def test_zero_norm_padding_is_fine_under_a_mask():
    tokens = torch.zeros(1, 5, 3)
    tokens[0, :3] = torch.eye(3)
    mask = torch.tensor([[True, True, True, False, False]])
    assert divprune_batch(tokens, num_keep=3, mask=mask)[0].tolist() == [0, 1, 2]
