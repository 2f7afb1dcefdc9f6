"""The Max-Min diversity selector (DivPrune) and the comparison selectors.

Knows nothing about video or models: it takes (N, D) or (B, N, D) tensors and returns indices.
"""

from .distance import pairwise_distance
from .divprune_selector import SelectionPlan, divprune, divprune_batch, plan_selection
from .graphs import clear_graphs
from .methods import SELECTORS, SelectionContext, TokenSelector, available_methods, get_selector, register_selector
from .metrics import min_pairwise_distance

__all__ = [
    "SELECTORS",
    "SelectionContext",
    "SelectionPlan",
    "TokenSelector",
    "available_methods",
    "clear_graphs",
    "divprune",
    "divprune_batch",
    "get_selector",
    "min_pairwise_distance",
    "pairwise_distance",
    "plan_selection",
    "register_selector",
]
