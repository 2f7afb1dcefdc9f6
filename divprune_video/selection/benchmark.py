"""``divprune-video bench-select``: our selector against the published-style greedy, side by side in one process.

The published-style greedy is re-implemented here for comparison only: the full (N, N) cosine-distance matrix
in the tokens' dtype, the first pick from each column's second-smallest entry, and at step i a minimum over all i
picked rows (O(k^2 N) work). Both run on the same random tokens; the table reports median times, peak memory,
the speed-up, and whether the picks agree (with where and how closely they diverge when they do not).
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import torch

from ..harness import add_common_options, command_line, device_name, write_json
from .devices import device_index, device_properties
from .distance import compute_dtype
from .divprune_selector import divprune, plan_selection
from .graphs import clear_graphs, graph_eligible
from .metrics import min_pairwise_distance

DEFAULT_SIZES = (576, 2304, 4608, 9216, 18432, 36864, 73728, 147456, 294912, 589824)
#: Above this N the process is limited to ``memory_limit_gib`` of GPU memory by default, as on an 80 GB GPU.
MEMORY_LIMIT_FROM = 73728
#: The defaults without a CUDA device: sizes, token dimension and dtype a CPU measures in seconds.
CPU_SIZES, CPU_DIM, CPU_DTYPE = (576, 1152, 2304), 1024, "float32"


def published_style_greedy(tokens: torch.Tensor, num_keep: int) -> torch.Tensor:
    """The greedy as the DivPrune code writes it (comparison only). tokens: (N, D) -> (num_keep,) int64."""
    normalized = tokens / tokens.norm(dim=1, keepdim=True)
    dist = 1.0 - normalized @ normalized.t()
    picks = torch.empty(num_keep, dtype=torch.long, device=tokens.device)
    for step in range(num_keep):
        if step == 0:
            scores = torch.topk(dist, 2, dim=0, largest=False).values[1, :]
        else:
            scores = dist.index_select(0, picks[:step]).min(dim=0).values
        picks[step] = torch.argmax(scores)
    return picks


@dataclass
class Divergence:
    """Where two pick sequences first differ, and how close that decision was (float64 scores)."""

    step: int
    ours: int
    other: int
    score_gap: float
    min_distance_ours: float
    min_distance_other: float


@dataclass
class BenchRow:
    num_tokens: int
    num_keep: int
    path: str
    backend: str
    ours_ms: float
    ours_mib: float
    eager_ms: Optional[float] = None  # ours without replaying a CUDA graph (rows a graph covers)
    published_ms: Optional[float] = None
    published_mib: Optional[float] = None
    published_status: str = "ok"
    memory_limit_gib: Optional[float] = None
    checked_against: Optional[str] = None
    same_as_torch: Optional[bool] = None
    same_as_published_fp32: Optional[bool] = None
    divergences: dict = field(default_factory=dict)

    @property
    def speedup(self) -> Optional[float]:
        return None if self.published_ms is None else self.published_ms / self.ours_ms


def measure(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> tuple[float, float, torch.Tensor]:
    """Median milliseconds over ``repeats`` runs (after one warm-up) and peak extra MiB; returns the last result."""
    result = fn()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            result = fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            result = fn()
            times.append(1e3 * (time.perf_counter() - begin))
    peak = (torch.cuda.max_memory_allocated(device) - base) / 2**20 if device.type == "cuda" else float("nan")
    return statistics.median(times), peak, result


def _limit_memory(device: torch.device, gib: Optional[float]) -> None:
    """Limit this process to ``gib`` GiB of the CUDA device's memory (None: the whole device)."""
    if device.type != "cuda":
        return
    torch.cuda.empty_cache()
    total = device_properties(device).total_memory
    fraction = 1.0 if gib is None else min(1.0, gib * 2**30 / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device_index(device))


def _score(tokens: torch.Tensor, prefix: torch.Tensor, candidate: int) -> float:
    """float64 cosine score of ``candidate`` given the picks ``prefix`` (empty: its nearest other token)."""
    x = tokens.double()
    x = x / x.norm(dim=1, keepdim=True)
    if len(prefix) == 0:
        dist = 1.0 - x @ x[candidate]
        dist[candidate] = float("inf")
    else:
        dist = 1.0 - x[prefix] @ x[candidate]
    return float(dist.min())


def divergence(tokens: torch.Tensor, ours: torch.Tensor, other: torch.Tensor) -> Optional[Divergence]:
    """None when the sequences agree; else the first differing step, both candidates' float64 score gap there, and
    each kept set's minimum pairwise cosine distance."""
    differ = (ours != other).nonzero()
    if len(differ) == 0:
        return None
    step = int(differ[0])
    prefix = ours[:step]
    gap = abs(_score(tokens, prefix, int(ours[step])) - _score(tokens, prefix, int(other[step])))
    return Divergence(
        step=step,
        ours=int(ours[step]),
        other=int(other[step]),
        score_gap=gap,
        min_distance_ours=min_pairwise_distance(tokens, ours),
        min_distance_other=min_pairwise_distance(tokens, other),
    )


