#!/usr/bin/env python3
"""Ask questions about a live stream (rtsp/http) or a video file played as live, while it plays.

Frames are sampled (--sample-fps), encoded by LLaVA-NeXT-Video's vision path one by one, and kept in a memory of
at most --budget visual tokens: DivPrune keeps the most diverse tokens of everything seen so far, so memory and
per-frame cost stay constant however long the stream runs. A stream that drops is reopened with backoff
(--max-retries); a slow model drops frames (counted in the status line) rather than falling behind. Type a
question and press Enter at any time; Ctrl-C or the end of the stream stops.

    python examples/stream_qa.py rtsp://camera.local/stream --model llava-hf/LLaVA-NeXT-Video-7B-hf
    python examples/stream_qa.py clip.mp4 --question "What happened?" --no-stdin   # tiny model, answer at the end

Same as `divprune-video stream SOURCE`.
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
    parser.add_argument("source", help="an rtsp/http(s) URL, or a video file (played in real time unless --fast)")
    add_stream_options(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
