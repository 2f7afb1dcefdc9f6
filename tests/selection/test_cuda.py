"""The CUDA C step loop (selection/_cuda.py, rounds.cu): its launch shapes on the CPU; on a GPU, the same picks as
the pure-PyTorch path and the Triton kernel, on every launch shape, and the fallback when it cannot be built."""

import math
import warnings
from importlib import resources

import pytest
import torch

from divprune_video import divprune
from divprune_video.selection import _cuda
from divprune_video.selection._cuda import RoundsLaunch, rounds_launch
from divprune_video.testing import clustered_tokens, random_tokens

from .step_inputs import RACE_SHAPES, race_tokens, step_loop_inputs

H200_SMS, H200_SHARED = 132, 227 * 1024


@pytest.mark.parametrize(
    "num_tokens,count,expected",
    [
        (4240, 4096, RoundsLaunch(256, 2, 6, 64, 16, 9)),  # the streaming memory: most tokens kept
        (4608, 691, RoundsLaunch(256, 2, 3, 32, 16, 9)),  # 32 frames, keep 15%
        (36864, 5530, RoundsLaunch(512, 4, 6, 128, 16, 18)),  # 256 frames
    ],
)
def test_launch_shapes_measured_on_the_h200(num_tokens, count, expected):
    assert rounds_launch(num_tokens, count, H200_SMS, H200_SHARED) == expected


@pytest.mark.parametrize("num_tokens", [2049, 3000, 8192, 8193, 50_000, 147_456, 589_824, 1_081_344])
@pytest.mark.parametrize("keep", [0.01, 0.15, 0.97])
def test_every_launch_shape_covers_the_row_and_fits(num_tokens, keep):
    count = max(1, round(keep * num_tokens))
    launch = rounds_launch(num_tokens, count, H200_SMS, H200_SHARED)
    assert launch is not None
    assert launch.programs * launch.block >= num_tokens > (launch.programs - 1) * launch.block
    assert launch.programs <= H200_SMS and launch.threads % 32 == 0
    assert launch.candidates % 32 == 0 and launch.candidates >= launch.programs * launch.top
    assert launch.shared_bytes <= H200_SHARED and 1 <= launch.per_thread <= 16


def test_no_launch_shape_where_the_blocks_cannot_all_be_resident():
    assert rounds_launch(2_000_000, 300_000, H200_SMS, H200_SHARED) is None  # 245 blocks > 132 SMs
    assert rounds_launch(0, 1, H200_SMS, H200_SHARED) is None


def test_a_small_shared_memory_gets_fewer_offered_tokens_per_block():
    roomy = rounds_launch(36864, 5530, H200_SMS, H200_SHARED)
    tight = rounds_launch(36864, 5530, H200_SMS, 48 * 1024)
    assert roomy.top == 6 and tight.top < 6 and tight.shared_bytes <= 48 * 1024
    assert rounds_launch(36864, 5530, H200_SMS, 1024) is None


def test_the_source_ships_with_the_package():
    source = resources.files("divprune_video.selection").joinpath("rounds.cu").read_text()
    assert f'extern "C" __global__ void __launch_bounds__(THREADS, 1) {_cuda.KERNEL_NAME}(' in source


def test_not_available_off_cuda():
    assert "cpu is not a CUDA device" in _cuda.unavailable_reason(torch.device("cpu"))


def test_the_step_loop_names_a_bad_kernel_and_refuses_cuda_off_the_gpu():
    pytest.importorskip("triton")
    from divprune_video.selection._triton import step_loop

    src = torch.rand(1, 8, 8)
    scores = torch.rand(1, 8)
    with pytest.raises(ValueError, match="kernel must be one of"):
        step_loop(src, None, scores, [2], kernel="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CUDA C step loop runs on long rows"):
        step_loop(src, None, scores, [2], kernel="cuda")


# -- on a GPU ---------------------------------------------------------------------------------------------------


def _cuda_or_skip() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    pytest.importorskip("triton")
    reason = _cuda.unavailable_reason(torch.device("cuda"))
    if reason is not None:
        pytest.skip(reason)


@pytest.mark.gpu
@pytest.mark.parametrize("num_tokens,k", [(2100, 315), (4240, 4096), (4608, 691), (9000, 1350), (20000, 3000)])
@pytest.mark.parametrize("kind", ["random", "clustered"])
def test_cuda_step_loop_equals_torch(num_tokens, k, kind):
    _cuda_or_skip()
    make = random_tokens if kind == "random" else clustered_tokens
    tokens = make(num_tokens, 128, seed=num_tokens, dtype=torch.float16, device="cuda")
    g, inv, scores = step_loop_inputs(tokens)
    picks = _cuda.greedy_rounds_cuda(g, inv, scores, k)
    assert torch.equal(picks[0], divprune(tokens, num_keep=k, backend="torch", path="full"))


@pytest.mark.gpu
@pytest.mark.parametrize("top", [1, 2, 3, 6])
@pytest.mark.parametrize("threads,per_thread", [(256, 2), (128, 4), (512, 1), (256, 8)])
def test_every_launch_shape_picks_the_same(threads, per_thread, top):
    _cuda_or_skip()
    num_tokens, k = 4608, 2000
    tokens = clustered_tokens(num_tokens, 256, num_clusters=32, seed=5).to("cuda", torch.float16)
    g, inv, scores = step_loop_inputs(tokens)
    programs = math.ceil(num_tokens / (threads * per_thread))
    launch = RoundsLaunch(threads, per_thread, top, 32 * math.ceil(programs * top / 32), 8, programs)
    expected = divprune(tokens, num_keep=k, backend="torch", path="full")
    assert torch.equal(_cuda.greedy_rounds_cuda(g, inv, scores, k, launch)[0], expected)


