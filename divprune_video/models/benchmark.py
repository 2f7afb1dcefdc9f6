"""``divprune-video bench-model``: time to first token and peak memory of LLaVA-NeXT-Video-7B, unpruned and pruned.

The real 7B architecture (CLIP ViT-L/14-336 vision tower, 2 x 2 pooling, Vicuna-7B text model: hidden 4096, 32
layers) built from its configuration with random weights (nothing is downloaded; the compute does not depend on
the weight values), float16 on CUDA. For each frame count: the unpruned model, then each keep ratio at each prune
layer, all in one process, with the selector's share of the time to first token.

Time to first token = encode (preprocessing, vision tower, pooling, projector) + selection + prefill (the LLM's
first forward pass, producing the first token's logits). Extra peak memory = the peak allocated during
``generate(max_new_tokens=1)`` above what was allocated before it (weights and visual tokens).

``--tiny`` runs the same on the tiny test model on the CPU in seconds (a smoke test, not a measurement).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import statistics
import sys
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

logger = logging.getLogger(__name__)


def llava_next_video_7b_config() -> Any:
    """The configuration of ``llava-hf/LLaVA-NeXT-Video-7B-hf`` (values from its config.json)."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextVideoConfig

    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768,
                              vocab_size=32000)
    text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                       rms_norm_eps=1e-5, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                       rope_scaling={"rope_type": "linear", "factor": 2.0})
    return LlavaNextVideoConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(), video_token_index=32000,
        image_token_index=32001, vision_feature_layer=-2, vision_feature_select_strategy="default",
        spatial_pool_mode="average", spatial_pool_stride=2, spatial_pool_out_channels=1024,
        projector_hidden_act="gelu", tie_word_embeddings=False,
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench-model",
        help="time to first token and peak memory of LLaVA-NeXT-Video-7B, unpruned vs pruned (random weights)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", default=None, help="comma-separated frame counts (default 32,64; tiny: 2,4)")
    parser.add_argument("--keep", default="0.5,0.25,0.15", help="comma-separated keep ratios (default 0.5,0.25,0.15)")
    parser.add_argument("--prune-layers", default="0,2", help="comma-separated prune layers (default 0,2)")
    parser.add_argument("--method", default="divprune", help="selection method (default divprune)")
    parser.add_argument("--text-tokens", type=int, default=80, help="text tokens around the video (default 80)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row, median (default 3; tiny 1)")
    parser.add_argument("--tiny", action="store_true", help="the tiny test model on the CPU (smoke test)")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--attn", default="sdpa", help="attention implementation (default sdpa)")
    parser.set_defaults(func=run)


@dataclass
class Row:
    """One measured configuration (times in milliseconds, memory in MiB; None where not measured)."""

    frames: int
    visual_tokens: int
    prune_layer: Optional[int]
    keep_ratio: float
    kept: int
    encode_ms: float
    select_ms: float
    prefill_ms: float
    peak_mib: Optional[float]

    @property
    def ttft_ms(self) -> float:
        return self.encode_ms + self.select_ms + self.prefill_ms


