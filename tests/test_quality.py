"""The code stays lint-clean, formatted and type-checked (ruff and mypy, per pyproject.toml)."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=PROJECT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_and_format():
    lint = run("ruff", "check", "grader", "checks", "labs", "tests", "benchmarks")
    assert lint.returncode == 0, lint.stdout
    fmt = run("ruff", "format", "--check", "grader", "checks", "labs", "tests", "benchmarks")
    assert fmt.returncode == 0, fmt.stdout


def test_mypy():
    result = run("mypy")
    assert result.returncode == 0, result.stdout
