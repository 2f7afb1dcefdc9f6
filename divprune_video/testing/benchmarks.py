"""Benchmark datasets in the released layouts (MVBench, Video-MME, MLVU) for the runner's tests and integrations
(the writers live with the runner in :mod:`divprune_video.eval.fixtures`)."""

from ..eval.fixtures import (
    FixtureQuestion,
    write_fixture_set,
    write_mlvu_fixture,
    write_mvbench_fixture,
    write_replay_file,
    write_videomme_fixture,
)

__all__ = [
    "FixtureQuestion",
    "write_fixture_set",
    "write_mlvu_fixture",
    "write_mvbench_fixture",
    "write_replay_file",
    "write_videomme_fixture",
]
