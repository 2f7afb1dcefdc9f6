#!/usr/bin/env python3
"""Set-up and run in one command, from a fresh clone, on a machine with only Python 3.10+.

    python3 dev.py demo [ARGS...]   # create .venv, install the package, run `divprune-video demo ARGS...`
    python3 dev.py test [ARGS...]   # create .venv, install the package with test extras, run pytest ARGS...
    python3 dev.py lint             # the same install, then ruff's lint and format check (as CI runs them)
    python3 dev.py test-oldest [ARGS...]  # the tests again in .venv-oldest, with the oldest supported transformers

PyTorch is installed first and pinned (``TORCH_REQUIREMENT``) so that pip does not pull a different build as a
dependency of something else; where a local CPU build of that version is offered (as on CI), pip takes it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
OLDEST_VENV = ROOT / ".venv-oldest"
TORCH_REQUIREMENT = "torch==2.13.0"
EXTRAS = {"demo": "all", "test": "dev", "lint": "dev", "test-oldest": "dev"}


def _python(venv_dir: Path = VENV) -> Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def oldest_transformers() -> str:
    """``transformers==X`` for the floor ``transformers>=X`` that pyproject.toml declares."""
    match = re.search(r'"transformers>=([0-9][0-9.]*)"', (ROOT / "pyproject.toml").read_text())
    if match is None:
        sys.exit("pyproject.toml declares no 'transformers>=X' requirement")
    return f"transformers=={match.group(1)}"


def _run(*command: str) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def _has(python: Path, module: str) -> bool:
    return subprocess.run([str(python), "-c", f"import {module}"], capture_output=True).returncode == 0


def install(extra: str, venv_dir: Path = VENV, pins: tuple[str, ...] = ()) -> Path:
    if sys.version_info < (3, 10):
        sys.exit(f"divprune-video needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    if not _python(venv_dir).exists():
        print(f"creating {venv_dir}", flush=True)
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    python = str(_python(venv_dir))
    pip = [python, "-m", "pip", "--disable-pip-version-check", "install", "--quiet"]
    if not _has(_python(venv_dir), "torch"):
        _run(*pip, TORCH_REQUIREMENT)
    _run(*pip, "-e", f".[{extra}]", *pins)
    return _python(venv_dir)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in EXTRAS:
        print(__doc__)
        return 2
    action, rest = argv[0], argv[1:]
    if action == "test-oldest":
        python = str(install(EXTRAS[action], OLDEST_VENV, (oldest_transformers(),)))
    else:
        python = str(install(EXTRAS[action]))
    if action in ("test", "test-oldest"):
        return subprocess.run([python, "-m", "pytest", *rest], cwd=ROOT).returncode
    if action == "lint":
        checks = ([python, "-m", "ruff", "check", "."], [python, "-m", "ruff", "format", "--check", "."])
        return max(subprocess.run(command, cwd=ROOT).returncode for command in checks)
    return subprocess.run([python, "-m", "divprune_video", "demo", *rest], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
