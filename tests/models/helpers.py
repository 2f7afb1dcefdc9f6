"""Shared fixtures and references of the model tests (imported by tests/models/conftest.py and
tests/test_pipeline.py): the tiny checkpoint, loaders, and plain-transformers reference runs."""

import inspect

import pytest
import torch

transformers = pytest.importorskip("transformers")

from divprune_video.models.llava_next_video import LlavaNextVideoAdapter  # noqa: E402
from divprune_video.testing import moving_shapes_video, save_tiny_llava_next_video  # noqa: E402

#: The keyword of the KV cache in this transformers version's forward() ("cache" from 5.2x, "past_key_values" before).
CACHE_KWARG = (
    "cache"
    if "cache" in inspect.signature(transformers.LlavaNextVideoForConditionalGeneration.forward).parameters
    else "past_key_values"
)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny random LLaVA-NeXT-Video checkpoint folder (written once per session; nothing downloaded)."""
    return save_tiny_llava_next_video(tmp_path_factory.mktemp("checkpoints") / "tiny-llava-next-video")


@pytest.fixture(scope="session")
def adapter(tiny_checkpoint):
    return LlavaNextVideoAdapter.from_pretrained(str(tiny_checkpoint), device="cpu")


@pytest.fixture(scope="session")
def plain_model(tiny_checkpoint):
    """The same checkpoint through plain transformers, no adapter involved."""
    return transformers.LlavaNextVideoForConditionalGeneration.from_pretrained(str(tiny_checkpoint)).eval()


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch):
    """No test may reach the Hugging Face hub."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """The tiny model's operations are too small to share among threads; on a busy machine threads only wait."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sample_frames(num_frames=8, seed=0):
    """(num_frames, 72, 96, 3) uint8 frames of moving shapes."""
    return moving_shapes_video(num_frames, 72, 96, seed=seed)


def cache_of(output):
    """The KV cache a generate() output (return_dict_in_generate=True) carries, whatever the field's name."""
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def step_logits(output):
    """(steps, B, V) raw logits of every generated token."""
    return torch.stack(output.logits)


def manual_greedy(model, cache, first_logits, attention_mask, next_positions, steps):
    """Greedy decoding by hand with plain forward() calls on a prepared cache.

    first_logits: (B, V) logits of the prompt's last position; attention_mask: (B, L) mask of what the cache holds;
    next_positions: (B,) position of the first new token. Returns (tokens (B, steps), logits (steps, B, V)).
    """
    tokens, logits = [], [first_logits]
    mask = attention_mask.clone()
    for step in range(steps):
        token = logits[-1].argmax(-1)
        tokens.append(token)
        if step == steps - 1:
            break
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        with torch.inference_mode():
            output = model(
                input_ids=token[:, None],
                attention_mask=mask,
                position_ids=(next_positions + step)[:, None],
                use_cache=True,
                **{CACHE_KWARG: cache},
            )
        logits.append(output.logits[:, -1])
    return torch.stack(tokens, dim=1), torch.stack(logits)


def literal_prompt_ids(tokenizer, question, num_visual_tokens):
    """The LLaVA-NeXT-Video prompt written out by hand (not through the chat template), tokenized."""
    text = "USER: " + "<video>" * num_visual_tokens + "\n" + question + " ASSISTANT:"
    return tokenizer(text, return_tensors="pt")["input_ids"]
