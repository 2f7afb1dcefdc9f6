"""Data-parallel coordination for ``torchrun --nproc-per-node G``: which rank this process is, barriers, and
running a step on rank 0 with its failure reported on every rank.

Ranks never exchange tensors (each evaluates its own shard with its own model copy), so coordination goes through a
gloo group with a long timeout whatever the GPU backend: ranks can finish hours apart. The rank and world size are
read from the variables torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); without them the run is a single
process.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Optional, TypeVar

from ..errors import DivPruneVideoError

logger = logging.getLogger(__name__)

COORDINATION_TIMEOUT = timedelta(hours=12)
T = TypeVar("T")


class RankFailedError(DivPruneVideoError, RuntimeError):
    """Raised on every other rank when a step run on rank 0 failed."""


@dataclass
class DistributedContext:
    """This process's place in a data-parallel run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _group: Any = None
    _owns_process_group: bool = False

    @classmethod
    def from_environment(cls) -> "DistributedContext":
        """Join the torchrun job this process belongs to (a single-process context when there is none)."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        import torch.distributed as dist

        context = cls(
            rank=int(os.environ["RANK"]), world_size=world_size, local_rank=int(os.environ.get("LOCAL_RANK", "0"))
        )
        if dist.is_initialized():
            context._group = dist.new_group(backend="gloo", timeout=COORDINATION_TIMEOUT)
        else:
            dist.init_process_group(backend="gloo", timeout=COORDINATION_TIMEOUT)
            context._owns_process_group = True
        logger.info("rank %d of %d (local rank %d)", context.rank, world_size, context.local_rank)
        return context

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier(group=self._group)

    def on_main(self, step: Callable[[], T]) -> Optional[T]:
        """Run ``step`` on rank 0 only; if it raises, every rank raises (no rank is left waiting)."""
        result: Optional[T] = None
        failure: Optional[BaseException] = None
        if self.is_main:
            try:
                result = step()
            except Exception as error:  # re-raised below, on every rank
                failure = error
        if self.world_size > 1:
            import torch.distributed as dist

            message = [None if failure is None else f"{type(failure).__name__}: {failure}"]
            dist.broadcast_object_list(message, src=0, group=self._group)
            if failure is None and message[0] is not None:
                raise RankFailedError(f"rank 0 failed: {message[0]}")
        if failure is not None:
            raise failure
        return result

    def close(self) -> None:
        if self._owns_process_group:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._owns_process_group = False


def is_torchrun_worker() -> bool:
    """Whether this process is one of several ranks started by torchrun (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def exit_worker(code: int) -> None:
    """End a torchrun worker now, with ``code``, once its results are on disk and its process group destroyed.

    Interpreter shutdown after a gloo process group has, rarely, aborted the process in C++ teardown ("terminate
    called without an active exception", seen in about one run of six on the 2-core CI machine) after every
    record was written; torchrun then reports the whole job failed. Ending the process here (streams and logs
    flushed first) skips that teardown. Results are unaffected: records are appended and flushed as they finish.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
