"""Families are found by the checkpoint's model_type; a new family is one folder that registers itself."""

import pytest

from divprune_video.models import (
    ModelAdapter,
    adapter_class,
    available_adapters,
    available_families,
    load_adapter,
    model_family,
    register_adapter,
)
from divprune_video.models.llava_next_video import LlavaNextVideoAdapter
from divprune_video.models.llava_onevision import LlavaOnevisionAdapter


def test_built_in_families_are_found_in_their_folders():
    assert {"llava_next_video", "llava_onevision"} <= set(available_adapters())
    assert adapter_class("llava_next_video") is LlavaNextVideoAdapter
    assert adapter_class("llava_onevision") is LlavaOnevisionAdapter
    names = [family.name for family in available_families()]
    assert names == sorted(names) and {"llava_next_video", "llava_onevision"} <= set(names)
    family = model_family("llava_onevision")
    assert family.default_checkpoint == "llava-hf/llava-onevision-qwen2-7b-ov-hf" and family.tokens_per_frame


def test_load_adapter_picks_the_adapter_from_the_config(tiny_checkpoint):
    adapter = load_adapter(str(tiny_checkpoint), device="cpu")
    assert isinstance(adapter, LlavaNextVideoAdapter)
    assert adapter.device.type == "cpu" and adapter.model.dtype.is_floating_point


def test_unknown_model_type():
    with pytest.raises(ValueError, match="no adapter for model_type 'qwen2_vl'"):
        adapter_class("qwen2_vl")
    with pytest.raises(ValueError, match="no model family for model_type 'qwen2_vl'"):
        model_family("qwen2_vl")


def test_register_a_new_adapter():
    @register_adapter
    class ToyAdapter(ModelAdapter):
        model_types = ("toy_video_lm",)

    try:
        assert adapter_class("toy_video_lm") is ToyAdapter
    finally:
        from divprune_video.models import ADAPTERS

        ADAPTERS.unregister("toy_video_lm")
    assert "toy_video_lm" not in ADAPTERS
    with pytest.raises(ValueError, match="model_types"):
        register_adapter(type("Nameless", (ModelAdapter,), {}))
