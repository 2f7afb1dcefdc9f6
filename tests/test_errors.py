"""One root exception: every error the package raises for its own reasons is a DivPruneVideoError and still the
built-in exception it refines; library code never raises SystemExit (only argparse, in the commands, exits)."""

import re
from pathlib import Path

import pytest

import divprune_video
from divprune_video import DivPruneVideoError
from divprune_video._optional import MissingDependencyError, require
from divprune_video.eval.base import AnnotationError, BenchmarkError, ConfigurationError, MissingVideoError
from divprune_video.eval.distributed import RankFailedError
from divprune_video.models.context import ContextLengthError
from divprune_video.streaming import EmptyMemoryError
from divprune_video.video import VideoError, load_video
from divprune_video.video.errors import NotAVideoError, VideoNotFoundError, VideoTimeoutError


@pytest.mark.parametrize(
    "error, builtin",
    [
        (VideoError, Exception),
        (VideoNotFoundError, FileNotFoundError),
        (NotAVideoError, Exception),
        (VideoTimeoutError, TimeoutError),
        (BenchmarkError, Exception),
        (AnnotationError, Exception),
        (MissingVideoError, Exception),
        (ConfigurationError, Exception),
        (ContextLengthError, ValueError),
        (EmptyMemoryError, RuntimeError),
        (RankFailedError, RuntimeError),
        (MissingDependencyError, ImportError),
    ],
)
def test_every_own_error_has_the_one_root(error, builtin):
    assert issubclass(error, DivPruneVideoError) and issubclass(error, builtin)


def test_the_root_catches_real_failures(tmp_path):
    with pytest.raises(DivPruneVideoError, match="no_such_module_here"):
        require("no_such_module_here", "video")
    pytest.importorskip("av")
    with pytest.raises(DivPruneVideoError):
        load_video(tmp_path / "missing.mp4", num_frames=2)


def test_library_code_never_raises_system_exit():
    package = Path(divprune_video.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"raise SystemExit|sys\.exit\(", line)
        and line.strip() != "sys.exit(main())"  # the entry point itself
    ]
    assert offenders == []
