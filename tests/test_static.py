"""Static checks as tests, so CI enforces them: mypy --strict and ruff (configured in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "command",
    [
        ["mypy"],
        ["ruff", "check", "monitor", "storage", "alerts", "tests"],
        ["ruff", "format", "--check", "monitor", "storage", "alerts", "tests"],
    ],
)
def test_clean(command: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
