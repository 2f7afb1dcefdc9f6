"""Exact duplicates (a static video repeats every token): every path puts copies at distance exactly 0, gives each
copy its first occurrence's distances, and so picks what the float64 reference picks, ties to the lowest index.
The Triton kernels are checked on the same inputs in test_triton_interpreter.py, the streaming memory in
tests/test_streaming.py."""

import pytest
import torch

from divprune_video import divprune, divprune_batch, min_pairwise_distance
from divprune_video.selection import duplicates
from divprune_video.selection.chunked import select_chunked
from divprune_video.selection.distance import pairwise_distance
from divprune_video.selection.duplicates import find_duplicates, first_occurrences

from .duplicate_inputs import (
    duplicate_heavy_cases,
    repeated_tokens,
    static_video_tokens,
)
from .reference import reference_divprune

METRICS = ["cosine", "l2", "l1"]
CASES = duplicate_heavy_cases()


def naive_first_occurrences(tokens: torch.Tensor) -> torch.Tensor:
    same = (tokens.unsqueeze(1) == tokens.unsqueeze(0)).all(dim=-1)
    return same.int().argmax(dim=1)  # the first True of each row


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_identical_tokens_are_at_distance_exactly_zero_with_equal_rows(metric, dtype):
    for name, tokens, _ in CASES:
        tokens = tokens.to(dtype)
        dist = pairwise_distance(tokens, metric)
        first = naive_first_occurrences(tokens)
        same = first.unsqueeze(1) == first.unsqueeze(0)
        assert bool((dist[same] == 0).all()), f"{name}: copies are {dist[same].abs().max()} apart"
        assert torch.equal(dist, dist[first][:, first]), f"{name}: copies have different distances"
        copies = (first != torch.arange(len(first))).nonzero()[0]
        pair = torch.tensor([int(first[copies]), int(copies)])
        assert min_pairwise_distance(tokens, pair, metric) == 0.0


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("case", range(len(CASES)), ids=[name for name, _, _ in CASES])
def test_every_torch_path_picks_the_reference_on_duplicates(metric, case):
    _, tokens, num_keep = CASES[case]
    expected = reference_divprune(tokens, num_keep, metric)
    num_tokens = tokens.shape[0]
    full = divprune(tokens, num_keep=num_keep, metric=metric, path="full", backend="torch")
    chunked = divprune(tokens, num_keep=num_keep, metric=metric, path="chunked")
    valid = torch.ones(1, num_tokens, dtype=torch.bool)
    tiled = select_chunked(tokens.unsqueeze(0), valid, [num_keep], metric, tile_bytes=7 * num_tokens * 4)[0]
    assert full.tolist() == expected
    assert chunked.tolist() == expected and tiled.tolist() == expected
    # In a padded batch, next to another duplicate-heavy row; the padding copies a real token (never picked).
    other = repeated_tokens(4, 20, tokens.shape[1], seed=case + 10)
    batch = torch.zeros(2, num_tokens + 3, tokens.shape[1])
    batch[0, :num_tokens], batch[0, num_tokens:], batch[1, :20] = tokens, tokens[0], other
    mask = torch.zeros(batch.shape[:2], dtype=torch.bool)
    mask[0, :num_tokens], mask[1, :20] = True, True
    for path in ("full", "chunked"):
        picks = divprune_batch(batch, num_keep=[num_keep, 6], mask=mask, metric=metric, path=path)
        assert picks[0].tolist() == expected
        assert picks[1].tolist() == reference_divprune(other, 6, metric)


def test_a_static_video_keeps_its_first_copies_after_the_distinct_tokens():
    tokens = static_video_tokens(10, 8, 16, seed=5)  # frame 5 differs; every other frame is frame 0
    picks = divprune(tokens, num_keep=24).tolist()
    assert sorted(picks[:16]) == list(range(8)) + list(range(40, 48))  # the 16 distinct tokens, first copies
    assert picks[16:] == list(range(8, 16))  # then ties at distance 0: the lowest indices, frame 1


def test_first_occurrences_per_batch_row_and_none_without_duplicates():
    distinct = torch.randn(2, 30, 6, generator=torch.Generator().manual_seed(0))
    assert first_occurrences(distinct) is None and first_occurrences(distinct[0]) is None
    repeated = distinct.clone()
    repeated[1, 20:] = repeated[1, :10]  # copies within row 1 only
    repeated[0, 25] = repeated[1, 3]  # equal to a token of the other row: not a duplicate
    first = first_occurrences(repeated)
    assert first.shape == (2, 30)
    assert torch.equal(first[0], torch.arange(30))
    assert torch.equal(first[1], torch.cat([torch.arange(20), torch.arange(10)]))
    negative_zero = torch.tensor([[0.0, 1.0], [-0.0, 1.0]])
    assert first_occurrences(negative_zero) is None  # bitwise different: not copies


def test_padding_is_never_a_duplicate():
    tokens = torch.randn(2, 12, 4, generator=torch.Generator().manual_seed(1))
    tokens[:, 8:] = 0.0  # zero padding: all equal
    valid = torch.arange(12).expand(2, 12) < 8
    assert find_duplicates(tokens, valid).resolve() is None
    tokens[1, 9] = tokens[1, 6] = tokens[1, 2]  # a copy in the padding between a token and its valid copy
    first = find_duplicates(tokens, valid).resolve()
    expected = torch.arange(12).repeat(2, 1)
    expected[1, 6] = 2
    assert torch.equal(first, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_fingerprint_collisions_fall_back_to_exact_comparison(monkeypatch, dtype):
    tokens = CASES[1][1][:, :7].to(dtype)  # an odd width: narrower integer views of the rows
    expected = naive_first_occurrences(tokens)
    assert torch.equal(first_occurrences(tokens), expected)
    monkeypatch.setattr(duplicates, "_fingerprints", lambda words: torch.zeros(words.shape[:-1], dtype=torch.long))
    assert torch.equal(first_occurrences(tokens), expected)  # every key collides: the tokens themselves decide
    assert first_occurrences(torch.randn(9, 7).to(dtype)) is None
