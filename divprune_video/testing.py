"""Fixtures for testing integrations without downloads: synthetic tokens (and, with the model and video parts,
tiny random models and generated videos). Public, so users can test their own code the same way."""

from __future__ import annotations

from typing import Optional

import torch


def random_tokens(
    num_tokens: int, dim: int, *, seed: int = 0, dtype: torch.dtype = torch.float32, device: str = "cpu"
) -> torch.Tensor:
    """(num_tokens, dim) standard-normal tokens from a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_tokens, dim, generator=generator).to(dtype=dtype, device=device)


def clustered_tokens(
    num_tokens: int,
    dim: int,
    *,
    num_clusters: int = 8,
    spread: float = 0.3,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> torch.Tensor:
    """(num_tokens, dim) tokens around ``num_clusters`` random centres, each token centre + spread * noise."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_clusters, dim, generator=generator)
    members = torch.randint(num_clusters, (num_tokens,), generator=generator)
    tokens = centres[members] + spread * torch.randn(num_tokens, dim, generator=generator)
    return tokens.to(dtype=dtype, device=device)


def synthetic_video_tokens(
    num_frames: int = 32,
    tokens_per_frame: int = 144,
    dim: int = 1024,
    *,
    num_scenes: int = 3,
    scene_lengths: Optional[list[int]] = None,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens that behave like a video's: redundant within a scene, different between scenes.

    Each scene has a fixed set of ``tokens_per_frame`` "patch" vectors (a few of them background patches that
    repeat across the frame); each frame of the scene is those patches plus small noise that drifts slowly.

    Returns ``(tokens, scene_of_token)``: (num_frames * tokens_per_frame, dim) tokens in frame-major order and
    (num_frames * tokens_per_frame,) int64 scene ids. ``scene_lengths`` (frames per scene) defaults to equal parts.
    """
    generator = torch.Generator().manual_seed(seed)
    if scene_lengths is None:
        base, extra = divmod(num_frames, num_scenes)
        scene_lengths = [base + (i < extra) for i in range(num_scenes)]
    if sum(scene_lengths) != num_frames or min(scene_lengths) < 1:
        raise ValueError(f"scene_lengths must be positive and sum to num_frames={num_frames}; got {scene_lengths}")
    frames, scene_ids = [], []
    for scene, length in enumerate(scene_lengths):
        distinct = torch.randn(tokens_per_frame // 4, dim, generator=generator)
        background = torch.randn(1, dim, generator=generator)
        patches = torch.cat([distinct, background.expand(tokens_per_frame - distinct.shape[0], dim)])
        patches = patches[torch.randperm(tokens_per_frame, generator=generator)]
        drift = torch.zeros(tokens_per_frame, dim)
        for _ in range(length):
            drift = drift + 0.02 * torch.randn(tokens_per_frame, dim, generator=generator)
            frames.append(patches + drift + 0.05 * torch.randn(tokens_per_frame, dim, generator=generator))
            scene_ids.append(torch.full((tokens_per_frame,), scene, dtype=torch.long))
    return torch.cat(frames).to(dtype), torch.cat(scene_ids)


# Benchmark datasets in the released layouts (MVBench, Video-MME, MLVU), for the runner's tests and integrations.
from .eval.fixtures import (  # noqa: E402
    FixtureQuestion,
    write_mlvu_fixture,
    write_mvbench_fixture,
    write_replay_file,
    write_videomme_fixture,
)


# --- Tiny LLaVA-NeXT-Video and sample videos (model adapter tests, demo) ------------------------------------------

import json  # noqa: E402  (imports of this appended section)
import os  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Union  # noqa: E402

import numpy as np  # noqa: E402

#: Text the tiny model's tokenizer is trained on (BPE, built locally: no download).
_TINY_CORPUS = (
    "USER: What is happening in this video? ASSISTANT: A red ball moves to the left.",
    "USER: Which object moves fastest? ASSISTANT: The blue square moves right, then the green circle stops.",
    "USER: How many shapes are there? ASSISTANT: There are three shapes: a circle, a square and a triangle.",
    "USER: Describe the video. ASSISTANT: Colored shapes slide over a dark background and bounce off the edges.",
    "USER: What color is the largest object? ASSISTANT: It is yellow; the small one is white.",
    "USER: When does the ball stop? ASSISTANT: Near the end, after it hits the wall.",
    "The camera is still. A person walks in, picks up a cup and leaves the room.",
    "Answer with the option's letter from the given choices directly. (A) (B) (C) (D)",
)
_TINY_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<video>", "<image>")
#: The chat template of the llava-hf LLaVA-NeXT-Video checkpoints ("USER: <video>\n... ASSISTANT:").
LLAVA_NEXT_VIDEO_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}"
    "{% endif %}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>\n' }}{% endfor %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' ' }}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
#: Frame side of the tiny model: 56 px in 7 px patches = 8 x 8, pooled 2 x 2 -> 16 visual tokens per frame.
TINY_IMAGE_SIZE = 56
_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def tiny_llava_next_video_config(
    vocab_size: int = 335, *, video_token_id: int = 4, image_token_id: int = 5, pad_token_id: int = 3
) -> Any:
    """A LLaVA-NeXT-Video config small enough for CPU tests: CLIP vision tower (2 layers, width 32, 56 px frames
    in 7 px patches), Llama text model (4 layers, width 64, 4 heads sharing 2 key/value heads), 2 x 2 average
    pooling: 16 visual tokens per frame. Text weights are initialised with std 0.1 so that the random model's
    next-token choices are not near-ties."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextVideoConfig

    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                              image_size=TINY_IMAGE_SIZE, patch_size=7, projection_dim=32)
    text = LlamaConfig(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                       rms_norm_eps=1e-5, initializer_range=0.1, pad_token_id=pad_token_id, bos_token_id=1,
                       eos_token_id=2)
    side = TINY_IMAGE_SIZE
    return LlavaNextVideoConfig(
        vision_config=vision.to_dict(), text_config=text.to_dict(), video_token_index=video_token_id,
        image_token_index=image_token_id, spatial_pool_out_channels=32, image_seq_length=64, video_seq_length=16,
        image_grid_pinpoints=[[side, 2 * side], [2 * side, side], [2 * side, 2 * side]],
    )


