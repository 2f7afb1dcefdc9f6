"""Model adapters by the checkpoint's ``model_type``: a new model family is one adapter class, registered here."""

from __future__ import annotations

import importlib
import os
from typing import Optional, TypeVar, Union

import torch

from .base import ModelAdapter

AdapterType = TypeVar("AdapterType", bound=type[ModelAdapter])

#: model_type -> adapter class, or "module:Class" for the built-in adapters (imported on first use).
_ADAPTERS: dict[str, Union[str, type[ModelAdapter]]] = {
    "llava_next_video": "divprune_video.models.llava_next_video:LlavaNextVideoAdapter",
}


def register_adapter(cls: AdapterType) -> AdapterType:
    """Class decorator: serve the checkpoints whose config ``model_type`` is in ``cls.model_types``."""
    if not cls.model_types:
        raise ValueError(f"{cls.__name__} needs a non-empty 'model_types' to be registered")
    for model_type in cls.model_types:
        _ADAPTERS[model_type] = cls
    return cls


def available_adapters() -> list[str]:
    """The ``model_type`` values an adapter exists for."""
    return sorted(_ADAPTERS)


def adapter_class(model_type: str) -> type[ModelAdapter]:
    """The adapter class for ``model_type``; raises ValueError naming the supported ones."""
    entry = _ADAPTERS.get(model_type)
    if entry is None:
        raise ValueError(f"no adapter for model_type {model_type!r}; supported: {', '.join(available_adapters())}")
    if isinstance(entry, str):
        module_name, class_name = entry.split(":")
        entry = getattr(importlib.import_module(module_name), class_name)
        _ADAPTERS[model_type] = entry
    return entry


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