def run_benchmark(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    dim: int = 4096,
    dtype: torch.dtype = torch.float16,
    keep_ratio: float = 0.15,
    device: Optional[str] = None,
    repeats: int = 3,
    published_max: int = 36864,
    check_max: int = 589824,
    memory_limit_gib: Optional[float] = 80.0,
    memory_limit_from: int = MEMORY_LIMIT_FROM,
    seed: int = 0,
    progress: Optional[Callable[[str], None]] = None,
) -> list[BenchRow]:
    """Time ours and the published-style greedy at each N on random (N, dim) tokens and compare their picks.

    ``published_max``: largest N at which the published-style greedy runs (it is O(k^2 N) and O(N^2) memory).
    ``check_max``: largest N at which our picks are checked against the pure-PyTorch path: the full path (the
    definition) where its matrix fits the whole device, else the pure-PyTorch chunked path.
    ``memory_limit_gib``: above ``memory_limit_from`` tokens, ours runs with the process limited to this much GPU
    memory (``torch.cuda.set_per_process_memory_fraction``), as on a GPU of that size; None: no limit.
    """
    target = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = []
    for num_tokens in sizes:
        generator = torch.Generator().manual_seed(seed + num_tokens)
        tokens = torch.randn(num_tokens, dim, generator=generator).to(device=target, dtype=dtype)
        num_keep = max(1, round(keep_ratio * num_tokens))
        limited = target.type == "cuda" and memory_limit_gib is not None and num_tokens > memory_limit_from
        _limit_memory(target, memory_limit_gib if limited else None)
        plan = plan_selection(tokens)
        repeat_here = repeats if num_tokens <= 18432 else 1
        ours_ms, ours_mib, ours = measure(
            lambda tokens=tokens, num_keep=num_keep: divprune(tokens, num_keep=num_keep), target, repeat_here
        )
        row = BenchRow(num_tokens, num_keep, plan.path, plan.backend, ours_ms, ours_mib)
        if graph_eligible(tokens, "cosine", plan.path, plan.backend):  # ours replayed a graph: time it without too
            row.eager_ms, _, eager = measure(
                lambda tokens=tokens, num_keep=num_keep: divprune(tokens, num_keep=num_keep, cuda_graph=False),
                target,
                repeat_here,
            )
            if not torch.equal(eager, ours):
                row.divergences["eager"] = asdict(divergence(tokens, ours, eager))
            clear_graphs()
        row.memory_limit_gib = memory_limit_gib if limited else None
        _limit_memory(target, None)  # the checks below may use the whole device
        if num_tokens <= check_max and plan.backend != "torch":
            reference_path = "full" if plan_selection(tokens, path="auto").path == "full" else "chunked"
            reference = divprune(tokens, num_keep=num_keep, backend="torch", path=reference_path)
            row.checked_against = f"{reference_path}/torch"
            row.same_as_torch = bool(torch.equal(ours, reference))
            if not row.same_as_torch:
                row.divergences["torch"] = asdict(divergence(tokens, ours, reference))
        if num_tokens <= published_max:
            try:
                row.published_ms, row.published_mib, _ = measure(
                    lambda tokens=tokens, num_keep=num_keep: published_style_greedy(tokens, num_keep),
                    target,
                    repeat_here,
                )
                published = published_style_greedy(tokens.to(compute_dtype(dtype)), num_keep)
                row.same_as_published_fp32 = bool(torch.equal(ours, published))
                if not row.same_as_published_fp32:
                    row.divergences["published_fp32"] = asdict(divergence(tokens, ours, published))
            except torch.OutOfMemoryError:
                row.published_status = "out of memory"
        else:
            row.published_status = "skipped"
        rows.append(row)
        if progress:
            progress(format_row(row))
        tokens = None  # free the tokens before the next size (not del: closures above read the name)
        if target.type == "cuda":
            torch.cuda.empty_cache()
    return rows


HEADER = (
    "| N tokens | kept | published ms | published MiB | ours ms | ours ms, no CUDA graph | ours MiB | "
    "GPU memory limit | speed-up | path | "
    "same as torch path | same as published (fp32) |"
)