def _tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=list(_TINY_SPECIAL_TOKENS), show_progress=False,
                                  initial_alphabet=["\n"])
    backend.train_from_iterator(_TINY_CORPUS, trainer)
    bos_id = backend.token_to_id("<s>")
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                           special_tokens=[("<s>", bos_id)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>")
    tokenizer.chat_template = LLAVA_NEXT_VIDEO_CHAT_TEMPLATE
    return tokenizer


def save_tiny_llava_next_video(path: Union[str, os.PathLike], *, seed: int = 0) -> Path:
    """Write a tiny random-initialised LLaVA-NeXT-Video checkpoint to folder ``path`` and return it.

    The folder holds what a real checkpoint holds: ``config.json``, ``model.safetensors``,
    ``generation_config.json``, a tokenizer (``tokenizer.json``, trained locally, with the chat template), the
    video and image processor configs and the processor config with the chat template, so it loads through the same
    ``from_pretrained`` calls as ``llava-hf/LLaVA-NeXT-Video-7B-hf`` (see :func:`tiny_llava_next_video_config`
    for the sizes). Nothing is downloaded. The weights are random: answers are gibberish.
    """
    from transformers import LlavaNextVideoForConditionalGeneration

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _tiny_tokenizer()
    config = tiny_llava_next_video_config(
        len(tokenizer), video_token_id=tokenizer.convert_tokens_to_ids("<video>"),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"), pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlavaNextVideoForConditionalGeneration(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    side = TINY_IMAGE_SIZE
    frame_settings = {
        "processor_class": "LlavaNextVideoProcessor", "do_resize": True, "size": {"shortest_edge": side},
        "resample": 3, "do_center_crop": True, "crop_size": {"height": side, "width": side}, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": _CLIP_MEAN, "image_std": _CLIP_STD,
        "do_convert_rgb": True,
    }
    files = {
        "video_preprocessor_config.json": {
            **frame_settings, "video_processor_type": "LlavaNextVideoVideoProcessor", "do_sample_frames": False,
        },
        "preprocessor_config.json": {
            **frame_settings, "image_processor_type": "LlavaNextImageProcessor", "do_pad": True,
            "image_grid_pinpoints": config.image_grid_pinpoints,
        },
        "processor_config.json": {
            "processor_class": "LlavaNextVideoProcessor", "patch_size": config.vision_config.patch_size,
            "vision_feature_select_strategy": config.vision_feature_select_strategy, "num_additional_image_tokens": 1,
            "video_token": "<video>", "image_token": "<image>",
        },
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2) + "\n")
    (folder / "chat_template.jinja").write_text(LLAVA_NEXT_VIDEO_CHAT_TEMPLATE)
    return folder


def moving_shapes_video(
    num_frames: int = 32, height: int = 96, width: int = 128, *, seed: int = 0
) -> np.ndarray:
    """(num_frames, height, width, 3) uint8 RGB frames: coloured squares and discs moving across a dark gradient
    and bouncing off the edges (three shapes, each with its own colour, size and velocity)."""
    if num_frames < 1 or height < 8 or width < 8:
        raise ValueError(f"need num_frames >= 1 and frames of at least 8 x 8; got {num_frames} x {height} x {width}")
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    background = np.stack([20 + 40 * cols / width, 20 + 30 * rows / height, np.full((height, width), 50.0)], -1)
    colours = np.array([[230, 40, 40], [40, 110, 240], [250, 220, 40]], dtype=np.float64)
    radius = rng.uniform(0.12, 0.2, size=3) * min(height, width)
    centre = rng.uniform([0.25 * height, 0.25 * width], [0.75 * height, 0.75 * width], size=(3, 2))
    velocity = rng.uniform(-0.06, 0.06, size=(3, 2)) * [height, width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for index in range(num_frames):
        frame = background.copy()
        for shape in range(3):
            dy, dx = rows - centre[shape, 0], cols - centre[shape, 1]
            inside = (np.maximum(abs(dy), abs(dx)) if shape == 1 else np.hypot(dy, dx)) <= radius[shape]
            frame[inside] = colours[shape]
        frames[index] = frame.astype(np.uint8)
        centre += velocity
        for axis, limit in enumerate((height, width)):
            bounce = (centre[:, axis] < 0) | (centre[:, axis] > limit)
            velocity[bounce, axis] *= -1
            centre[:, axis] = np.clip(centre[:, axis], 0, limit)
    return frames


# --- Index-coded videos and frame folders (video input tests, bench-video) -----------------------------------------
# Each frame draws its own frame number as a 16-bit code of large black / white blocks (robust to lossy
# compression), so a test can check that the frame at position t of a clip really is the source's frame indices[t].

import os  # noqa: E402  (imports of this appended section)
import struct  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional, Sequence, Union  # noqa: E402

import numpy as np  # noqa: E402

#: Colours of the marker row (top row of the code): red, green, blue, black. They reveal RGB/BGR swaps and
#: rotations.
INDEX_CODE_MARKERS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0))
_CODE_BITS = 16


