import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.triton_support import needs_recent_interpreter

pytest.importorskip("triton")

ROOT = Path(__file__).resolve().parents[2]


def test_kernels_pick_what_the_pure_path_picks_under_the_interpreter():
    needs_recent_interpreter()
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run(
        [sys.executable, "-m", "tests.selection.triton_interpreter_cases"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cases passed: 8" in result.stdout
    assert "duplicate cases passed: 15" in result.stdout  # duplicate_inputs.py: 5 cases x 3 metrics
    assert "rounds cases passed: 8" in result.stdout  # 3 token sets, 5 duplicate-heavy ones
    # 6 token sets x 2 metrics x 3 offered per program, 5 duplicate-heavy ones, 40 tied ones, 2 refused shapes
    assert "cooperative cases passed: 83" in result.stdout
