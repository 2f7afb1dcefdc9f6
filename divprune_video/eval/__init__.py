"""Benchmark runner: MVBench, Video-MME and MLVU, read from their released layouts and scored exactly as lmms-eval
scores them, with resume, torchrun sharding and a prefetching loader.

One module per benchmark (:mod:`.mvbench`, :mod:`.videomme`, :mod:`.mlvu`: reader, prompt, parsing, metric side by
side); :mod:`.mcq` holds the two answer extractors they share; :mod:`.runner` runs a :class:`RunConfig`;
:mod:`.results` owns the files; :mod:`.cli` is ``divprune-video bench``. See docs/benchmarks.md.
"""

from __future__ import annotations

from .answerers import Answer, Answerer, PipelineAnswerer, PreparedSample, ReplayAnswerer, make_answerer
from .base import (
    AnnotationError,
    Benchmark,
    BenchmarkError,
    BenchmarkOptions,
    CheckReport,
    ConfigurationError,
    MissingVideoError,
    Sample,
    SampleError,
    available_benchmarks,
    get_benchmark,
)
from .config import RunConfig, Variant, config_from_mapping, expand_variants, read_config_file
from .mcq import extract_mcq_answer, mvbench_extract, mvbench_match, mvbench_normalize
from .reasoning import strip_reasoning_blocks
from .results import ResultsError, load_summary
from .runner import RunResult, run_benchmark

__all__ = [
    "AnnotationError",
    "Answer",
    "Answerer",
    "Benchmark",
    "BenchmarkError",
    "BenchmarkOptions",
    "CheckReport",
    "ConfigurationError",
    "MissingVideoError",
    "PipelineAnswerer",
    "PreparedSample",
    "ReplayAnswerer",
    "ResultsError",
    "RunConfig",
    "RunResult",
    "Sample",
    "SampleError",
    "Variant",
    "available_benchmarks",
    "config_from_mapping",
    "expand_variants",
    "extract_mcq_answer",
    "get_benchmark",
    "load_summary",
    "make_answerer",
    "mvbench_extract",
    "mvbench_match",
    "mvbench_normalize",
    "read_config_file",
    "run_benchmark",
    "strip_reasoning_blocks",
]
