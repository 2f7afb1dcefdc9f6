"""One pattern for every extension point: a :class:`Registry` maps names to what they name.

Selection methods, model families, benchmarks, streaming memories and video backends each have one registry; adding
one of them is a module that registers itself, and everything that lists names (command-line choices, config
checks, the docs) asks its registry::

    from divprune_video.selection import SELECTORS, TokenSelector

    @SELECTORS.register("every-other")
    class EveryOther(TokenSelector):
        def select(self, tokens, num_keep, **context):
            return torch.arange(0, 2 * num_keep, 2, device=tokens.device)[:num_keep]

Built-in entries may live in modules imported on first use (``discover``), so listing names stays cheap to import.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, Optional, TypeVar, overload

T = TypeVar("T")


class Registry(Generic[T]):
    """Names -> entries of one kind.

    Args:
        kind: what an entry is, for messages (``"selection method"``, ``"benchmark"``, ...).
        discover: called once before the first lookup; imports the modules that register the built-in entries.
    """

    def __init__(self, kind: str, discover: Optional[Callable[[], None]] = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._discover = discover
        self._discovered = discover is None

    def _ensure(self) -> None:
        if not self._discovered:
            self._discovered = True
            assert self._discover is not None
            self._discover()

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T) -> T: ...

    def register(self, name: str, entry: Optional[T] = None):  # type: ignore[no-untyped-def]
        """``registry.register(name, entry)``, or ``@registry.register(name)`` as a decorator; returns the entry.
        Registering a name again replaces its entry (a user's own version of a built-in)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty str name; got {name!r}")

        def add(value: T) -> T:
            self._entries[name] = value
            return value

        return add if entry is None else add(entry)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests registering a toy entry clean up with this)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry registered as ``name``; ValueError naming the registered ones otherwise."""
        self._ensure()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """The registered names, sorted."""
        self._ensure()
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, sorted by name."""
        self._ensure()
        return sorted(self._entries.items())

    def __contains__(self, name: object) -> bool:
        self._ensure()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
