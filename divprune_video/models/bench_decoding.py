"""The decoding half of ``bench-model``: milliseconds per new token and the latency of a whole answer for each
decoding path, how often the paths' greedy tokens agree, and the time to first token of a second question asked on
a shared video prefill.

Paths, all on the same model and pruned prompt in one process:

* ``generate()``: transformers' ``generate()`` on its dynamic cache, through this project's pruning hooks;
* ``static``: this project's preallocated cache (:mod:`.decoding`), single-token steps replayed as CUDA graphs;
* ``transformers static + compile``: transformers' own fast path, the family's text decoder as a causal LM (same
  configuration, random weights) running ``generate(cache_implementation="static")``, which compiles its decoding
  step, on a prompt as long as the pruned one (a reference for the speed of a compiled decode, measured with
  ``--compiled``; its first calls compile).

Per-token time = the time after the first token (the prefill) divided by the remaining tokens; the end-of-sequence
token is disabled so that every answer has ``--decode-tokens`` tokens. Agreement: of several prompts (different
text around the same video), how many give the ``generate()`` path's greedy tokens exactly; where a path differs,
the ``generate()`` path's margin between its two best logits at the first differing step is reported (random
weights give near-flat logits, so float16 rounding can swap near-ties).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any, Optional

import torch

from ..harness import markdown_table
from .runtime import synchronize

#: Prompts whose greedy tokens are compared between paths.
AGREEMENT_PROMPTS = 8


@dataclass
class DecodeRow:
    """One decoding path on one configuration (milliseconds)."""

    frames: int
    setting: str
    path: str
    ms_per_token: Optional[float]
    answer_ms: Optional[float]
    agreement: str = "-"
    note: str = ""


@dataclass
class SharedRow:
    """A second question on a shared video prefill against the first question's whole-prompt time to first token."""

    frames: int
    setting: str
    first_ttft_ms: float
    second_ttft_ms: float
    context_mib: float
    agreement: str


def _no_eos(tokens: int) -> dict[str, Any]:
    return {"max_new_tokens": tokens, "do_sample": False, "eos_token_id": None}


def prompts_after_video(ids: torch.Tensor, count: int, tail: int) -> list[torch.Tensor]:
    """``count`` (1, L) prompts: ``ids`` (the first) and copies with their last ``tail`` ids (the text after the
    video) redrawn."""
    prompts = [ids]
    generator = torch.Generator().manual_seed(1)
    for _ in range(count - 1):
        other = ids.clone()
        other[0, -tail:] = torch.randint(100, 300, (tail,), generator=generator)
        prompts.append(other)
    return prompts


def measure_path(
    adapter: Any, video: Any, ids: torch.Tensor, mask: torch.Tensor, pruning: Any, tokens: int, repeats: int, mode: str
) -> tuple[float, float, list[torch.Tensor]]:
    """(ms per new token, ms of the whole answer after encoding, the greedy tokens) of ``adapter.decoding = mode``;
    the first call warms up (and captures the graphs)."""
    adapter.decoding = mode
    adapter.generate_from_ids(ids, mask, [video], pruning, **_no_eos(tokens))
    per_token, answer, result = [], [], None
    for _ in range(repeats):
        result = adapter.generate_from_ids(ids, mask, [video], pruning, **_no_eos(tokens))
        steps = max(1, result.sequences[0].numel() - 1)
        per_token.append(1e3 * result.timings["generate"] / steps)
        answer.append(1e3 * sum(result.timings.values()))
    return statistics.median(per_token), statistics.median(answer), list(result.sequences)


def agreement(
    adapter: Any, video: Any, prompts: list[torch.Tensor], pruning: Any, tokens: int, mode: str
) -> tuple[str, str]:
    """("k/n", note): of the prompts, how many give the ``generate()`` path's greedy tokens under ``mode``; the note
    gives, for each that differs, the first differing step and the reference's top-2 logit margin there."""
    same, notes = 0, []
    for ids in prompts:
        mask = torch.ones_like(ids)
        adapter.decoding = "generate"
        reference = adapter.generate_from_ids(
            ids, mask, [video], pruning, **_no_eos(tokens), output_logits=True, return_dict_in_generate=True
        )
        adapter.decoding = mode
        ours = adapter.generate_from_ids(ids, mask, [video], pruning, **_no_eos(tokens))
        expected, got = reference.sequences[0], ours.sequences[0]
        if torch.equal(expected, got):
            same += 1
            continue
        step = int((expected[: got.numel()] != got[: expected.numel()]).nonzero()[0])
        top = reference.raw.logits[step][0].float().topk(2).values
        notes.append(f"step {step}: margin {float(top[0] - top[1]):.3g}")
    return f"{same}/{len(prompts)}", "; ".join(notes)


