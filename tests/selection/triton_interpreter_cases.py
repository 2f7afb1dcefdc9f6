"""Run the Triton kernels under Triton's CPU interpreter and compare them with the pure-PyTorch path.

Started as a subprocess by test_triton_interpreter.py with TRITON_INTERPRET=1 set (the interpreter must be chosen
before the kernels are defined, and must not leak into other tests). Prints one line per case and exits 1 on the
first mismatch.
"""

import sys

import torch

from divprune_video.selection import _triton
from divprune_video.selection.distance import gram, inverse_norms, pairwise_distance
from divprune_video.selection.duplicates import first_occurrences, merge_duplicates
from divprune_video.selection.greedy import first_pick_scores, greedy_from_distances
from divprune_video.testing import clustered_tokens
from tests.selection.duplicate_inputs import duplicate_heavy_cases
from tests.selection.reference import reference_divprune


def reference(tokens, valid, counts, metric):
    dist = pairwise_distance(tokens, metric)
    scores = first_pick_scores(dist, valid)
    return scores, greedy_from_distances(dist, scores, valid, counts)


def main() -> int:
    register_variant = (_triton.MAX_REGISTER_TOKENS, _triton.STREAM_CHUNK)
    cases = [
        (1, 1, 4, "cosine"),
        (1, 2, 3, "cosine"),
        (1, 7, 5, "cosine"),
        (2, 100, 16, "cosine"),
        (1, 300, 8, "cosine"),
        (2, 90, 6, "l1"),
        (1, 120, 12, "l2"),
        (1, 150, 8, "stream"),
    ]
    for seed, (batch, num_tokens, dim, metric) in enumerate(cases):
        tokens = clustered_tokens(batch * num_tokens, dim, num_clusters=4, seed=seed).view(batch, num_tokens, dim)
        valid = torch.ones(batch, num_tokens, dtype=torch.bool)
        if batch == 2:
            valid[1, num_tokens // 2 + 3 :] = False
        counts = [max(1, int(row.sum()) // 3) for row in valid]
        if metric == "stream":  # force the streamed-minima variant: chunks of 32 over 150 tokens
            metric, _triton.MAX_REGISTER_TOKENS, _triton.STREAM_CHUNK = "cosine", 64, 32
        scores, expected = reference(tokens, valid, counts, metric)
        if metric == "cosine":
            inv, g = inverse_norms(tokens).contiguous(), gram(tokens, tokens).contiguous()
            fused_scores = _triton.cosine_first_scores(g, inv, valid)
            if not torch.equal(fused_scores, scores):
                print(f"FIRST-SCORES MISMATCH {batch}x{num_tokens}x{dim}: {fused_scores} vs {scores}")
                return 1
            if bool(valid.all()) and not torch.equal(_triton.cosine_first_scores(g, inv, None), scores):
                print(f"FIRST-SCORES MISMATCH without a mask {batch}x{num_tokens}x{dim}")
                return 1
            got = _triton.greedy_triton(g, inv, fused_scores, counts)
        else:
            got = _triton.select_full_triton(tokens, valid, counts, metric)
        if not torch.equal(got, expected):
            print(f"PICKS MISMATCH {batch}x{num_tokens}x{dim} {metric}:\n{got}\n{expected}")
            return 1
        print(f"ok {batch}x{num_tokens}x{dim} {metric} {counts}")
    print(f"cases passed: {len(cases)}")
    _triton.MAX_REGISTER_TOKENS, _triton.STREAM_CHUNK = register_variant  # the streamed variant is slow here
    return duplicate_cases()


def duplicate_cases() -> int:
    """Duplicate-heavy tokens (a static video): the kernels pick what the float64 reference picks, in a masked
    batch row and in a row of all valid tokens."""
    passed = 0
    for name, tokens, num_keep in duplicate_heavy_cases():
        for metric in ("cosine", "l2", "l1"):
            expected = reference_divprune(tokens, num_keep, metric)
            batch = torch.cat([tokens, tokens[:5]]).unsqueeze(0).repeat(2, 1, 1)
            valid = torch.ones(batch.shape[:2], dtype=torch.bool)
            valid[0, tokens.shape[0] :] = False  # row 0: the tokens and padding; row 1: five more copies
            picked = _triton.select_full_triton(batch, valid, [num_keep, num_keep], metric)
            if picked[0].tolist() != expected:
                print(f"DUPLICATES MISMATCH {name} {metric}:\n{picked[0].tolist()}\n{expected}")
                return 1
            if picked[1].tolist() != reference_divprune(batch[1], num_keep, metric):
                print(f"DUPLICATES MISMATCH {name} {metric}, row 1: {picked[1].tolist()}")
                return 1
            passed += 1
    print(f"duplicate cases passed: {passed}")
    return rounds_cases()


def rounds_cases() -> int:
    """The matrix-free path's kernels: fused GEMM + minimum passes (tiles of 32, so several per side and the
    triangle skip run) and the round's one-program greedy, alone and inside the whole selection."""
    from divprune_video.selection import chunked

    tile = _triton.MIN_TILE
    _triton.MIN_TILE = 32
    passed = 0
    for seed, (num_tokens, dim) in enumerate([(150, 24), (70, 130), (33, 8)]):
        tokens = clustered_tokens(num_tokens, dim, num_clusters=5, spread=0.25, seed=seed)
        fused = _triton.FusedCosine(tokens)
        block = chunked.distance_block(tokens, "cosine")
        expected_scores = chunked._first_pick_scores(block, num_tokens, tokens.device, 1 << 20)
        if not torch.allclose(fused.first_pick_scores(), expected_scores, rtol=0, atol=1e-6):
            print(f"FUSED FIRST-SCORES MISMATCH {num_tokens}x{dim}")
            return 1
        rows = torch.tensor([num_tokens - 1, 0, 5, 5 % num_tokens])
        if not torch.allclose(fused.column_minima(rows), block(rows, None).amin(dim=0), rtol=0, atol=1e-6):
            print(f"FUSED COLUMN-MINIMA MISMATCH {num_tokens}x{dim}")
            return 1
        dist = block(torch.arange(num_tokens), None)
        start = dist[0].clone()
        start[0] = float("-inf")
        level = float(start.quantile(0.6))
        tied = start.clone()
        tied[1::3] = level  # exact ties at the boundary: decided by the candidate index `before`
        cases = [(start, float("-inf"), 0, num_tokens), (start, level, 0, num_tokens), (start, 0.0, 0, 3)]
        cases += [(tied, level, before, num_tokens) for before in (0, 10, num_tokens)]
        for values, tau, before, limit in cases:
            got = _triton.greedy_round_triton(dist, values, tau, before, limit)
            if got.tolist() != chunked.greedy_round(dist, values, tau, before, limit).tolist():
                print(f"ROUND MISMATCH {num_tokens}x{dim} tau={tau}: {got.tolist()}")
                return 1
        for candidates in (1, 5, 33):
            picks = chunked.select_in_rounds(tokens, num_tokens // 2, "cosine", candidates=candidates, use_triton=True)
            if picks.tolist() != reference_divprune(tokens, num_tokens // 2):
                print(f"ROUNDS MISMATCH {num_tokens}x{dim} candidates={candidates}: {picks.tolist()}")
                return 1
        passed += 1
    # Exact duplicates: the fused passes run over the distinct tokens and the zeros are written back.
    for name, tokens, num_keep in duplicate_heavy_cases():
        for candidates in (3, 40):
            picks = chunked.select_in_rounds(tokens, num_keep, "cosine", candidates=candidates, use_triton=True)
            if picks.tolist() != reference_divprune(tokens, num_keep):
                print(f"ROUNDS MISMATCH on duplicates {name} candidates={candidates}: {picks.tolist()}")
                return 1
        passed += 1
    _triton.MIN_TILE = tile
    print(f"rounds cases passed: {passed}")
    return cooperative_cases()


def cooperative_cases() -> int:
    """The cooperative kernel's rounds (several picks per exchange) in one program, the only way the interpreter
    can run it (it runs programs one after another): from the Gram matrix and from a distance matrix, with 1 to 6
    candidates per round, invalid tokens, exact ties (a static video's copies, small integer tokens) and k = N."""
    passed = 0
    cases = [(5, 4, 2, 5), (40, 8, 4, 13), (100, 16, 6, 30), (128, 16, 128, 8), (120, 6, 3, 60), (60, 16, 60, 20)]
    for seed, (num_tokens, dim, clusters, count) in enumerate(cases):
        tokens = clustered_tokens(num_tokens, dim, num_clusters=clusters, seed=seed).unsqueeze(0)
        valid = torch.ones(1, num_tokens, dtype=torch.bool)
        if seed % 2:
            valid[0, 1::4] = False
            count = min(count, int(valid.sum()))
        for metric in ("cosine", "l2"):
            scores, expected = reference(tokens, valid, [count], metric)
            if metric == "cosine":
                src, inv = gram(tokens, tokens).contiguous(), inverse_norms(tokens).contiguous()
                scores = _triton.cosine_first_scores(src, inv, valid)
            else:
                src, inv = pairwise_distance(tokens, metric).float().contiguous(), None
            for top in (1, 3, 6):
                got = _triton.greedy_triton_cooperative(src, inv, scores, count, block=128, top=top, group=4)
                if not torch.equal(got, expected):
                    print(f"COOPERATIVE MISMATCH {num_tokens}x{dim} {metric} top={top}:\n{got}\n{expected}")
                    return 1
                passed += 1
    for name, tokens, num_keep in duplicate_heavy_cases():
        expected = reference_divprune(tokens, num_keep, "l1")
        src = merge_duplicates(pairwise_distance(tokens, "l1"), first_occurrences(tokens))
        src = src.float().unsqueeze(0).contiguous()
        valid = torch.ones(1, tokens.shape[0], dtype=torch.bool)
        scores = first_pick_scores(src, valid)
        got = _triton.greedy_triton_cooperative(src, None, scores, num_keep, block=256, top=3, group=8)
        if got[0].tolist() != expected:
            print(f"COOPERATIVE MISMATCH on duplicates {name}: {got[0].tolist()}\n{expected}")
            return 1
        passed += 1
    # Small integer tokens: many exactly equal distances, copies, and invalid tokens; 1 to 5 offered per program.
    generator = torch.Generator().manual_seed(11)
    for case in range(40):
        num_tokens, dim = 20 + 5 * case, 3 + case % 4
        tokens = torch.randint(-2, 3, (1, num_tokens, dim), generator=generator).float()
        tokens[..., 0] += (tokens.abs().sum(-1) == 0).float()  # no zero norms
        valid = torch.rand(1, num_tokens, generator=generator) > (0.3 if case % 3 == 0 else 0.0)
        count = int(torch.randint(1, int(valid.sum()) + 1, (), generator=generator))
        first = first_occurrences(tokens)
        use_gram = first is None and case % 2 == 0
        metric = "cosine" if use_gram else ("l2", "l1", "cosine")[case % 3]
        dist = merge_duplicates(pairwise_distance(tokens, metric), first)
        expected = greedy_from_distances(dist, first_pick_scores(dist, valid), valid, [count])
        if use_gram:
            src, inv = gram(tokens, tokens).contiguous(), inverse_norms(tokens).contiguous()
            scores = _triton.cosine_first_scores(src, inv, valid)
        else:
            src, inv, scores = dist.float().contiguous(), None, first_pick_scores(dist, valid)
        got = _triton.greedy_triton_cooperative(src, inv, scores, count, block=256, top=1 + case % 5, group=4)
        if not torch.equal(got, expected):
            print(f"COOPERATIVE MISMATCH on tied tokens, case {case}:\n{got}\n{expected}")
            return 1
        passed += 1
    one_row = torch.zeros(1, 300, 300), torch.zeros(1, 300)
    for launch, problem in (({"block": 128}, "cannot run one after another"), ({"group": 3}, "power of two")):
        try:
            _triton.greedy_triton_cooperative(one_row[0], None, one_row[1], 10, **launch)
        except ValueError as error:
            if problem not in str(error):
                print(f"COOPERATIVE: wrong refusal of {launch}: {error}")
                return 1
        else:
            print(f"COOPERATIVE: {launch} was not refused")
            return 1
        passed += 1
    print(f"cooperative cases passed: {passed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