def _code_block(height: int, width: int) -> tuple[int, int]:
    """Block size (rows, cols) of the 5 x 4 block code, which fills the top-left quarter of the frame."""
    if height < 20 or width < 16:
        raise ValueError(f"index-coded frames need at least 20 x 16 pixels; got {height} x {width}")
    return height // 10, width // 8


def index_coded_frame(index: int, height: int = 160, width: int = 128, *, texture: bool = False) -> np.ndarray:
    """(height, width, 3) uint8 RGB frame showing ``index`` (0..65535) as a block code in its top-left quarter:
    a marker row (red, green, blue, black) over 4 x 4 bit blocks (bit b at row 1 + b // 4, column b % 4; white
    is 1). The rest of the frame is a smooth gradient that moves with ``index``, or with ``texture=True`` a
    scrolling random texture that costs about as much to decode as camera footage. Read it back with
    :func:`read_frame_index`."""
    if not 0 <= index < 2**_CODE_BITS:
        raise ValueError(f"index must lie in 0..{2**_CODE_BITS - 1}; got {index}")
    block_h, block_w = _code_block(height, width)
    if texture:
        rng = np.random.default_rng(height * 7919 + width)
        tile = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        base = np.repeat(np.repeat(tile, 8, axis=0), 8, axis=1)[:height, :width]
        frame = np.roll(base, 4 * index, axis=1)
        grain = rng.integers(0, 3, size=(7, height, width, 3), dtype=np.uint8)[index % 7]
        frame = frame + grain
    else:
        rows, cols = np.mgrid[0:height, 0:width]
        shift = (3 * index) % width
        frame = np.stack([(cols + shift) % width * 200 // width + 20, rows * 180 // height + 30,
                          np.full((height, width), 90)], axis=-1).astype(np.uint8)
    for column, colour in enumerate(INDEX_CODE_MARKERS):
        frame[0:block_h, column * block_w:(column + 1) * block_w] = colour
    for bit in range(_CODE_BITS):
        row, column = 1 + bit // 4, bit % 4
        value = 255 if (index >> bit) & 1 else 0
        frame[row * block_h:(row + 1) * block_h, column * block_w:(column + 1) * block_w] = value
    return frame


def index_coded_frames(num_frames: int, height: int = 160, width: int = 128, *, first: int = 0) -> np.ndarray:
    """(num_frames, height, width, 3) uint8: :func:`index_coded_frame` of ``first .. first + num_frames - 1``."""
    return np.stack([index_coded_frame(first + i, height, width) for i in range(num_frames)])


