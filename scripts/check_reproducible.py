#!/usr/bin/env python3
"""Is greedy decoding of LLaVA-NeXT-Video-7B (random weights) bit-reproducible between identical calls on this GPU?

    python scripts/check_reproducible.py [--runs 4]

Runs the same ``generate()`` (24 new tokens, greedy) several times, unpruned and with DivPrune at 15%, once with
the adapter's attention setting (cuDNN attention off, :func:`reproducible_attention`) and once with PyTorch's
default backends, and prints whether the sequences and the per-step logits are identical. Not a test.
"""

from __future__ import annotations

import argparse
import contextlib

import numpy as np
import torch

from divprune_video.models import adapter as adapter_module
from divprune_video.models.base import PruningConfig
from divprune_video.models.benchmark import TEXT_ID, prompt_ids
from divprune_video.models.presets import reference_adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)
    adapter = reference_adapter("llava_next_video", torch.device("cuda"))
    frames = np.random.default_rng(0).integers(0, 256, (32, 336, 336, 3), dtype=np.uint8)
    video = adapter.encode_frames(frames)
    ids, mask = prompt_ids(adapter.placeholder_ids(video, TEXT_ID), 80)
    restricted = adapter_module.reproducible_attention
    for pruning in (PruningConfig(method="none"), PruningConfig(keep_ratio=0.15)):
        for label, setting in (
            ("cuDNN attention off (adapter)", restricted),
            ("PyTorch default backends", lambda device: contextlib.nullcontext()),
        ):
            adapter_module.reproducible_attention = setting
            outputs = []
            for _ in range(args.runs):
                result = adapter.generate_from_ids(
                    ids,
                    mask,
                    [video],
                    pruning,
                    max_new_tokens=24,
                    do_sample=False,
                    output_scores=True,
                    return_dict_in_generate=True,
                )
                outputs.append((result.sequences[0], torch.stack(result.raw.scores).float().cpu()))
            adapter_module.reproducible_attention = restricted
            same_tokens = all(torch.equal(tokens, outputs[0][0]) for tokens, _ in outputs)
            same_logits = all(torch.equal(logits, outputs[0][1]) for _, logits in outputs)
            spread = max(float((logits - outputs[0][1]).abs().max()) for _, logits in outputs)
            name = "unpruned" if not pruning.enabled else "DivPrune 15%"
            print(
                f"| {name} | {label} | tokens identical: {same_tokens} | logits identical: {same_logits} "
                f"| max logit difference {spread:.3g} |"
            )


if __name__ == "__main__":
    main()