def _fmt(value: Optional[float], spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def format_row(row: BenchRow) -> str:
    published_ms = _fmt(row.published_ms, ",.2f", row.published_status)

    def agree(flag: Optional[bool]) -> str:
        return "-" if flag is None else "yes" if flag else "no"

    return (
        f"| {row.num_tokens:,} | {row.num_keep:,} | {published_ms} | {_fmt(row.published_mib, ',.0f')} | "
        f"{row.ours_ms:,.3f} | {_fmt(row.eager_ms, ',.3f')} | {row.ours_mib:,.0f} | "
        f"{_fmt(row.memory_limit_gib, '.0f', 'none')}"
        f"{'' if row.memory_limit_gib is None else ' GiB'} | {_fmt(row.speedup, ',.1f')}x | "
        f"{row.path}/{row.backend} | {agree(row.same_as_torch)}"
        f"{'' if row.checked_against is None else f' ({row.checked_against})'} | "
        f"{agree(row.same_as_published_fp32)} |"
    )


def format_table(rows: Sequence[BenchRow]) -> str:
    lines = [HEADER, "|" + "---:|" * 12]
    lines += [format_row(row) for row in rows]
    notes = []
    for row in rows:
        for against, info in row.divergences.items():
            notes.append(
                f"- N={row.num_tokens:,} vs {against}: first differs at step {info['step']} "
                f"(ours {info['ours']}, other {info['other']}), float64 score gap {info['score_gap']:.2e}; "
                f"kept-set min distance {info['min_distance_ours']:.6f} vs {info['min_distance_other']:.6f}"
            )
    return "\n".join(lines + ([""] + notes if notes else []))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench-select",
        help="GPU: time the selector against the published-style greedy and check both pick the same tokens "
        "(without CUDA: small sizes on the CPU)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default=None,
        help=f"comma-separated token counts N (default: 576 ... 589824; on the CPU {','.join(map(str, CPU_SIZES))})",
    )
    parser.add_argument("--dim", type=int, default=None, help=f"token dimension D (default 4096; CPU {CPU_DIM})")
    parser.add_argument(
        "--dtype",
        default=None,
        choices=["float16", "bfloat16", "float32"],
        help=f"token dtype (default float16; CPU {CPU_DTYPE})",
    )
    parser.add_argument("--keep-ratio", type=float, default=0.15)
    add_common_options(parser, repeats=3, repeats_help="timed runs per size up to N=18,432 (median)")
    parser.add_argument(
        "--published-max", type=int, default=36864, help="largest N for the published-style greedy (default 36864)"
    )
    parser.add_argument(
        "--check-max",
        type=int,
        default=589824,
        help="largest N at which picks are checked against the pure-PyTorch path (the full path where its matrix "
        "fits the device, else the chunked path)",
    )
    parser.add_argument(
        "--memory-limit-gib",
        type=float,
        default=80.0,
        help="GPU memory the process may use for sizes above --memory-limit-from (default 80: an 80 GB GPU)",
    )
    parser.add_argument(
        "--memory-limit-from",
        type=int,
        default=MEMORY_LIMIT_FROM,
        help=f"apply --memory-limit-gib above this N (default {MEMORY_LIMIT_FROM:,})",
    )
    parser.add_argument("--no-memory-limit", action="store_true", help="use the whole GPU at every size")
    parser.set_defaults(func=_main)


def _step_kernel(device: str) -> str:
    """Which kernel runs the full path's step loop on long rows of CUDA tokens, and why."""
    from . import _cuda

    reason = _cuda.unavailable_reason(torch.device(device))
    return "CUDA C (rounds.cu, NVRTC)" if reason is None else f"Triton ({reason})"


def _main(args: argparse.Namespace) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    _cpu_sized_defaults(args, on_cpu=not device.startswith("cuda"))
    sizes = [int(size) for size in args.sizes.split(",") if size]
    print(
        f"# bench-select on {device_name(device)}, torch {torch.__version__}, D={args.dim}, {args.dtype}, keep "
        f"{args.keep_ratio}\n# command: {command_line()}"
    )
    if device.startswith("cuda"):
        print(f"# the full path's step loop on rows over 2,048 tokens: {_step_kernel(device)}")
    print(HEADER, flush=True)
    rows = run_benchmark(
        sizes,
        dim=args.dim,
        dtype=getattr(torch, args.dtype),
        keep_ratio=args.keep_ratio,
        device=device,
        repeats=args.repeats,
        published_max=args.published_max,
        check_max=args.check_max,
        memory_limit_gib=None if args.no_memory_limit else args.memory_limit_gib,
        memory_limit_from=args.memory_limit_from,
        progress=lambda line: print(line, flush=True),
    )
    print()
    print(format_table(rows))
    write_json(args.json_path, [asdict(row) | {"speedup": row.speedup} for row in rows])
    return 0


def _cpu_sized_defaults(args: argparse.Namespace, *, on_cpu: bool) -> None:
    """Fill the options left out: the GPU sizes (up to N = 589,824 in float16), or on the CPU small ones."""
    args.sizes = args.sizes or ",".join(map(str, CPU_SIZES if on_cpu else DEFAULT_SIZES))
    args.dim = args.dim or (CPU_DIM if on_cpu else 4096)
    args.dtype = args.dtype or (CPU_DTYPE if on_cpu else "float16")
