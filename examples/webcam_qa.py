#!/usr/bin/env python3
"""Ask questions about what a webcam sees, while it runs.

Frames are sampled from the camera (--sample-fps), encoded by LLaVA-NeXT-Video's vision path one by one, and kept
in a memory of at most --budget visual tokens: DivPrune keeps the most diverse tokens of everything seen so far,
so memory and per-frame cost stay constant however long the camera runs. Type a question and press Enter at any
time; Ctrl-C stops.

    python examples/webcam_qa.py                       # camera 0, the embedded tiny model (gibberish answers)
    python examples/webcam_qa.py /dev/video2 --model llava-hf/LLaVA-NeXT-Video-7B-hf --budget 2048

Same as `divprune-video stream CAMERA`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import divprune_video  # noqa: F401
except ImportError:  # run from a fresh clone without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from divprune_video.streaming.cli import add_stream_options, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "camera", nargs="?", default="0", help="camera index (0, 1, ...) or device path (/dev/video0); default 0"
    )
    add_stream_options(parser)
    args = parser.parse_args(argv)
    args.source = args.camera
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
