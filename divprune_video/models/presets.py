"""The models every command and test builds, defined once: the embedded tiny model, and each family's reference
architecture (its 7B model) with random weights.

* :func:`tiny_model_path`: the tiny random LLaVA-NeXT-Video written once into a cache folder (``--model tiny`` of
  ``bench``, ``stream``; the runner's ``tiny`` model);
* :func:`build_model`: a family's reference architecture with random weights (or its tiny checkpoint) on a device,
  with the frame preprocessing its checkpoint would use (``bench-model``, ``bench-stream``, profiling scripts);
* :func:`reference_adapter`: the same wrapped in the family's adapter;
* :func:`random_llava_next_video_7b`: LLaVA-NeXT-Video-7B with random weights and a tokenizer, seeded so that every
  rank of a sharded run holds the same weights (the runner's ``random-7b`` model).

Nothing is downloaded: reference configurations are written out in each family's ``presets.py``; weights are
random (the compute does not depend on their values), so answers are meaningless and timings are the real model's.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

import torch

__all__ = [
    "build_model",
    "full_vocabulary_tokenizer",
    "random_llava_next_video_7b",
    "reference_adapter",
    "tiny_model_path",
]


def tiny_model_path() -> Path:
    """The embedded tiny LLaVA-NeXT-Video, written once into a temporary cache folder (keyed by the source of
    everything that writes it, so a changed tiny model is written afresh)."""
    from ..testing import checkpoints
    from . import tiny
    from .llava_next_video import presets

    sources = b"".join(Path(module.__file__).read_bytes() for module in (checkpoints, tiny, presets))
    digest = hashlib.sha1(sources).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"divprune-video-tiny-llava-next-video-{digest}"
    if not target.exists():
        staging = Path(tempfile.mkdtemp(prefix="tiny-model-", dir=target.parent))
        checkpoints.save_tiny_llava_next_video(staging)
        try:
            staging.rename(target)
        except OSError:  # another process (another rank) finished first
            shutil.rmtree(staging, ignore_errors=True)
    return target


class _ConfigOnly:
    """Stands in for an adapter where only its ``config`` is read (the default frame preprocessing)."""

    def __init__(self, config: Any) -> None:
        self.config = config


def build_model(
    model_type: str,
    device: torch.device,
    attention: str = "sdpa",
    *,
    tiny: bool = False,
    dtype: torch.dtype = torch.float16,
) -> tuple[Any, Any]:
    """(model, frame preprocessor): the family's reference architecture with random weights in ``dtype`` built
    directly on ``device`` (or, with ``tiny``, its tiny test checkpoint), and the frame preprocessing its
    checkpoint would use."""
    import transformers

    from .registry import model_family

    family = model_family(model_type)
    if tiny:
        with tempfile.TemporaryDirectory(prefix="divprune-tiny-") as folder:
            checkpoint = str(family.save_tiny_checkpoint(folder))
            model = transformers.AutoModelForImageTextToText.from_pretrained(checkpoint, attn_implementation=attention)
            return model.to(device).eval(), family.adapter.load_frame_preprocessor(checkpoint)
    with torch.device(device):
        model = transformers.AutoModelForImageTextToText.from_config(
            family.reference_config(), dtype=dtype, attn_implementation=attention
        )
    model = model.to(device).eval()
    return model, family.adapter.default_frame_preprocessor(_ConfigOnly(model.config))


def reference_adapter(
    model_type: str, device: torch.device, attention: str = "sdpa", *, tiny: bool = False, fast_vision: bool = True
) -> Any:
    """An adapter over :func:`build_model`'s model (float16 reference architecture, or the tiny checkpoint), with
    its default frame preprocessing; for benchmarks and profiling."""
    from .registry import model_family

    model, preprocessor = build_model(model_type, device, attention, tiny=tiny)
    return model_family(model_type).adapter(model, frame_preprocessor=preprocessor, fast_vision=fast_vision)


def full_vocabulary_tokenizer(vocab_size: int) -> Any:
    """The tiny model's tokenizer with placeholder pieces ``<w{id}>`` for every id up to ``vocab_size``: prompts
    tokenize as before (no merge produces a placeholder), and every id a random model generates decodes to text, so
    two runs' answers can be compared."""
    import json

    from tokenizers import Tokenizer
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    base = AutoTokenizer.from_pretrained(tiny_model_path())
    data = json.loads(base.backend_tokenizer.to_str())
    vocab = data["model"]["vocab"]
    vocab.update({f"<w{index}>": index for index in range(max(vocab.values()) + 1, vocab_size)})
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(data)),
        bos_token=base.bos_token,
        eos_token=base.eos_token,
        unk_token=base.unk_token,
        pad_token=base.pad_token,
    )
    tokenizer.chat_template = base.chat_template
    return tokenizer


def random_llava_next_video_7b(
    device: str, *, seed: int = 0, dtype: str = "float16", attn_implementation: Optional[str] = None
) -> Any:
    """A :class:`~divprune_video.models.llava_next_video.LlavaNextVideoAdapter` over the LLaVA-NeXT-Video-7B
    architecture with random weights, built in memory directly on ``device`` (about 14 GB in float16; nothing is
    written to disk or downloaded).

    For benchmarks of throughput and scaling only: answers are meaningless, the compute is the real model's. The
    weights are drawn after ``torch.manual_seed(seed)``, so every process that builds it with the same seed on the
    same kind of device holds the same weights (the ranks of a torchrun job agree). Text goes through the embedded
    tiny model's tokenizer grown to the 7B vocabulary (:func:`full_vocabulary_tokenizer`): its ``<video>`` /
    ``<image>`` ids replace the checkpoint's 32000/32001, the only change to the configuration.
    """
    from .._optional import require
    from .llava_next_video import LlavaNextVideoAdapter
    from .llava_next_video.presets import reference_config
    from .runtime import default_attention

    transformers = require("transformers", "model")
    target = torch.device(device)
    if target.type != "cuda":
        raise ValueError(
            f"the random-weight LLaVA-NeXT-Video-7B needs a CUDA device (about 14 GB of weights); got {device!r}"
        )
    config = reference_config()
    tokenizer = full_vocabulary_tokenizer(config.text_config.vocab_size)
    config.video_token_id = tokenizer.convert_tokens_to_ids("<video>")
    config.image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    with torch.random.fork_rng(devices=[target]):
        torch.manual_seed(seed)
        with target:
            model = transformers.LlavaNextVideoForConditionalGeneration._from_config(
                config,
                dtype=getattr(torch, dtype),
                attn_implementation=attn_implementation or default_attention(target),
            )
    return LlavaNextVideoAdapter(model.to(target), tokenizer)