def read_frame_index(frame: np.ndarray) -> int:
    """The number drawn by :func:`index_coded_frame` into ``frame`` ((H, W, 3) uint8 RGB, possibly after lossy
    compression): each bit block's centre half is averaged and compared with mid-grey."""
    block_h, block_w = _code_block(frame.shape[0], frame.shape[1])
    value = 0
    for bit in range(_CODE_BITS):
        row, column = 1 + bit // 4, bit % 4
        centre = frame[row * block_h + block_h // 4:(row + 1) * block_h - block_h // 4,
                       column * block_w + block_w // 4:(column + 1) * block_w - block_w // 4]
        if centre.mean() > 127:
            value |= 1 << bit
    return value


def marker_colours(frame: np.ndarray) -> np.ndarray:
    """(4, 3) mean RGB of the four marker blocks of an index-coded frame (expected: :data:`INDEX_CODE_MARKERS`)."""
    block_h, block_w = _code_block(frame.shape[0], frame.shape[1])
    return np.array([frame[block_h // 4:block_h - block_h // 4,
                           c * block_w + block_w // 4:(c + 1) * block_w - block_w // 4].reshape(-1, 3).mean(0)
                     for c in range(4)])


def write_index_coded_video(
    path: Union[str, os.PathLike],
    num_frames: int,
    *,
    fps: float = 30.0,
    height: int = 160,
    width: int = 128,
    codec: str = "libx264",
    gop: int = 12,
    bframes: int = 2,
    pix_fmt: str = "yuv420p",
    crf: int = 18,
    preset: str = "veryfast",
    timestamps: Optional[Sequence[float]] = None,
    texture: bool = False,
    rotation: int = 0,
    faststart: bool = False,
) -> Path:
    """Encode ``num_frames`` :func:`index_coded_frame` frames to ``path`` with PyAV and return the path.

    The container follows the extension (.mp4, .mkv, .ts, .avi ...). With libx264 (the default) the stream has a
    keyframe every ``gop`` frames and always ``bframes`` B-frames between references (no adaptive placement, no
    scene cuts), so seeking and frame reordering are exercised on every run. ``timestamps``: (num_frames,)
    increasing seconds for a variable-frame-rate file (millisecond precision). ``pix_fmt`` may be a 10-bit
    format such as ``"yuv420p10le"``. ``rotation`` (0, 90, 180, 270 degrees clockwise, MP4 only) is written as
    the track's display matrix, as phones do. ``faststart``: put an MP4's index before the frames (as web servers
    want it), so that a cut file still opens."""
    import av

    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1; got {num_frames}")
    if timestamps is not None and (len(timestamps) != num_frames or np.any(np.diff(timestamps) <= 0)):
        raise ValueError("timestamps must be num_frames increasing seconds")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(target), mode="w", options=options) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": preset, "x264-params":
                              f"keyint={gop}:min-keyint={gop}:bframes={bframes}:b-adapt=0:scenecut=0"}
        else:
            stream.codec_context.gop_size = gop
            stream.codec_context.max_b_frames = bframes
        if timestamps is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for index in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_coded_frame(index, height, width, texture=texture),
                                               format="rgb24")
            if timestamps is not None:
                frame.pts, frame.time_base = int(round(timestamps[index] * 1000)), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    if rotation:
        _set_mp4_rotation(target, rotation)
    return target


def _set_mp4_rotation(path: Path, degrees: int) -> None:
    """Rewrite the display matrix of an MP4's (first) video track: rotate by ``degrees`` clockwise on display."""
    matrices = {90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}
    if degrees not in matrices:
        raise ValueError(f"rotation must be 0, 90, 180 or 270; got {degrees}")
    data = bytearray(path.read_bytes())
    where = data.find(b"tkhd")
    if where < 0 or data[where + 4] != 0:
        raise ValueError(f"{path}: rotation needs an MP4 file with a version-0 track header")
    a, b, c, d = (value * 0x10000 for value in matrices[degrees])
    offset = where + 4 + 40  # type, then version/flags, times, ids, duration, layer ... up to the matrix
    data[offset:offset + 36] = struct.pack(">9i", a, b, 0, c, d, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def write_index_coded_folder(
    folder: Union[str, os.PathLike],
    num_frames: int,
    *,
    height: int = 160,
    width: int = 128,
    extension: str = "png",
    pattern: str = "{index}",
) -> Path:
    """Write ``num_frames`` :func:`index_coded_frame` images into ``folder`` (created) as ``pattern.extension``
    with 1-based unpadded numbers by default ("1.png", "2.png" ... "10.png": a folder that only natural sorting
    orders correctly, as some MVBench tasks ship them). Returns the folder."""
    from PIL import Image

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for index in range(num_frames):
        name = pattern.format(index=index + 1) + "." + extension
        Image.fromarray(index_coded_frame(index, height, width)).save(target / name, quality=95)
    return target
