"""Model families by the checkpoint's ``model_type``.

A family is one folder under ``divprune_video/models/`` whose ``__init__.py`` calls :func:`register_family`; the
folders are found here on first use, so adding a family edits nothing outside its folder. A user's own adapter class
can be registered alone with :func:`register_adapter`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar, Union

import torch

from ..registry import Registry
from .base import ModelAdapter

AdapterType = TypeVar("AdapterType", bound=type[ModelAdapter])


@dataclass(frozen=True)
class ModelFamily:
    """One model family: its adapter, the checkpoints it was tried with, and its presets.

    Attributes:
        name: the family's name (its folder's name).
        adapter: the adapter class; its ``model_types`` are the config ``model_type`` values the family serves.
        checkpoints: hub ids of the checkpoints the family serves, the default first (their architectures are
            what the tiny checkpoints and the random-weight benchmarks reproduce; no weights are downloaded here).
        reference_config: () -> the transformers config of the family's reference architecture (the 7B model), for
            random-weight benchmarks (``bench-model --model-type``).
        save_tiny_checkpoint: (path, *, seed, weight_scale) -> path: writes a tiny random checkpoint that loads
            like a real one (:func:`divprune_video.testing.save_tiny_model`).
        tokens_per_frame: what one frame becomes, for the docs (e.g. "144 (12 x 12) at 336 px").
        positions: what ``positions`` means for the family, for the docs.
        lmms_eval_model: the name of lmms-eval's model wrapper published scores of the family come from; a
            benchmark with prompts specific to that wrapper (Video-MME's ``qwen3_vl`` entry) uses them.
    """

    name: str
    adapter: type[ModelAdapter]
    checkpoints: tuple[str, ...]
    reference_config: Callable[[], Any]
    save_tiny_checkpoint: Callable[..., Path]
    tokens_per_frame: str = ""
    positions: str = ""
    lmms_eval_model: str = ""

    @property
    def model_types(self) -> tuple[str, ...]:
        return self.adapter.model_types

    @property
    def default_checkpoint(self) -> str:
        return self.checkpoints[0]


def _discover() -> None:
    """Import every family folder of this package (each registers itself)."""
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.ispkg:
            importlib.import_module(f"{__package__}.{module.name}")


#: Adapter classes by the config ``model_type`` they serve.
ADAPTERS: Registry[type[ModelAdapter]] = Registry("model adapter", discover=_discover)
#: Model families (adapter and presets) by the config ``model_type`` they serve.
FAMILIES: Registry[ModelFamily] = Registry("model family", discover=_discover)


def register_adapter(cls: AdapterType) -> AdapterType:
    """Class decorator: serve the checkpoints whose config ``model_type`` is in ``cls.model_types``."""
    if not cls.model_types:
        raise ValueError(f"{cls.__name__} needs a non-empty 'model_types' to be registered")
    for model_type in cls.model_types:
        ADAPTERS.register(model_type, cls)
    return cls


def register_family(family: ModelFamily) -> ModelFamily:
    """Register a model family (its adapter included) under each of its ``model_types``."""
    register_adapter(family.adapter)
    for model_type in family.model_types:
        FAMILIES.register(model_type, family)
    return family


def available_adapters() -> list[str]:
    """The ``model_type`` values an adapter exists for."""
    return ADAPTERS.names()


def available_families() -> list[ModelFamily]:
    """The registered families, each once, by name."""
    return sorted({family.name: family for _, family in FAMILIES.items()}.values(), key=lambda family: family.name)


def adapter_class(model_type: str) -> type[ModelAdapter]:
    """The adapter class for ``model_type``; raises ValueError naming the supported ones."""
    if model_type not in ADAPTERS:
        raise ValueError(f"no adapter for model_type {model_type!r}; supported: {', '.join(available_adapters())}")
    return ADAPTERS.get(model_type)


def model_family(model_type: str) -> ModelFamily:
    """The family serving ``model_type`` (adapter and presets); raises ValueError naming the known ones."""
    if model_type not in FAMILIES:
        raise ValueError(f"no model family for model_type {model_type!r}; known: {', '.join(FAMILIES.names())}")
    return FAMILIES.get(model_type)


def load_adapter(
    model: str,
    *,
    device: Optional[str] = None,
    dtype: Optional[torch.dtype] = None,
    attn_implementation: Optional[str] = None,
) -> ModelAdapter:
    """Load checkpoint ``model`` (hub id or local folder) with the adapter its config's ``model_type`` names."""
    from .._optional import require

    transformers = require("transformers", "model")
    model_type = transformers.AutoConfig.from_pretrained(model).model_type
    return adapter_class(model_type).from_pretrained(
        model, device=device, dtype=dtype, attn_implementation=attn_implementation
    )


def resolve_adapter(
    model: Union[str, "os.PathLike[str]", ModelAdapter],
    *,
    device: Optional[str] = None,
    dtype: Optional[torch.dtype] = None,
    attn_implementation: Optional[str] = None,
) -> ModelAdapter:
    """``model`` itself when it is a loaded adapter, else :func:`load_adapter` of the hub id or folder it names."""
    if isinstance(model, ModelAdapter):
        return model
    if isinstance(model, (str, os.PathLike)):
        return load_adapter(os.fspath(model), device=device, dtype=dtype, attn_implementation=attn_implementation)
    raise TypeError(f"model must be a hub id, a folder or a ModelAdapter; got {type(model).__name__}")
