"""The package is mypy --strict clean (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_mypy_strict() -> None:
    root = Path(__file__).parent.parent
    r = subprocess.run([sys.executable, "-m", "mypy"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