def run(args: argparse.Namespace) -> int:
    from .base import PruningConfig

    device = torch.device(args.device or ("cpu" if args.tiny else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        print("bench-model needs a CUDA device (or --tiny for a CPU smoke test)", file=sys.stderr)
        return 2
    frame_counts = _ints(args.frames or ("2,4" if args.tiny else "32,64"), "--frames")
    keep_ratios = [float(value) for value in args.keep.split(",")]
    prune_layers = _ints(args.prune_layers, "--prune-layers")
    repeats = args.repeats or (1 if args.tiny else 3)
    for keep_ratio, layer in [(ratio, layer) for ratio in keep_ratios for layer in prune_layers]:
        PruningConfig(keep_ratio=keep_ratio, method=args.method, prune_layer=layer)  # validate before building
    adapter = _build_adapter(args.tiny, device, args.attn)
    print(_header(args, device, adapter))
    rows = []
    for frames in frame_counts:
        video, encode_ms = _encode(adapter, frames, repeats)
        ids, mask = _prompt(video.num_tokens, args.text_tokens, adapter.video_token_id)
        configs = [PruningConfig(method="none")] + [
            PruningConfig(keep_ratio=ratio, method=args.method, prune_layer=layer)
            for layer in prune_layers for ratio in keep_ratios
        ]
        for pruning in configs:
            select_ms, prefill_ms, peak = _measure(adapter, video, ids, mask, pruning, repeats)
            rows.append(Row(frames, video.num_tokens, pruning.prune_layer if pruning.enabled else None,
                            pruning.keep_ratio if pruning.enabled else 1.0, pruning.num_keep(video.num_tokens),
                            encode_ms, select_ms, prefill_ms, peak))
            logger.info("measured %s", rows[-1])
    print(format_table(rows))
    return 0


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        raise SystemExit(f"{option} must be comma-separated integers; got {text!r}") from None


def _build_adapter(tiny: bool, device: torch.device, attention: str) -> Any:
    from transformers import LlavaNextVideoForConditionalGeneration

    from .llava_next_video import LlavaNextVideoAdapter

    if tiny:
        from ..testing import tiny_llava_next_video_config

        config, dtype = tiny_llava_next_video_config(), torch.float32
    else:
        config, dtype = llava_next_video_7b_config(), torch.float16
    with torch.device(device):
        model = LlavaNextVideoForConditionalGeneration._from_config(config, dtype=dtype,
                                                                    attn_implementation=attention)
    return LlavaNextVideoAdapter(model.to(device))


def _header(args: argparse.Namespace, device: torch.device, adapter: Any) -> str:
    import transformers

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    model = "tiny test model" if args.tiny else "LLaVA-NeXT-Video-7B architecture"
    command = "divprune-video " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    return (f"# bench-model: {model}, random weights, {adapter.model.dtype}, {args.attn} attention, {name}\n"
            f"# torch {torch.__version__}, transformers {transformers.__version__}; "
            f"{args.text_tokens} text tokens; median of {args.repeats or (1 if args.tiny else 3)} runs\n"
            f"# command: {command}\n")


def _encode(adapter: Any, num_frames: int, repeats: int) -> tuple[Any, float]:
    size = int(adapter.config.vision_config.image_size)
    frames = np.random.default_rng(num_frames).integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)
    adapter.encode_frames(frames)  # warm-up
    encodings = [adapter.encode_frames(frames) for _ in range(repeats)]
    return encodings[-1], 1e3 * statistics.median(video.seconds for video in encodings)


def _prompt(num_visual: int, num_text: int, video_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, L) ids: half the text tokens, the video tokens, the other half (ids drawn away from special ones)."""
    generator = torch.Generator().manual_seed(0)
    text = torch.randint(100, 300, (num_text,), generator=generator)
    ids = torch.cat([text[: num_text // 2], torch.full((num_visual,), video_token_id), text[num_text // 2:]])
    return ids.unsqueeze(0), torch.ones(1, ids.numel(), dtype=torch.long)


def _measure(adapter: Any, video: Any, ids: torch.Tensor, mask: torch.Tensor, pruning: Any,
             repeats: int) -> tuple[float, float, Optional[float]]:
    cuda = adapter.device.type == "cuda"
    adapter.generate_from_ids(ids, mask, [video], pruning, max_new_tokens=1, do_sample=False)  # warm-up
    selects, prefills, peaks = [], [], []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize(adapter.device)
            torch.cuda.reset_peak_memory_stats(adapter.device)
            baseline = torch.cuda.memory_allocated(adapter.device)
        result = adapter.generate_from_ids(ids, mask, [video], pruning, max_new_tokens=1, do_sample=False)
        selects.append(1e3 * result.timings["select"])
        prefills.append(1e3 * result.timings["prefill"])
        if cuda:
            peaks.append((torch.cuda.max_memory_allocated(adapter.device) - baseline) / 2**20)
    return statistics.median(selects), statistics.median(prefills), (max(peaks) if peaks else None)


def format_table(rows: list[Row]) -> str:
    """A markdown table; ratios are against the unpruned row of the same frame count ("select + prefill": the LLM
    side of the time to first token, the vision encoding being the same with and without pruning)."""
    header = ("| frames | visual tokens | prune layer | keep | kept | encode ms | select ms | prefill ms | TTFT ms "
              "| TTFT vs unpruned | select + prefill vs unpruned | select share of TTFT | extra peak MiB "
              "| peak vs unpruned |")
    lines = [header, "|" + "---:|" * 14]
    baselines = {row.frames: row for row in rows if row.prune_layer is None}
    for row in rows:
        base = baselines.get(row.frames)
        ratio = f"{row.ttft_ms / base.ttft_ms:.2f}x" if base else "-"
        llm_ratio = f"{(row.select_ms + row.prefill_ms) / base.prefill_ms:.2f}x" if base else "-"
        peak = "-" if row.peak_mib is None else f"{row.peak_mib:,.0f}"
        peak_ratio = (f"{row.peak_mib / base.peak_mib:.2f}x"
                      if base and row.peak_mib is not None and base.peak_mib else "-")
        layer = "-" if row.prune_layer is None else str(row.prune_layer)
        lines.append(
            f"| {row.frames} | {row.visual_tokens:,} | {layer} | {row.keep_ratio:.0%} | {row.kept:,} "
            f"| {row.encode_ms:.1f} | {row.select_ms:.1f} | {row.prefill_ms:.1f} | {row.ttft_ms:.1f} | {ratio} "
            f"| {llm_ratio} | {row.select_ms / row.ttft_ms:.1%} | {peak} | {peak_ratio} |"
        )
    return "\n".join(lines)