def measure_compiled(adapter: Any, length: int, tokens: int, repeats: int) -> tuple[float, float]:
    """(ms per new token, seconds of the first two calls, which compile) of transformers' own fast path: the
    family's text decoder as a causal LM (its configuration, random weights, the adapter's dtype), ``generate()``
    with ``cache_implementation="static"`` (transformers compiles the decoding step itself) on a prompt of
    ``length`` tokens (the pruned prompt's)."""
    import transformers

    device, dtype = adapter.device, adapter.model.dtype
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(adapter.config.get_text_config(), dtype=dtype).eval()
    ids = torch.randint(100, 300, (1, length), generator=torch.Generator().manual_seed(2)).to(device)

    def timed(new_tokens: int) -> float:
        synchronize(device)
        start = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), cache_implementation="static", **_no_eos(new_tokens)
            )
        synchronize(device)
        return time.perf_counter() - start

    try:
        start = time.perf_counter()
        timed(tokens)
        timed(tokens)
        compile_seconds = time.perf_counter() - start
        one = statistics.median(timed(1) for _ in range(repeats))
        many = statistics.median(timed(tokens) for _ in range(repeats))
    finally:
        model = None  # release the weights before the next rows
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return 1e3 * (many - one) / max(1, tokens - 1), compile_seconds


def measure_shared(
    adapter: Any, video: Any, prompts: list[torch.Tensor], pruning: Any, repeats: int, tokens: int
) -> tuple[float, float, str]:
    """(ms to the first token of a question on a shared prefill, MiB the context holds, agreement with the
    whole-prompt ``generate()`` path over ``prompts``)."""
    from .video_context import answer_from_context, prefill_context

    with torch.inference_mode():
        context = prefill_context(adapter, video, pruning, prompt_ids=prompts[0])
        answer_from_context(adapter, context, None, _no_eos(1), prompt_ids=[prompts[1][0]])  # warm-up
        ttft = statistics.median(
            1e3 * answer_from_context(adapter, context, None, _no_eos(1), prompt_ids=[prompts[1][0]]).timings["prefill"]
            for _ in range(repeats)
        )
        same = 0
        for ids in prompts:
            shared = answer_from_context(adapter, context, None, _no_eos(tokens), prompt_ids=[ids[0]])
            adapter.decoding = "generate"
            whole = adapter.generate_from_ids(ids, torch.ones_like(ids), [video], pruning, **_no_eos(tokens))
            same += int(torch.equal(shared.sequences[0], whole.sequences[0]))
    return ttft, context.nbytes / 2**20, f"{same}/{len(prompts)}"


def format_decoding(rows: list[DecodeRow]) -> str:
    """The decoding table (one row per configuration and path)."""
    header = [
        "frames",
        "setting",
        "decoding",
        "ms per new token",
        "answer ms (TTFT after encode + tokens)",
        "greedy tokens = generate()",
        "note",
    ]
    cells = [
        [
            row.frames,
            row.setting,
            row.path,
            "-" if row.ms_per_token is None else f"{row.ms_per_token:.2f}",
            "-" if row.answer_ms is None else f"{row.answer_ms:.1f}",
            row.agreement,
            row.note,
        ]
        for row in rows
    ]
    return markdown_table(header, cells, align=["right", "left", "left", "right", "right", "right", "left"])


def format_shared(rows: list[SharedRow]) -> str:
    """The shared-prefill table (a later question's TTFT against the first's)."""
    header = [
        "frames",
        "setting",
        "1st question TTFT ms (whole prompt)",
        "later question TTFT ms (shared prefill)",
        "ratio",
        "context MiB",
        "answers = whole prompt",
    ]
    cells = [
        [
            row.frames,
            row.setting,
            f"{row.first_ttft_ms:.1f}",
            f"{row.second_ttft_ms:.1f}",
            f"{row.second_ttft_ms / row.first_ttft_ms:.2f}x",
            f"{row.context_mib:,.1f}",
            row.agreement,
        ]
        for row in rows
    ]
    return markdown_table(header, cells, align=["right", "left", "right", "right", "right", "right", "right"])
