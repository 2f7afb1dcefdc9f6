"""A prefetching loader: worker threads prepare the next samples (prompt, video decoding) while the main thread runs
the model on the current one. Results come back in input order; at most ``lookahead`` samples are in flight."""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Generic, Iterable, Iterator, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class Prefetcher(Generic[In, Out]):
    """Iterate ``prepare(item)`` over ``items`` with ``workers`` threads, ``lookahead`` items ahead.

    ``waited_seconds`` accumulates how long the consumer was blocked on a result (decoding that the model's work
    did not hide). Use as a context manager so pending work is cancelled when the consumer stops early.
    """

    def __init__(
        self, prepare: Callable[[In], Out], items: Iterable[In], *, workers: int = 2, lookahead: int = 4
    ) -> None:
        if workers < 1 or lookahead < 1:
            raise ValueError(f"workers and lookahead must be >= 1, got {workers} and {lookahead}")
        self._prepare = prepare
        self._items = iter(items)
        self._lookahead = lookahead
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prefetch")
        self._pending: deque[Future] = deque()
        self.waited_seconds = 0.0

    def _fill(self) -> None:
        while len(self._pending) < self._lookahead:
            try:
                item = next(self._items)
            except StopIteration:
                return
            self._pending.append(self._pool.submit(self._prepare, item))

    def __iter__(self) -> Iterator[Out]:
        self._fill()
        while self._pending:
            future = self._pending.popleft()
            started = time.perf_counter()
            result = future.result()
            self.waited_seconds += time.perf_counter() - started
            self._fill()
            yield result

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> "Prefetcher[In, Out]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
