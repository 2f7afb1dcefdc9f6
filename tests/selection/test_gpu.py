"""The fast paths on a real GPU: they must pick exactly what the pure-PyTorch path picks on the same tokens."""

import pytest
import torch

from divprune_video import divprune, divprune_batch, plan_selection
from divprune_video.selection.benchmark import divergence, published_style_greedy
from divprune_video.selection.distance import gram
from divprune_video.testing import clustered_tokens, random_tokens

from .step_inputs import RACE_SHAPES, race_tokens, step_loop_inputs

pytestmark = pytest.mark.gpu
pytest.importorskip("triton")

DTYPES = [torch.float16, torch.bfloat16, torch.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("num_tokens", [1, 2, 3, 100, 577, 4608])
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_triton_equals_torch_cosine(dtype, num_tokens, kind):
    make = random_tokens if kind == "random" else clustered_tokens
    tokens = make(num_tokens, 256, seed=num_tokens, dtype=dtype, device="cuda")
    k = max(1, round(0.15 * num_tokens))
    fast = divprune(tokens, num_keep=k, backend="triton", path="full")
    slow = divprune(tokens, num_keep=k, backend="torch", path="full")
    assert fast.is_cuda and fast.dtype == torch.long
    assert torch.equal(fast, slow)


@pytest.mark.parametrize("metric", ["l2", "l1"])
def test_triton_equals_torch_other_metrics(metric):
    tokens = clustered_tokens(1500, 64, seed=1, dtype=torch.float16, device="cuda")
    fast = divprune(tokens, num_keep=300, metric=metric, backend="triton")
    assert torch.equal(fast, divprune(tokens, num_keep=300, metric=metric, backend="torch"))


def test_streamed_minima_variant_beyond_register_rows():
    tokens = random_tokens(20000, 64, seed=2, dtype=torch.float16, device="cuda")
    fast = divprune(tokens, num_keep=500, backend="triton", path="full")
    assert torch.equal(fast, divprune(tokens, num_keep=500, backend="torch", path="full"))


def test_batch_with_mask_and_different_counts():
    tokens = random_tokens(3 * 700, 128, seed=3, dtype=torch.bfloat16, device="cuda").view(3, 700, 128)
    mask = torch.arange(700, device="cuda").unsqueeze(0) < torch.tensor([700, 400, 33], device="cuda").unsqueeze(1)
    fast = divprune_batch(tokens, num_keep=[100, 7, 33], mask=mask, backend="triton")
    slow = divprune_batch(tokens, num_keep=[100, 7, 33], mask=mask, backend="torch")
    assert [f.tolist() for f in fast] == [s.tolist() for s in slow]


def test_chunked_path_agrees_or_diverges_only_at_a_near_tie():
    tokens = random_tokens(3000, 512, seed=4, dtype=torch.float16, device="cuda")
    full = divprune(tokens, num_keep=450, path="full")
    chunked = divprune(tokens, num_keep=450, path="chunked")
    info = divergence(tokens, full, chunked)
    assert info is None or (info.score_gap < 1e-5 and abs(info.min_distance_ours - info.min_distance_other) < 1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("candidates", [64, 4096])
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_rounds_kernels_agree_with_the_full_path_or_diverge_only_at_a_near_tie(dtype, candidates, kind):
    """The matrix-free path's fused GEMM + minimum passes and one-program round greedy against the definition:
    their Gram products round differently from cuBLAS's, so a float32 near-tie may go the other way."""
    from divprune_video.selection.chunked import select_in_rounds

    make = random_tokens if kind == "random" else clustered_tokens
    tokens = make(5000, 320, seed=candidates, dtype=dtype, device="cuda")
    full = divprune(tokens, num_keep=750, backend="torch", path="full")
    rounds = select_in_rounds(tokens, 750, "cosine", candidates=candidates, use_triton=True)
    assert sorted(set(rounds.tolist())) == sorted(rounds.tolist())
    info = divergence(tokens, full, rounds)
    assert info is None or (info.score_gap < 1e-5 and abs(info.min_distance_ours - info.min_distance_other) < 1e-4)
    pure = select_in_rounds(tokens, 750, "cosine", candidates=candidates, use_triton=False)
    info = divergence(tokens, full, pure)
    assert info is None or info.score_gap < 1e-5


def test_rounds_respect_a_per_process_memory_limit():
    """With the process limited below the full matrix's size, auto takes the matrix-free path and stays inside."""
    tokens = random_tokens(20000, 256, seed=9, dtype=torch.float16, device="cuda")
    expected = divprune(tokens, num_keep=3000, backend="torch", path="full")
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.set_per_process_memory_fraction((base + 1.0e9) / total, 0)
    try:
        assert plan_selection(tokens).path == "chunked"  # the matrix alone would take 1.6 GB
        torch.cuda.reset_peak_memory_stats()
        picks = divprune(tokens, num_keep=3000)
        assert torch.cuda.max_memory_allocated() < base + 1.0e9
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
    info = divergence(tokens, expected, picks)
    assert info is None or info.score_gap < 1e-5


def test_matches_published_greedy_on_float32():
    tokens = random_tokens(2000, 256, seed=5, device="cuda")
    ours = divprune(tokens, num_keep=300)
    published = published_style_greedy(tokens, 300)
    info = divergence(tokens, ours, published)
    assert info is None or info.score_gap < 1e-5


def test_half_gram_is_float32_and_exact_products():
    tokens = random_tokens(300, 1024, seed=6, dtype=torch.float16, device="cuda")
    g = gram(tokens, tokens)
    assert g.dtype == torch.float32
    exact = tokens.double() @ tokens.double().T
    # float32 accumulation over D=1024 lands near 5e-6 of the largest entry; a result rounded to half would be
    # off by ~5e-4 (half's 11-bit mantissa).
    assert float((g.double() - exact).abs().max() / exact.abs().max()) < 5e-5


@pytest.mark.parametrize(
    "num_tokens,shape",
    [
        ((9000, (1024, 8, 3, 8))),
        ((4608, (512, 4, 3, 8))),
        ((4608, (512, 4, 1, 2))),  # one candidate per program: most rounds make one pick
        ((4608, (1024, 4, 6, 4))),
        ((3000, (2048, 8, 3, 4))),
        ((4240, (512, 4, 3, 8))),  # the streaming memory's shape: keep 4,096 of 4,240
    ],
)
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_cooperative_kernel_equals_torch(num_tokens, shape, kind):
    from divprune_video.selection import _triton

    if kind == "random":
        tokens = random_tokens(num_tokens, 128, seed=7, dtype=torch.float16, device="cuda")
    else:
        tokens = clustered_tokens(num_tokens, 128, num_clusters=16, seed=7).to("cuda", torch.float16)
    valid = torch.ones(1, num_tokens, dtype=torch.bool, device="cuda")
    g, inv, scores = step_loop_inputs(tokens, valid)
    k = 4096 if num_tokens == 4240 else round(0.15 * num_tokens)
    picks = _triton.greedy_triton_cooperative(g, inv, scores, k, *shape)
    assert torch.equal(picks[0], divprune(tokens, num_keep=k, backend="torch", path="full"))


@pytest.mark.parametrize("num_tokens,k", RACE_SHAPES)
def test_cooperative_kernel_picks_the_same_on_every_run(num_tokens, k):
    """A race between the copies of the exchanged keys that several threads hold (fixed in ``_published``) made
    8 warps with 6 candidates per program pick wrongly in 7 of 90 runs on an H200; 40 runs here."""
    from divprune_video.selection import _triton

    tokens = race_tokens(num_tokens)
    g, inv, scores = step_loop_inputs(tokens)
    expected = divprune(tokens, num_keep=k, backend="torch", path="full")
    for _ in range(20):
        for shape in ((512, 8, 6, 8), (512, 4, 3, 8)):
            assert torch.equal(_triton.greedy_triton_cooperative(g, inv, scores, k, *shape)[0], expected), shape


def test_cooperative_kernel_skips_invalid_tokens():
    """Masked tokens reach the kernel as -inf first-pick scores: never picked, never candidates (a one-row batch
    takes the cooperative kernel)."""
    tokens = random_tokens(4608, 128, seed=9, dtype=torch.float16, device="cuda").unsqueeze(0)
    mask = torch.ones(1, 4608, dtype=torch.bool, device="cuda")
    mask[0, 1000:2500] = False
    expected = divprune_batch(tokens, 0.2, mask=mask, backend="torch", path="full")
    got = divprune_batch(tokens, 0.2, mask=mask, backend="triton", path="full")
    assert all(torch.equal(a, b) for a, b in zip(got, expected))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ["cosine", "l2", "l1"])
def test_duplicates_pick_the_reference_on_every_cuda_path(dtype, metric):
    from .duplicate_inputs import duplicate_heavy_cases
    from .reference import reference_divprune

    for name, tokens, num_keep in duplicate_heavy_cases():
        tokens = tokens.to(dtype)
        expected = reference_divprune(tokens, num_keep, metric)
        cuda = tokens.cuda()
        for backend, path in (("triton", "full"), ("torch", "full"), ("torch", "chunked"), ("triton", "chunked")):
            picks = divprune(cuda, num_keep=num_keep, metric=metric, backend=backend, path=path)
            assert picks.tolist() == expected, (name, backend, path)


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_long_static_video_on_cuda(dtype):
    """32 frames of 144 tokens, every frame the same but one: the cooperative kernel's row length (N = 4608)."""
    from .duplicate_inputs import static_video_tokens

    tokens = static_video_tokens(32, 144, 1024, seed=8).to(dtype)
    num_keep = round(0.15 * tokens.shape[0])
    expected = divprune(tokens.double(), num_keep=num_keep).tolist()  # float64 on the CPU
    assert sorted(expected[:288]) == list(range(144)) + list(range(16 * 144, 17 * 144))  # the distinct tokens
    assert expected[288:] == list(range(144, 144 + num_keep - 288))  # then the first copies, in order
    cuda = tokens.cuda()
    for backend, path in (("triton", "full"), ("torch", "full"), ("torch", "chunked"), ("triton", "chunked")):
        assert divprune(cuda, num_keep=num_keep, backend=backend, path=path).tolist() == expected, (backend, path)
    batch = divprune_batch(cuda.unsqueeze(0).repeat(2, 1, 1), num_keep=[num_keep, 300], backend="triton")
    assert batch[0].tolist() == expected and batch[1].tolist() == expected[:300]
