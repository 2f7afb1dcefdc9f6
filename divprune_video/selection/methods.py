"""Token selection methods behind one small interface, so evaluations compare them apples to apples.

A method is a class with ``select(tokens, num_keep, **context) -> LongTensor``; registering it in :data:`SELECTORS`
makes it available by name everywhere (pipeline, benchmark runner, CLI)::

    @SELECTORS.register("every-other")
    class EveryOther(TokenSelector):
        def select(self, tokens, num_keep, **context):
            return torch.arange(0, 2 * num_keep, 2, device=tokens.device)[:num_keep]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, TypeVar

import torch

from ..registry import Registry
from ._validate import Metric
from .divprune_selector import Backend, SelectionPath, divprune

SelectorType = TypeVar("SelectorType", bound=type["TokenSelector"])


@dataclass(frozen=True)
class SelectionContext:
    """What a selection method may read besides the tokens; the model adapter fills it for each sample.

    Attributes:
        question: the question asked (None when the selection must not depend on it: a shared video prefill).
        seed: the sample's seed (random methods draw from :meth:`generator`).
        frames: (N,) int64 frame (group) of each token, or None.
        attention: (N,) float scores of the attention the last prompt token pays each token (methods that declare
            ``requires = ("attention",)``), or None.
    """

    question: Optional[str] = None
    seed: int = 0
    frames: Optional[torch.Tensor] = None
    attention: Optional[torch.Tensor] = None

    def generator(self) -> torch.Generator:
        """A CPU generator seeded with :attr:`seed`."""
        return torch.Generator().manual_seed(self.seed)

    def as_kwargs(self) -> dict[str, Any]:
        """The keyword arguments :meth:`TokenSelector.select` receives: the fields and a seeded ``generator``."""
        return {
            "question": self.question,
            "seed": self.seed,
            "frames": self.frames,
            "attention": self.attention,
            "generator": self.generator(),
        }


class TokenSelector:
    """Base class of token selection methods.

    ``select`` gets tokens (N, D) and a count k (1..N) and returns k distinct int64 indices on the tokens'
    device. ``context`` carries the :class:`SelectionContext` of the sample as keyword arguments (``question``,
    ``seed``, ``frames``, ``attention`` and a seeded ``generator``); methods ignore what they don't use.
    """

    name: str = ""
    #: Extra inputs this method needs in ``context`` (the model adapter provides them).
    requires: tuple[str, ...] = ()

    def select(self, tokens: torch.Tensor, num_keep: int, **context: Any) -> torch.Tensor:
        raise NotImplementedError


#: The selection methods by name.
SELECTORS: Registry[type[TokenSelector]] = Registry("selection method")


def register_selector(cls: SelectorType) -> SelectorType:
    """Class decorator: register ``cls`` in :data:`SELECTORS` under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty 'name' to be registered")
    return SELECTORS.register(cls.name, cls)


def available_methods() -> list[str]:
    """Names of the registered selection methods."""
    return SELECTORS.names()


def get_selector(name: str, **options: Any) -> TokenSelector:
    """Instantiate the registered method ``name`` with ``options``."""
    instance = SELECTORS.get(name)(**options)
    if not getattr(instance, "name", ""):
        instance.name = name
    return instance


@register_selector
class DivPruneSelector(TokenSelector):
    """DivPrune: greedy Max-Min diversity (see :func:`divprune`)."""

    name = "divprune"

    def __init__(self, metric: Metric = "cosine", backend: Backend = "auto", path: SelectionPath = "auto") -> None:
        self.metric, self.backend, self.path = metric, backend, path

    def select(self, tokens: torch.Tensor, num_keep: int, **context: Any) -> torch.Tensor:
        return divprune(tokens, num_keep=num_keep, metric=self.metric, backend=self.backend, path=self.path)


@register_selector
class UniformSelector(TokenSelector):
    """Every n-th token: k indices spread evenly over 0..N-1 (``linspace``, rounded down), in order."""

    name = "uniform"

    def select(self, tokens: torch.Tensor, num_keep: int, **context: Any) -> torch.Tensor:
        num_tokens = tokens.shape[0]
        return (torch.arange(num_keep, device=tokens.device) * num_tokens) // num_keep


@register_selector
class RandomSelector(TokenSelector):
    """k tokens drawn uniformly without replacement, from the context's seeded ``generator`` (the sample's seed);
    alone (no context), from ``seed``."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def select(self, tokens: torch.Tensor, num_keep: int, **context: Any) -> torch.Tensor:
        generator: Optional[torch.Generator] = context.get("generator")
        if generator is None:
            generator = torch.Generator().manual_seed(self.seed)
        return torch.randperm(tokens.shape[0], generator=generator)[:num_keep].to(tokens.device)


def _check_attention(tokens: torch.Tensor, attention: Optional[torch.Tensor]) -> torch.Tensor:
    if attention is None:
        raise ValueError("this method ranks tokens by attention: pass attention=(N,) scores in the context")
    if attention.shape != tokens.shape[:1]:
        raise ValueError(f"attention must have shape (N,) = ({tokens.shape[0]},); got {tuple(attention.shape)}")
    return attention


@register_selector
class AttentionSelector(TokenSelector):
    """FastV-style: the k tokens that receive the most attention (scores supplied by the model adapter)."""

    name = "attention"
    requires = ("attention",)

    def select(self, tokens: torch.Tensor, num_keep: int, **context: Any) -> torch.Tensor:
        attention = _check_attention(tokens, context.get("attention"))
        return torch.topk(attention.float(), num_keep, sorted=True).indices.to(tokens.device)
