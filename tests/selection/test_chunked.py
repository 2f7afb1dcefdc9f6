"""The matrix-free path's rounds of candidates (selection/chunked.py) against the float64 reference.

Few candidates per round force many rounds and rounds that end early (the best candidate falls to the largest
running minimum left out), which is where a wrong stopping rule or tie would show.
"""

import pytest
import torch

from divprune_video.selection import chunked
from divprune_video.selection.chunked import greedy_round, select_chunked, select_in_rounds
from divprune_video.testing import clustered_tokens, random_tokens

from .duplicate_inputs import duplicate_heavy_cases
from .reference import reference_divprune

METRICS = ["cosine", "l2", "l1"]
CANDIDATES = [1, 2, 5, 33, 4096]


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("candidates", CANDIDATES)
@pytest.mark.parametrize("kind", ["random", "clustered", "tight clusters"])
def test_rounds_pick_the_reference(metric, candidates, kind):
    if kind == "random":
        tokens = random_tokens(150, 12, seed=candidates)
    elif kind == "clustered":
        tokens = clustered_tokens(150, 12, num_clusters=6, spread=0.25, seed=candidates)
    else:  # many near-copies: one pick drops a whole cluster of candidates below the boundary at once. In float64:
        # in float32 their cosine distances are near-ties that even the full path decides differently from float64.
        tokens = clustered_tokens(150, 12, num_clusters=3, spread=0.01, seed=candidates).double()
    for num_keep in (1, 2, 40, 150):
        expected = reference_divprune(tokens, num_keep, metric)
        got = select_in_rounds(tokens, num_keep, metric, tile_bytes=9 * 150 * 4, candidates=candidates)
        assert got.tolist() == expected, (metric, candidates, kind, num_keep)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("candidates", [1, 3, 16])
@pytest.mark.parametrize("case", range(len(duplicate_heavy_cases())), ids=[c[0] for c in duplicate_heavy_cases()])
def test_rounds_on_exact_duplicates_pick_the_reference(metric, candidates, case):
    _, tokens, num_keep = duplicate_heavy_cases()[case]
    valid = torch.ones(1, tokens.shape[0], dtype=torch.bool)
    got = select_chunked(tokens.unsqueeze(0), valid, [num_keep], metric, tile_bytes=5 * 4 * 120, candidates=candidates)
    assert got[0].tolist() == reference_divprune(tokens, num_keep, metric)


def test_float64_tokens_run_in_float64():
    tokens = clustered_tokens(80, 6, num_clusters=4, spread=0.1, seed=9).double()
    assert select_in_rounds(tokens, 30, "cosine", candidates=4).tolist() == reference_divprune(tokens, 30)


def test_a_round_stops_at_the_boundary_and_always_picks_once():
    # Four candidates on a line; distances |i - j|; their running minima start at 10, 9, 8, 1.
    points = torch.tensor([0.0, 5.0, 9.0, 20.0])
    dist = (points[:, None] - points[None, :]).abs()
    start = torch.tensor([10.0, 9.0, 8.0, 1.0])
    # Pick 0 (10); then 1 has min(9, 5) = 5 and 2 has min(8, 9) = 8: 2 is next only while it beats the best token
    # left out, (tau, before): above tau, or equal to it at a candidate index below `before`.
    assert greedy_round(dist, start, tau=7.0, before=0, limit=4).tolist() == [0, 2]
    assert greedy_round(dist, start, tau=8.0, before=2, limit=4).tolist() == [0]  # a tie, and 2 comes after
    assert greedy_round(dist, start, tau=8.0, before=3, limit=4).tolist() == [0, 2]  # a tie, and 2 comes first
    assert greedy_round(dist, start, tau=100.0, before=0, limit=4).tolist() == [0]  # the first pick is never refused
    assert greedy_round(dist, start, tau=float("-inf"), before=0, limit=2).tolist() == [0, 2]


def test_exact_ties_are_taken_within_a_round_in_position_order():
    """A static video: after its distinct tokens every running minimum is 0. The candidates are the lowest positions
    among the zeros, and a round takes them all (one pick per round would make rounds no better than steps)."""
    from .duplicate_inputs import static_video_tokens

    tokens = static_video_tokens(40, 6, 8, seed=5)  # 240 tokens, 12 distinct
    rounds = []
    original = chunked._lower_minima

    def counting(min_dist, new, *args):
        rounds.append(len(new))
        original(min_dist, new, *args)

    chunked._lower_minima = counting
    try:
        got = select_in_rounds(tokens, 200, "cosine", candidates=50)
    finally:
        chunked._lower_minima = original
    assert got.tolist() == reference_divprune(tokens, 200)
    # The distinct tokens come first, a few per round (a candidate list full of copies of one token collapses at
    # its first pick); then the zeros, a full round of 50 at a time: 188 picks at 0 would otherwise take 188 rounds.
    assert max(rounds) == 50 and len(rounds) <= 10, rounds


def test_bad_candidates_are_refused():
    tokens = random_tokens(10, 4)
    with pytest.raises(ValueError, match="candidates"):
        select_chunked(tokens.unsqueeze(0), torch.ones(1, 10, dtype=torch.bool), [3], "cosine", candidates=0)
