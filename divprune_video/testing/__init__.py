"""Fixtures for testing integrations without downloads. Public, so users can test their own code the same way.

* :mod:`.tokens`: synthetic token sets (random, clustered, video-like);
* :mod:`.checkpoints`: tiny random checkpoints of every model family, loadable like real ones;
* :mod:`.videos`: generated videos (moving shapes; index-coded frames, videos and frame folders);
* :mod:`.benchmarks`: benchmark datasets in the released layouts (MVBench, Video-MME, MLVU).
"""

from ..models.tiny import INPUT_SENSITIVE_SCALE
from .benchmarks import (
    FixtureQuestion,
    write_fixture_set,
    write_mlvu_fixture,
    write_mvbench_fixture,
    write_replay_file,
    write_videomme_fixture,
)
from .checkpoints import save_tiny_llava_next_video, save_tiny_model
from .tokens import clustered_tokens, random_tokens, synthetic_video_tokens
from .videos import (
    INDEX_CODE_MARKERS,
    index_coded_frame,
    index_coded_frames,
    marker_colours,
    moving_shapes_video,
    read_frame_index,
    write_index_coded_folder,
    write_index_coded_video,
)

__all__ = [
    "INDEX_CODE_MARKERS",
    "INPUT_SENSITIVE_SCALE",
    "FixtureQuestion",
    "clustered_tokens",
    "index_coded_frame",
    "index_coded_frames",
    "marker_colours",
    "moving_shapes_video",
    "random_tokens",
    "read_frame_index",
    "save_tiny_llava_next_video",
    "save_tiny_model",
    "synthetic_video_tokens",
    "write_fixture_set",
    "write_index_coded_folder",
    "write_index_coded_video",
    "write_mlvu_fixture",
    "write_mvbench_fixture",
    "write_replay_file",
    "write_videomme_fixture",
]
