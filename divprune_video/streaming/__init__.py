"""Streaming video QA: a live feed answerable at any moment, with a fixed budget of diverse visual tokens.

* :class:`StreamingVideoQA` (:mod:`.qa`): frames in (``ingest``, or ``run(source)`` in the background), answers out
  (``ask``) from a bounded memory of visual tokens.
* The memories (:mod:`.memory`), usable without a model: :class:`DiverseTokenMemory` (DivPrune's Max-Min diverse
  subset, updated incrementally), :class:`UniformTokenMemory`, :class:`RandomTokenMemory`, :class:`FifoTokenMemory`.
* ``divprune-video stream`` (:mod:`.cli`) and ``divprune-video bench-stream`` (:mod:`.benchmark`).
"""

from .memory import (
    MEMORIES,
    DiverseTokenMemory,
    FifoTokenMemory,
    MemorySnapshot,
    MemoryUpdate,
    RandomTokenMemory,
    TokenMemory,
    UniformTokenMemory,
    token_memory,
)
from .qa import EmptyMemoryError, IngestRecord, StreamingVideoQA, StreamStats, timestamp_preamble

__all__ = [
    "MEMORIES",
    "DiverseTokenMemory",
    "EmptyMemoryError",
    "FifoTokenMemory",
    "IngestRecord",
    "MemorySnapshot",
    "MemoryUpdate",
    "RandomTokenMemory",
    "StreamStats",
    "StreamingVideoQA",
    "TokenMemory",
    "UniformTokenMemory",
    "timestamp_preamble",
    "token_memory",
]