@pytest.mark.gpu
@pytest.mark.parametrize("num_tokens,k", RACE_SHAPES)
def test_cuda_step_loop_picks_the_same_on_every_run(num_tokens, k):
    """The exchange between blocks is a spin on global memory: 20 runs at the two shapes that exposed the Triton
    kernel's race (tests/selection/test_gpu.py), at D = 4,096."""
    _cuda_or_skip()
    tokens = race_tokens(num_tokens)
    g, inv, scores = step_loop_inputs(tokens)
    expected = divprune(tokens, num_keep=k, backend="torch", path="full")
    for _ in range(20):
        assert torch.equal(_cuda.greedy_rounds_cuda(g, inv, scores, k)[0], expected)


@pytest.mark.gpu
def test_cuda_step_loop_skips_invalid_tokens_and_can_take_every_valid_one():
    _cuda_or_skip()
    tokens = random_tokens(3000, 128, seed=9, dtype=torch.float16, device="cuda")
    valid = torch.ones(1, 3000, dtype=torch.bool, device="cuda")
    valid[0, ::7] = False
    g, inv, scores = step_loop_inputs(tokens, valid)
    num_valid = int(valid.sum())
    for k in (400, num_valid):
        picks = _cuda.greedy_rounds_cuda(g, inv, scores, k)[0]
        assert bool(valid[0, picks].all()) and picks.unique().numel() == k
        triton_picks = _cuda_step(g, inv, scores, k, "triton")
        assert torch.equal(picks, triton_picks)


def _cuda_step(g, inv, scores, k, kernel):
    return _step(g, inv, scores, [k], kernel)[0]


@pytest.mark.gpu
@pytest.mark.parametrize("metric", ["l2", "cosine-with-copies"])
def test_cuda_step_loop_on_a_distance_matrix(metric):
    """The FROM_GRAM=0 build: distances read as they are (the L2 metric, and cosine tokens with exact copies,
    whose distances are gathered from their first occurrences)."""
    _cuda_or_skip()
    tokens = random_tokens(4608, 128, seed=2, dtype=torch.float16, device="cuda")
    if metric == "l2":
        fast = divprune(tokens, num_keep=691, metric="l2", backend="triton", path="full")
        assert torch.equal(fast, divprune(tokens, num_keep=691, metric="l2", backend="torch", path="full"))
    else:
        tokens = tokens[torch.arange(4608, device="cuda") % 1500]  # every token has copies
        fast = divprune(tokens, num_keep=1000, backend="triton", path="full", cuda_graph=False)
        assert torch.equal(fast, divprune(tokens, num_keep=1000, backend="torch", path="full"))


@pytest.mark.gpu
def test_a_failed_build_falls_back_to_triton_with_a_warning(monkeypatch):
    _cuda_or_skip()
    tokens = random_tokens(4608, 128, seed=4, dtype=torch.float16, device="cuda")
    g, inv, scores = step_loop_inputs(tokens)
    expected = _cuda_step(g, inv, scores, 691, "triton")

    def broken(options):
        raise _cuda.CudaKernelError("NVRTC could not compile rounds.cu (test)")

    monkeypatch.setattr(_cuda, "_compile", broken)
    monkeypatch.setattr(_cuda, "_kernels", {})
    monkeypatch.setattr(_cuda, "_failed", {})
    with pytest.warns(RuntimeWarning, match="NVRTC could not compile rounds.cu .test.; the Triton step loop runs"):
        assert torch.equal(_cuda_step(g, inv, scores, 691, "auto"), expected)
    assert "could not be built" in _cuda.unavailable_reason(torch.device("cuda"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second try
        assert torch.equal(_cuda_step(g, inv, scores, 691, "auto"), expected)
    with pytest.raises(_cuda.CudaKernelError, match="could not be built"):
        _cuda_step(g, inv, scores, 691, "cuda")


@pytest.mark.gpu
def test_cuda_step_loop_refuses_inputs_that_are_not_float32():
    _cuda_or_skip()
    tokens = random_tokens(3000, 64, seed=1, dtype=torch.float16, device="cuda")
    g, inv, scores = step_loop_inputs(tokens)
    with pytest.raises(ValueError, match="src must be float32"):
        _cuda.greedy_rounds_cuda(g.double(), inv, scores, 10)
    with pytest.raises(ValueError, match="inv_norms must be float32"):
        _cuda.greedy_rounds_cuda(g, inv.half(), scores, 10)


@pytest.mark.gpu
def test_a_batch_of_long_rows_runs_one_launch_per_row():
    """Rows over 16,384 tokens in a batch: each row runs alone, padded with -1 past its own count."""
    _cuda_or_skip()
    tokens = [random_tokens(17000, 64, seed=seed, dtype=torch.float16, device="cuda") for seed in (1, 2)]
    rows = [step_loop_inputs(row) for row in tokens]
    g, inv, scores = (torch.cat(parts) for parts in zip(*rows))
    picks = _step(g, inv, scores, [500, 300], "auto")
    assert torch.equal(picks[0], _step(*rows[0], [500], "cuda")[0])
    assert torch.equal(picks[1, :300], _step(*rows[1], [300], "cuda")[0])
    assert bool((picks[1, 300:] == -1).all())


def _step(g, inv, scores, counts, kernel):
    from divprune_video.selection._triton import step_loop

    return step_loop(g, inv, scores, counts, kernel=kernel)
