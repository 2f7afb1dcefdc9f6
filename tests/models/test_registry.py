"""Adapters are found by the checkpoint's model_type; a new family is one registered class."""

import pytest

from divprune_video.models import ModelAdapter, adapter_class, available_adapters, load_adapter, register_adapter
from divprune_video.models.llava_next_video import LlavaNextVideoAdapter


def test_llava_next_video_is_built_in():
    assert "llava_next_video" in available_adapters()
    assert adapter_class("llava_next_video") is LlavaNextVideoAdapter


def test_load_adapter_picks_the_adapter_from_the_config(tiny_checkpoint):
    adapter = load_adapter(str(tiny_checkpoint), device="cpu")
    assert isinstance(adapter, LlavaNextVideoAdapter)
    assert adapter.device.type == "cpu" and adapter.model.dtype.is_floating_point


def test_unknown_model_type():
    with pytest.raises(ValueError, match="no adapter for model_type 'qwen2_vl'"):
        adapter_class("qwen2_vl")


def test_register_a_new_family():
    @register_adapter
    class ToyAdapter(ModelAdapter):
        model_types = ("toy_video_lm",)

    try:
        assert adapter_class("toy_video_lm") is ToyAdapter
    finally:
        from divprune_video.models import registry

        registry._ADAPTERS.pop("toy_video_lm")
    with pytest.raises(ValueError, match="model_types"):
        register_adapter(type("Nameless", (ModelAdapter,), {}))
